// A hive at scale, in one process: HIVE_SCALE_DEVICES real nodes (default 50) on loopback, spread
// over HIVE_SCALE_SHARDS worker threads (default one per core), formed device by device as pairing
// forms it. Membership converges, every device's capabilities reach
// every other, a context edited on 5 devices converges on all, a burst of HIVE_SCALE_TASKS tasks
// (default 200) is placed with at most one accepted result each, every chain is held everywhere
// and `verify` is clean on every device; all within HIVE_SCALE_BUDGET_MS (default 5 minutes).
// Run by `npm run test:scale` (not part of `npm test`); it prints its figures as it goes.

import assert from 'node:assert/strict'
import { performance as perf } from 'node:perf_hooks'
import { after, before, describe, it } from 'node:test'
import {
  burst, capabilitiesConverge, chainsEverywhere, contextConverges, membershipConverges, okRecordsOf, percentile, shardCount, startScaleHive, verifyEverywhere
} from './hive-phases.ts'
import type { BurstResult, ScaleRun } from './hive-phases.ts'

function positive (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw == null || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`${name}=${raw} is not a whole number from 1`)
  return n
}

const DEVICES = positive('HIVE_SCALE_DEVICES', 50)
const TASKS = positive('HIVE_SCALE_TASKS', 200)
const BUDGET_MS = positive('HIVE_SCALE_BUDGET_MS', 300_000)
const EDITORS = Math.min(5, DEVICES)
const SHARDS = Math.min(shardCount(), DEVICES)

const t0 = Date.now()
const deadline = t0 + BUDGET_MS
const figure = (what: string, value: string): void => { process.stdout.write(`# scale ${DEVICES}: ${what}: ${value} (at ${((Date.now() - t0) / 1000).toFixed(1)} s)\n`) }
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

describe(`a hive of ${DEVICES} devices in one process on ${SHARDS} worker threads, within ${BUDGET_MS / 1000} s`, { timeout: BUDGET_MS + 120_000 }, () => {
  let run: ScaleRun
  let placed: BurstResult

  before(async () => {
    const started = await startScaleHive({ devices: DEVICES, shards: SHARDS, deadline, log: (line) => { process.stderr.write(line + '\n') } })
    run = started
    figure('started', `${seconds(started.startMs)}, ${started.rssPerDeviceMiB.toFixed(1)} MiB RSS per device`)
  })

  after(async () => {
    const t = performance.now()
    await run?.hive.stop()
    figure('stopped', seconds(performance.now() - t))
    figure('total', seconds(Date.now() - t0))
  })

  it(`membership of ${DEVICES} converges`, async () => {
    const { ms, views } = await membershipConverges(run, deadline)
    figure('membership converged', seconds(ms))
    const all = [...run.peers].sort().join()
    assert.equal(views.length, DEVICES)
    for (const device of views) assert.equal([...device.members].sort().join(), all, device.name)
  })

  it('every device\'s capabilities reach every other', async () => {
    const { ms, views } = await capabilitiesConverge(run, deadline)
    figure('capabilities converged', seconds(ms))
    const servers = run.profiles.flatMap((profile, i) => profile.kind === 'server' ? [{ profile, peer: run.peers[i]! }] : [])
    assert.equal(views.length, DEVICES)
    for (const device of views) {
      for (const server of servers) assert.equal(device.cores[server.peer], server.profile.cores, `${device.name} sees ${server.profile.name}'s cores`)
    }
  })

  it(`a context edited on ${EDITORS} devices converges on all ${DEVICES}`, async () => {
    const converged = await contextConverges(run, EDITORS, deadline)
    figure('context converged', seconds(converged.ms))
    // the same value under each key everywhere (a map's key order is each replica's own)
    assert.equal(converged.views.length, DEVICES)
    const views = converged.views.map(device => JSON.stringify(device.values))
    assert.equal(new Set(views).size, 1, `every device holds the same state: ${[...new Set(views)].join(' | ')}`)
  })

  it(`a burst of ${TASKS} tasks is placed, each with at most one accepted result`, async () => {
    const gossipBefore = await run.gossip()
    const elu = perf.eventLoopUtilization()
    const cpu = process.cpuUsage()
    placed = await burst(run, TASKS, 19, deadline)
    // whether the event loops are what limits the hive: each shard's busy share, the main thread's, and the process's CPU over the wall time
    const used = process.cpuUsage(cpu)
    const busy = placed.busy.map(b => `${b.shard} ${(b.share * 100).toFixed(0)} %`).join(', ')
    figure('event loops during the burst', `${busy} busy (main thread ${(perf.eventLoopUtilization(elu).utilization * 100).toFixed(0)} %); process CPU ${((used.user + used.system) / 1000 / placed.spanMs * 100).toFixed(0)} % of one core`)
    const done = placed.views.filter(v => v.status === 'done')
    figure('burst', `${done.length}/${TASKS} done in ${seconds(placed.spanMs)} on ${placed.executors.size} devices; placement p50 ${Math.round(percentile(placed.latencies, 50))} ms, p99 ${Math.round(percentile(placed.latencies, 99))} ms`)
    figure('gossip during the burst', `${((await run.gossip() - gossipBefore) / DEVICES / (placed.spanMs / 1000)).toFixed(1)} messages per device per second`)
    assert.equal(done.length, TASKS, JSON.stringify(placed.views.filter(v => v.status !== 'done').map(v => v.error ?? v.status).slice(0, 5)))
    for (const view of placed.views) assert.ok(view.result?.ok === true, `${view.id} has its one accepted result`)
    const ok = await okRecordsOf(run, placed.views.map(v => v.id), deadline)
    for (const view of placed.views) {
      // what the submitter heard of the record, for a task without one
      const heard = JSON.stringify({ executor: view.result?.executor, ledger: view.result?.ledger, history: view.history.slice(-4) })
      assert.equal(ok.get(view.id) ?? 0, 1, `task ${view.id} has one ok record in all the hive's chains: ${heard}`)
    }
  })

  it('every chain is held everywhere', async () => {
    figure('chains everywhere', seconds(await chainsEverywhere(run, deadline)))
  })

  it('verify is clean on every device', async () => {
    const t = performance.now()
    const report = await verifyEverywhere(run)
    figure('verify', `${report.records} records audited on ${DEVICES} devices in ${seconds(performance.now() - t)}`)
    assert.ok(report.ok, report.failures.join('\n'))
    assert.ok(Date.now() <= deadline, `over the budget of ${BUDGET_MS / 1000} s`)
  })
})
