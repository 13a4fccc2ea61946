// Placement benchmark with one process per device: five `hive-node start` processes on
// loopback, paired with `hive-node pair`/`join`, tasks submitted through each node's API the
// way `hive-node run` does. Unlike placement.bench.ts (five nodes sharing one JavaScript
// thread), each device has its own event loop here, as on five real devices; the machine's
// cores are still shared. Baselines, in the same run: the same agent through the same API on a
// lone device (before the others are paired with it), and with `local: true` on a device of the
// paired hive (this device only: no bids, no award, no remote fetch), so the differences are
// what having peers and placing the task across the hive cost. The placed tasks' histories
// say where the time went, phase by phase (the submitter's clock).

import { readFile, rm } from 'node:fs/promises'
import { processCpuMs } from './cpu.ts'
import { join } from 'node:path'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching, waitFor } from '../helpers/wait.ts'
import { echoAgent } from '../protocol/placement/fixture.ts'
import { percentile, throughput, timed } from './table.ts'
import type { BenchResult } from './table.ts'
import type { TaskView } from '../../protocol/placement/index.ts'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'

/** Where a placed task's time goes, between the events of its history. */
const PHASES: Array<[string, string]> = [
  ['submitted', 'auction-closed'], ['auction-closed', 'awarded'], ['awarded', 'claimed'], ['claimed', 'result-accepted'], ['result-accepted', 'recorded']
]

const DEVICES = 5
const TASKS = 100
const IN_FLIGHT = 10
/**
 * Bursts measured after the first, whose median is the figure. The first burst of tasks in
 * flight on a hive is the slowest (13.6–17.9 tasks/s placed in four runs where later ones gave
 * 16–26): its figure is printed too, beside the median of the ones after it.
 */
const BURSTS = 3

interface Device {
  dir: string
  child: ChildProcessWithoutNullStreams
  done: ReturnType<typeof exited>
  apiUrl: string
  peerId: string
  token: string
}

/** HIVE_BENCH_CPU_PROF=DIR: each device writes a V8 CPU profile there when it stops. */
function profileDir (): string | undefined {
  const dir = process.env.HIVE_BENCH_CPU_PROF
  return dir != null && dir !== '' ? dir : undefined
}

