// How the hive's cost grows with its size: virtual hives of HIVE_BENCH_SCALE_SIZES devices
// (default 5,20,50) in this one process, its nodes spread over HIVE_SCALE_SHARDS worker threads
// (default one per core), each formed device by device as pairing forms it
// (test/scale/hive-phases.ts, the phases the scale test asserts). For each size: time for
// membership and every device's capabilities to converge, gossip messages delivered per device
// per second while idle, memory per device (RSS growth / N), and placement latency p50/p99 over a
// burst of HIVE_BENCH_SCALE_TASKS tasks (default 50). Each figure's baseline is the smallest size.
// Each size runs in a child process of its own (this file with `--one N TASKS`), so one size's
// memory is not counted in the next one's.

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { burst, capabilitiesConverge, membershipConverges, percentile, startScaleHive } from '../scale/hive-phases.ts'
import type { BenchResult, BenchRow } from './table.ts'

/** How long each size may take in all before it is reported as not converged. */
const PER_SIZE_MS = 10 * 60_000
/** The idle window over which gossip is counted. */
const IDLE_WINDOW_MS = 15_000

function sizes (): number[] {
  const raw = process.env.HIVE_BENCH_SCALE_SIZES ?? '5,20,50'
  const out = raw.split(',').map(s => Number(s.trim()))
  if (out.some(n => !Number.isSafeInteger(n) || n < 2)) throw new RangeError(`HIVE_BENCH_SCALE_SIZES=${raw}: give sizes of at least 2, e.g. 5,20,50`)
  return out
}

interface Figures { devices: number, convergeMs: number, gossipPerDeviceSecond: number, rssPerDeviceMiB: number, p50: number, p99: number, done: number, tasks: number }

async function measure (devices: number, tasks: number): Promise<Figures> {
  const deadline = Date.now() + PER_SIZE_MS
  const run = await startScaleHive({ devices, deadline })
  try {
    const t0 = performance.now()
    await membershipConverges(run, deadline)
    await capabilitiesConverge(run, deadline)
    const convergeMs = performance.now() - t0 + run.startMs
    const before = await run.gossip()
    // a measuring window, not a synchronisation: what the idle hive sends in it
    await new Promise(resolve => setTimeout(resolve, IDLE_WINDOW_MS))
    const gossipPerDeviceSecond = (await run.gossip() - before) / devices / (IDLE_WINDOW_MS / 1000)
    const rssPerDeviceMiB = (process.memoryUsage().rss - run.rssBefore) / 1024 / 1024 / devices
    const placed = await burst(run, tasks, 7, deadline)
    return {
      devices,
      convergeMs,
      gossipPerDeviceSecond,
      rssPerDeviceMiB,
      p50: percentile(placed.latencies, 50),
      p99: percentile(placed.latencies, 99),
      done: placed.views.filter(v => v.status === 'done').length,
      tasks
    }
  } finally {
    await run.hive.stop()
  }
}

export async function run (): Promise<BenchResult> {
  const tasks = Number(process.env.HIVE_BENCH_SCALE_TASKS ?? 50)
  const measured: Figures[] = []
  const rows: BenchRow[] = []
  for (const devices of sizes()) {
    process.stderr.write(`  scale: ${devices} devices …\n`)
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [fileURLToPath(import.meta.url), '--one', String(devices), String(tasks)], { timeout: PER_SIZE_MS + 120_000, maxBuffer: 16 * 1024 * 1024 })
      const f = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Figures
      measured.push(f)
      process.stderr.write(`  scale: ${devices} devices: converged in ${(f.convergeMs / 1000).toFixed(1)} s, placement p50 ${Math.round(f.p50)} ms\n`)
    } catch (err) {
      rows.push({ metric: `${devices} devices`, value: 0, unit: '', note: `not measured: ${(err as Error).message}`.slice(0, 160) })
    }
  }
  const base = measured[0]
  const row = (f: Figures, metric: string, value: number, unit: string, baseValue: number | undefined, note?: string): BenchRow => ({
    metric: `${metric}, ${f.devices} devices`,
    value: Math.round(value * 10) / 10,
    unit,
    ...(base != null && f !== base && baseValue != null ? { baseline: { label: `${base.devices} devices`, value: Math.round(baseValue * 10) / 10 } } : {}),
    ...(note != null ? { note } : {})
  })
  for (const f of measured) {
    rows.push(
      row(f, 'time to converge', f.convergeMs / 1000, 's', base != null ? base.convergeMs / 1000 : undefined, 'start, every member listed and every report held everywhere'),
      row(f, 'gossip while idle', f.gossipPerDeviceSecond, 'msg/device/s', base?.gossipPerDeviceSecond),
      row(f, 'memory', f.rssPerDeviceMiB, 'MiB/device', base?.rssPerDeviceMiB, 'RSS growth / devices'),
      row(f, 'placement p50', f.p50, 'ms', base?.p50, `burst of ${f.tasks}, ${f.done} done`),
      row(f, 'placement p99', f.p99, 'ms', base?.p99)
    )
  }
  return { title: `scale: how cost grows with the hive (sizes ${sizes().join(', ')}; ratios against the smallest)`, rows }
}

if (process.argv[2] === '--one') {
  const figures = await measure(Number(process.argv[3]), Number(process.argv[4]))
  process.stdout.write(JSON.stringify(figures) + '\n')
}