async function startDevice (index: number): Promise<Device> {
  const dir = await makeTempDir('hive-bench-device-')
  const profile = profileDir()
  const child = spawnCli(['--data', dir, 'start', '--name', `device-${index}`, '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--loopback', '--json'],
    profile != null ? { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${profile}`.trim() } : {})
  const done = exited(child)
  const ready = JSON.parse(await lineMatching(child.stdout, l => l.startsWith('{'), { timeoutMs: 60_000, message: `device ${index} ready` })) as { apiUrl: string, peerId: string }
  const token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
  return { dir, child, done, apiUrl: ready.apiUrl, peerId: ready.peerId, token }
}

async function call<T> (device: Device, method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
  const response = await fetch(device.apiUrl + path, {
    method,
    headers: method === 'POST' ? { 'content-type': 'application/json', authorization: `Bearer ${device.token}` } : {},
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  const answer = await response.json() as T & { error?: { code: string, message: string } }
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${answer.error?.code ?? ''} ${answer.error?.message ?? ''}`)
  return answer
}

/**
 * The CPU time the devices' processes used, summed, per task of a run of TASKS: on a shared
 * machine, less moved by others' load than the wall clock. It is counted from a quiet hive to a
 * quiet hive, so the work a burst leaves for later (the DHT puts deferred to its end, the ledger
 * records peers fetch) is counted with it.
 */
async function cpuPerTask (devices: Device[], burst: () => Promise<void>): Promise<number> {
  const sum = (): number => devices.reduce((s, d) => s + processCpuMs(d.child.pid), 0)
  await quiet(sum)
  const before = sum()
  await burst()
  await quiet(sum)
  return (sum() - before) / TASKS
}

/**
 * Resolves once the devices together use under 5 % of a core for a second (idle gossip and
 * reports), 40 % while they write CPU profiles (the sampling costs that much).
 */
async function quiet (sum: () => number): Promise<void> {
  let last = sum()
  let lastAt = performance.now()
  await waitFor(async () => {
    if (performance.now() - lastAt < 1000) return false
    const now = sum()
    const idle = now - last < (profileDir() != null ? 400 : 50)
    last = now
    lastAt = performance.now()
    return idle
  }, { timeoutMs: 60_000, intervalMs: 100, message: 'the devices went quiet after a burst' })
}

/** A first burst of TASKS with IN_FLIGHT at a time, then BURSTS more: rates and CPU per task. */
async function bursts (devices: Device[], one: (i: number) => Promise<void>): Promise<{ first: { rate: number, cpu: number }, steady: { rate: number, cpu: number } }> {
  const runs: Array<{ rate: number, cpu: number }> = []
  for (let b = 0; b <= BURSTS; b++) {
    let rate = 0
    const cpu = await cpuPerTask(devices, async () => { rate = await throughput(TASKS, IN_FLIGHT, one) })
    runs.push({ rate, cpu })
  }
  const [first, ...after] = runs as [{ rate: number, cpu: number }, ...Array<{ rate: number, cpu: number }>]
  return { first, steady: { rate: percentile(after.map(r => r.rate), 50), cpu: percentile(after.map(r => r.cpu), 50) } }
}

/** Submits a task and waits for its end through the API; resolves to the task. */
async function runTask (device: Device, body: Record<string, unknown>): Promise<TaskView> {
  const { task } = await call<{ task: TaskView }>(device, 'POST', '/task', body)
  for (;;) {
    const { task: now } = await call<{ task: TaskView }>(device, 'GET', `/task/${task.id}?waitMs=60000`)
    if (now.status === 'done' || now.status === 'failed') return now
  }
}

export async function run (): Promise<BenchResult> {
  const devices: Device[] = []
  try {
    for (let i = 0; i < DEVICES; i++) devices.push(await startDevice(i))
    const agent = await echoAgent('bench-devices-echo')
    const agentB64 = Buffer.from(agent).toString('base64')
    const check = (task: TaskView, input: string): void => {
      if (task.status !== 'done' || task.result?.output !== input) throw new Error(`task ended ${task.status}: ${JSON.stringify(task.error ?? task.result)}\n${task.history.map(h => `${h.at} ${h.type} ${h.detail}`).join('\n')}`)
    }
    // a lone device: the first one, before any other is paired with it
    const lone = devices[0]!
    for (let i = 0; i < 3; i++) check(await runTask(lone, { agent: agentB64, input: `warm lone ${i}`, local: true }), `warm lone ${i}`)
    const loneDigest = (await call<{ task: TaskView }>(lone, 'POST', '/task', { agent: agentB64, input: 'digest', local: true })).task.agent
    const alone = async (i: number): Promise<void> => { check(await runTask(lone, { digest: loneDigest, input: `lone ${i}`, local: true }), `lone ${i}`) }
    const loneMs = await timed(TASKS, alone)
    let loneRate = 0
    const loneCpu = await cpuPerTask(devices, async () => { loneRate = await throughput(TASKS, IN_FLIGHT, alone) })

    // pair the way a person does: an invite from the first device, joined on each other one
    const [first, ...rest] = devices as [Device, ...Device[]]
    for (const device of rest) {
      const invite = await runCli(['--data', first.dir, 'pair', '--json'])
      if (invite.code !== 0) throw new Error(`pair: ${invite.stderr}`)
      const joined = await runCli(['--data', device.dir, 'join', (JSON.parse(invite.stdout) as { uri: string }).uri, '--json'])
      if (joined.code !== 0) throw new Error(`join: ${joined.stderr}`)
    }
    await waitFor(async () => {
      for (const device of devices) {
        const { capabilities } = await call<{ capabilities: unknown[] }>(device, 'GET', '/capabilities')
        if (capabilities.length < DEVICES) return false
      }
      return true
    }, { timeoutMs: 120_000, intervalMs: 250, message: 'every device sees every device\'s capabilities' })

    // warm up the local runs: each device receives the agent and runs it (the placed runs are
    // warmed after the local ones are measured, so that their DHT puts do not fall in those)
    for (let i = 0; i < DEVICES * 2; i++) {
      check(await runTask(devices[i % DEVICES]!, { agent: agentB64, input: `warm local ${i}`, local: true }), `warm local ${i}`)
    }
    const digest = (await call<{ task: TaskView }>(devices[0]!, 'POST', '/task', { agent: agentB64, input: 'digest', local: true })).task.agent

    const local = async (i: number): Promise<void> => { check(await runTask(devices[i % DEVICES]!, { digest, input: `local ${i}`, local: true }), `local ${i}`) }
    const histories: TaskView['history'][] = []
    const placed = async (i: number): Promise<void> => {
      const task = await runTask(devices[i % DEVICES]!, { digest, input: `placed ${i}` })
      check(task, `placed ${i}`)
      histories.push(task.history)
    }

    const localMs = await timed(TASKS, local)
    const localBursts = await bursts(devices, local)
    for (let i = 0; i < DEVICES * 2; i++) await placed(i)
    histories.length = 0
    const placedMs = await timed(TASKS, placed)
    const phases = PHASES.map(([from, to]) => ({
      label: `${from} → ${to}`,
      ms: histories.map(h => (h.find(e => e.type === to)?.at ?? NaN) - (h.find(e => e.type === from)?.at ?? NaN)).filter(Number.isFinite)
    }))
    const placedBursts = await bursts(devices, placed)
    const p50 = (v: number[]): number => percentile(v, 50)
    const p99 = (v: number[]): number => percentile(v, 99)
    return {
      title: `Placement: ${DEVICES} hive-node processes on loopback (one per device), trivial agent, ${TASKS} tasks through the API`,
      rows: [
        { metric: 'submit→result p50, placed across the hive', value: p50(placedMs), unit: 'ms', baseline: { label: 'same with local: true, p50', value: p50(localMs) }, note: 'goal < 100 ms' },
        { metric: 'submit→result p99, placed across the hive', value: p99(placedMs), unit: 'ms', baseline: { label: 'same with local: true, p99', value: p99(localMs) }, note: 'goal < 300 ms' },
        { metric: 'submit→result p50, local: true with peers', value: p50(localMs), unit: 'ms', baseline: { label: 'lone device, p50', value: p50(loneMs) } },
        { metric: 'submit→result p99, local: true with peers', value: p99(localMs), unit: 'ms', baseline: { label: 'lone device, p99', value: p99(loneMs) } },
        { metric: 'submit→result p50, placed', value: p50(placedMs), unit: 'ms', baseline: { label: 'lone device, p50', value: p50(loneMs) } },
        { metric: `tasks/s, ${IN_FLIGHT} in flight, placed`, value: placedBursts.steady.rate, unit: '/s', baseline: { label: 'local: true', value: localBursts.steady.rate }, note: `goal >= 30/s; median of ${BURSTS} bursts after the first` },
        { metric: `tasks/s, ${IN_FLIGHT} in flight, placed, first burst`, value: placedBursts.first.rate, unit: '/s', baseline: { label: 'local: true, first burst', value: localBursts.first.rate } },
        { metric: `tasks/s, ${IN_FLIGHT} in flight, local: true`, value: localBursts.steady.rate, unit: '/s', baseline: { label: 'lone device', value: loneRate }, note: `median of ${BURSTS} bursts after the first` },
        { metric: `CPU per task, ${DEVICES} processes summed, placed`, value: placedBursts.steady.cpu, unit: 'ms', baseline: { label: 'local: true', value: localBursts.steady.cpu }, note: `${IN_FLIGHT} in flight; median of ${BURSTS} bursts after the first` },
        { metric: `CPU per task, ${DEVICES} processes summed, placed, first burst`, value: placedBursts.first.cpu, unit: 'ms', baseline: { label: 'local: true, first burst', value: localBursts.first.cpu }, note: `${IN_FLIGHT} in flight` },
        { metric: `CPU per task, ${DEVICES} processes summed, local: true`, value: localBursts.steady.cpu, unit: 'ms', baseline: { label: 'lone device', value: loneCpu }, note: `${IN_FLIGHT} in flight` },
        ...phases.map(p => ({ metric: `placed p50, ${p.label}`, value: p50(p.ms), unit: 'ms', note: 'submitter\'s history' }))
      ]
    }
  } finally {
    for (const device of devices) device.child.kill('SIGTERM')
    await Promise.all(devices.map(async (d) => { await d.done.catch(() => {}) }))
    await Promise.all(devices.map(async (d) => { await rm(d.dir, { recursive: true, force: true }) }))
  }
}
