// The phases of a hive at scale, shared by the scale test (test/scale/hive.scale.ts, which
// asserts) and the scale benchmark (test/bench/scale.bench.ts, which only measures): a virtual
// hive of N real nodes in this process, spread over worker threads (node/simulate/shards.ts; each
// shard runs test/scale/hive-shard.ts, the nodes `start` builds), formed device by device as
// pairing forms it, then membership, capabilities, a context edited on several devices, a burst
// of tasks, the ledger's chains on every member, and `verify`. Each phase runs in every shard on
// the shard's own nodes (`shardPhases`), waiting on their events with the deadline, and answers
// the main thread with what the test asserts on; each main-thread phase returns its figures.

import { availableParallelism } from 'node:os'
import { performance as perf } from 'node:perf_hooks'
import { parseDeviceSpec } from '../../node/simulate/devices.ts'
import { builtinAgent } from '../../node/simulate/agents.ts'
import { seededRandom } from '../../node/simulate/workload.ts'
import { startShardedHive } from '../../node/simulate/shards.ts'
import { WaitTimeoutError } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { DeviceProfile } from '../../node/simulate/devices.ts'
import type { ShardedHive, ShardPhase, ShardState } from '../../node/simulate/shards.ts'
import type { TaskView } from '../../protocol/index.ts'

export interface ScaleOptions {
  devices: number
  /** Worker threads the nodes are spread over. Default one per core. */
  shards?: number
  /** When every phase must be over, as Date.now() milliseconds. */
  deadline: number
  log?: (line: string) => void
}

type Source = { target: EventTarget, type: string } | { listeners: { add: (fn: () => void) => () => void } }

/**
 * Resolves when `check` holds: re-checked on each event of the sources (and once a second, for
 * what has no event of its own), failing with `message` at the deadline.
 */
export async function until (check: () => boolean | Promise<boolean>, sources: Source[], deadline: number, message: string): Promise<void> {
  const { promise, resolve, reject } = Promise.withResolvers<void>()
  let checking = false
  let again = false
  const run = (): void => {
    if (checking) { again = true; return }
    checking = true
    void (async () => {
      try {
        do {
          again = false
          if (await check()) { resolve(); return }
        } while (again)
        if (Date.now() > deadline) reject(new WaitTimeoutError(`${message}: not reached before the deadline`))
      } catch (err) {
        reject(err as Error)
      } finally {
        checking = false
      }
    })()
  }
  const detach: Array<() => void> = []
  for (const s of sources) {
    if ('target' in s) {
      s.target.addEventListener(s.type, run)
      detach.push(() => { s.target.removeEventListener(s.type, run) })
    } else {
      detach.push(s.listeners.add(run))
    }
  }
  const tick = setInterval(run, 1_000)
  const timer = setTimeout(run, Math.max(0, deadline - Date.now()) + 10)
  run()
  try {
    await promise
  } finally {
    clearInterval(tick)
    clearTimeout(timer)
    for (const d of detach) d()
  }
}

export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]!
}

const MiB = 1024 * 1024

/** A hive of `devices`: a tenth servers, a third desktops, the rest laptops (some on battery). */
export function scaleProfiles (devices: number): DeviceProfile[] {
  const servers = Math.max(1, Math.floor(devices / 10))
  const desktops = Math.max(0, Math.floor(devices / 3))
  const laptops = devices - servers - desktops
  const battery = Math.floor(laptops / 2)
  return parseDeviceSpec([
    `${servers}xserver`,
    ...(desktops > 0 ? [`${desktops}xdesktop`] : []),
    ...(laptops - battery > 0 ? [`${laptops - battery}xlaptop`] : []),
    ...(battery > 0 ? [`${battery}xlaptop:battery`] : [])
  ].join(','))
}

// ---- in each shard: the phases on the shard's own nodes -------------------------------------

const nodesOf = (state: ShardState): HiveNode[] => state.devices.map(d => d.node)
let delivered = 0
let counting = false

/** What each shard answers with: the figures of its nodes, and what the test asserts on, per device. */
export interface MembersView { index: number, name: string, members: string[] }
export interface CoresView { index: number, name: string, cores: Record<string, number | undefined> }
export interface ContextView { index: number, name: string, values: Array<string | undefined> }
export interface ShardBurst { shard: string, views: Array<[number, TaskView]>, latencies: number[], busy: number }

export const shardPhases: Record<string, ShardPhase> = {
  /** Counts gossip delivered to the shard's nodes from now on. */
  count: async (state) => {
    if (counting) return
    counting = true
    for (const node of nodesOf(state)) node.libp2p.services.pubsub.addEventListener('message', () => { delivered++ })
  },
  gossip: async () => delivered,
  /** Every node of the shard lists all `total` members (learned through membership's replication). */
  membership: async (state, args: { total: number, deadline: number }): Promise<MembersView[]> => {
    const nodes = nodesOf(state)
    const counts = (): string => nodes.map(node => `${node.name} ${node.hive.membership.members().length}`).join(', ')
    await until(() => nodes.every(node => node.hive.membership.members().length === args.total),
      nodes.map(node => ({ target: node.hive.membership as unknown as EventTarget, type: 'change' })), args.deadline,
      `every device of ${state.data.name} lists ${args.total} members`).catch((err: Error) => {
      throw err instanceof WaitTimeoutError ? new WaitTimeoutError(`${err.message} (members listed: ${counts()})`) : err
    })
    return state.devices.map(d => ({ index: d.index, name: d.node.name, members: d.node.hive.membership.members().map(m => m.peerId) }))
  },
  /** Every node of the shard holds all `total` devices' capability reports. */
  capabilities: async (state, args: { total: number, peers: string[], deadline: number }): Promise<CoresView[]> => {
    const nodes = nodesOf(state)
    await until(() => nodes.every(node => node.capabilities.view().length === args.total),
      nodes.map(node => ({ target: node.capabilities, type: 'change' })), args.deadline,
      `every device of ${state.data.name} holds ${args.total} devices' capabilities`)
    return state.devices.map(d => ({ index: d.index, name: d.node.name, cores: Object.fromEntries(args.peers.map(peer => [peer, d.node.capabilities.get(peer)?.caps.cores])) }))
  },
  /** The shard's editors (`edits`: device index and key) edit the context at once. */
  edit: async (state, args: { id: string, edits: Array<[number, string]> }) => {
    await Promise.all(args.edits.map(async ([index, key]) => {
      const node = state.devices.find(d => d.index === index)?.node
      if (node == null) throw new RangeError(`device ${index} is not in ${state.data.name}`)
      const context = await node.contexts.store.open(args.id)
      await context.set(key, node.name)
    }))
  },
  /** Every node of the shard holds every key of the context. */
  context: async (state, args: { id: string, keys: string[], deadline: number }): Promise<ContextView[]> => {
    const nodes = nodesOf(state)
    await until(() => nodes.every(node => {
      const context = node.contexts.store.get(args.id)
      return context != null && args.keys.every(k => context.get(k) != null)
    }), nodes.map(node => ({ listeners: node.contexts.store.events.update })), args.deadline,
    `a context holds every edit on every device of ${state.data.name}`)
    return state.devices.map(d => ({ index: d.index, name: d.node.name, values: args.keys.map(k => d.node.contexts.store.get(args.id)?.get(k) as string | undefined) }))
  },
  /** Submits the shard's share of a burst (`froms`: task number and device index) at once and waits for every one to end. */
  burst: async (state, args: { froms: Array<[number, number]>, deadline: number }): Promise<ShardBurst> => {
    const agent = await builtinAgent('work')
    const elu = perf.eventLoopUtilization()
    const latencies: number[] = []
    const views = await Promise.all(args.froms.map(async ([task, index]): Promise<[number, TaskView]> => {
      const node = state.devices.find(d => d.index === index)?.node
      if (node == null) throw new RangeError(`device ${index} is not in ${state.data.name}`)
      const s = performance.now()
      const view = await node.placement.submit({ agent, input: 'w' })
      const ended = await node.placement.wait(view.id, { signal: AbortSignal.timeout(Math.max(1, args.deadline - Date.now())) })
      latencies.push(performance.now() - s)
      return [task, ended]
    }))
    return { shard: state.data.name, views, latencies, busy: perf.eventLoopUtilization(elu).utilization }
  },
  /** The `ok` ledger records for each task over the chains the shard's nodes hold. */
  okRecords: async (state): Promise<Array<[string, number]>> => {
    const counts = new Map<string, number>()
    for (const node of nodesOf(state)) {
      for (const listed of await node.ledger.list()) {
        if (listed.record?.status === 'ok') counts.set(listed.record.task, (counts.get(listed.record.task) ?? 0) + 1)
      }
    }
    return [...counts]
  },
  /** The end of each node's own chain, for those with records. */
  ends: async (state): Promise<Array<[string, number]>> => {
    const ends: Array<[string, number]> = []
    for (const node of nodesOf(state)) {
      const own = (await node.ledger.chains()).find(c => c.self)
      if (own != null && own.end >= 0) ends.push([node.peerId.toString(), own.end])
    }
    return ends
  },
  /** Every node of the shard holds every chain of `ends` up to its end. */
  chains: async (state, args: { ends: Array<[string, number]>, deadline: number }) => {
    const nodes = nodesOf(state)
    const held = async (node: HiveNode): Promise<boolean> => {
      const chains = new Map((await node.ledger.chains()).map(c => [c.signer, c.end]))
      for (const [signer, end] of args.ends) if ((chains.get(signer) ?? -1) < end) return false
      return true
    }
    const done = new Set<HiveNode>()
    await until(async () => {
      for (const node of nodes) if (!done.has(node) && await held(node)) done.add(node)
      return done.size === nodes.length
    }, nodes.map(node => ({ target: node.ledger, type: 'chain' })), args.deadline,
    `every device of ${state.data.name} holds the ${args.ends.length} chains with records`)
  },
  /** `verify` on each node of the shard. */
  verify: async (state): Promise<{ records: number, failures: string[] }> => {
    let records = 0
    const failures: string[] = []
    for (const node of nodesOf(state)) {
      const report = await node.ledger.verify()
      records += report.records
      if (!report.ok) failures.push(`${node.name}: ${JSON.stringify(report.chains.filter(c => !c.ok)).slice(0, 300)}`)
    }
    return { records, failures }
  }
}

// ---- in the main thread: each phase asked of every shard ------------------------------------

export interface ScaleRun {
  hive: ShardedHive
  profiles: DeviceProfile[]
  /** PeerId of each device, by index. */
  peers: string[]
  /** Gossip messages delivered to the nodes since the hive started (every topic). */
  gossip: () => Promise<number>
  rssBefore: number
}

/** HIVE_SCALE_SHARDS, or one shard per core. */
export function shardCount (): number {
  const raw = process.env.HIVE_SCALE_SHARDS
  if (raw == null || raw === '') return availableParallelism()
  const n = Number(raw)
  if (!Number.isSafeInteger(n) || n < 1) throw new RangeError(`HIVE_SCALE_SHARDS=${raw} is not a whole number from 1`)
  return n
}

/** The scale hive's bid window, lease and winner grace for a hive of `devices` in one process. */
function scaleTiming (devices: number): { bidWindowMs: number, leaseMs: number, winnerGraceMs: number } {
  const bidWindowMs = Math.max(5_000, devices * 200)
  return { bidWindowMs, leaseMs: 2 * bidWindowMs, winnerGraceMs: bidWindowMs }
}

/** Starts the hive over its shards, formed one device at a time as pairing forms it. */
export async function startScaleHive (options: ScaleOptions): Promise<ScaleRun & { startMs: number, rssPerDeviceMiB: number }> {
  const rssBefore = process.memoryUsage().rss
  const t0 = performance.now()
  const profiles = scaleProfiles(options.devices)
  const hive = await startShardedHive({
    profiles,
    shards: options.shards ?? shardCount(),
    worker: new URL('./hive-shard.ts', import.meta.url),
    formation: 'one-by-one',
    startConcurrency: 4,
    logLevel: 'error',
    logSink: (line) => { options.log?.(line) },
    extra: {
      // a device quiet for a minute leaves the view: a loaded event loop must not expire a live one
      capabilities: { intervalMs: 5_000, expireMs: 60_000 },
      // a burst on one loaded process: room for bids and leases to arrive, which grows with the
      // devices sharing its cores (5 s up to 25 devices, 10 s at 50: at 5 s a burst at 50 failed
      // 32 of 200 tasks NoBids with every bid late, at 10 s none or one)
      placement: scaleTiming(options.devices)
    }
  })
  try {
    await hive.all('count')
  } catch (err) {
    await hive.stop()
    throw err
  }
  const startMs = performance.now() - t0
  const gossip = async (): Promise<number> => (await hive.all<number>('gossip')).reduce((a, b) => a + b, 0)
  return { hive, profiles, peers: hive.peers, gossip, rssBefore, startMs, rssPerDeviceMiB: (process.memoryUsage().rss - rssBefore) / MiB / profiles.length }
}

/** Per device, in index order. */
const byIndex = <T extends { index: number }>(answers: T[][]): T[] => answers.flat().sort((a, b) => a.index - b.index)

/** Every member lists all N members; returns the time and each device's member list. */
export async function membershipConverges (run: ScaleRun, deadline: number): Promise<{ ms: number, views: MembersView[] }> {
  const t0 = performance.now()
  const views = byIndex(await run.hive.all<MembersView[]>('membership', { total: run.profiles.length, deadline }))
  return { ms: performance.now() - t0, views }
}

/** Every device's capability report reaches every other device; returns the time and the cores each device sees. */
export async function capabilitiesConverge (run: ScaleRun, deadline: number): Promise<{ ms: number, views: CoresView[] }> {
  const t0 = performance.now()
  const views = byIndex(await run.hive.all<CoresView[]>('capabilities', { total: run.profiles.length, peers: run.peers, deadline }))
  return { ms: performance.now() - t0, views }
}

/** A context edited on `editors` devices at once converges on every device: each holds every edit. */
export async function contextConverges (run: ScaleRun, editors: number, deadline: number): Promise<{ ms: number, keys: string[], views: ContextView[] }> {
  const id = 'scale-context'
  const n = run.profiles.length
  const keys = Array.from({ length: editors }, (_, i) => `edit-${i}`)
  const step = Math.max(1, Math.floor(n / editors))
  const edits = keys.map((key, i): [number, string] => [(i * step) % n, key])
  const t0 = performance.now()
  await run.hive.all('edit', (s: { indices: number[] }) => ({ id, edits: edits.filter(([index]) => s.indices.includes(index)) }))
  const views = byIndex(await run.hive.all<ContextView[]>('context', { id, keys, deadline }))
  return { ms: performance.now() - t0, keys, views }
}

export interface BurstResult {
  views: TaskView[]
  latencies: number[]
  spanMs: number
  /** Devices that ran at least one task. */
  executors: Set<string>
  /** Each shard's event loop busy share during its part of the burst, 0–1. */
  busy: Array<{ shard: string, share: number }>
}

/** Submits `tasks` at once, each from a device drawn by the seed, and waits for every one to end. */
export async function burst (run: ScaleRun, tasks: number, seed: number, deadline: number): Promise<BurstResult> {
  const random = seededRandom(seed)
  const n = run.profiles.length
  const froms = Array.from({ length: tasks }, (_, task): [number, number] => [task, Math.floor(random() * n)])
  const t0 = performance.now()
  const answers = await run.hive.all<ShardBurst>('burst', (s: { indices: number[] }) => ({ froms: froms.filter(([, index]) => s.indices.includes(index)), deadline }))
  const spanMs = performance.now() - t0
  const views: TaskView[] = []
  for (const a of answers) for (const [task, view] of a.views) views[task] = view
  return {
    views,
    latencies: answers.flatMap(a => a.latencies),
    spanMs,
    executors: new Set(views.flatMap(v => v.result != null ? [v.result.executor] : [])),
    busy: answers.map(a => ({ shard: a.shard, share: a.busy }))
  }
}

/**
 * The `ok` ledger records for each of `tasks` over every executor's own chain, once each task has
 * one or the deadline passes (then as they stand). A winner appends its record after its result
 * is accepted, so the last tasks of a burst can be done a moment before their records exist.
 */
export async function okRecordsOf (run: ScaleRun, tasks: string[], deadline: number): Promise<Map<string, number>> {
  let counts = new Map<string, number>()
  await until(async () => {
    counts = await okRecordsByTask(run)
    return tasks.every(t => (counts.get(t) ?? 0) >= 1)
  }, [], deadline, `every task's ok record is in its executor's chain`).catch((err: unknown) => { if (!(err instanceof WaitTimeoutError)) throw err })
  return counts
}

/** The `ok` ledger records for each task, over every executor's own chain. */
export async function okRecordsByTask (run: ScaleRun): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const answer of await run.hive.all<Array<[string, number]>>('okRecords')) {
    for (const [task, count] of answer) counts.set(task, (counts.get(task) ?? 0) + count)
  }
  return counts
}

/** Every device holds every device's chain up to that device's own end. */
export async function chainsEverywhere (run: ScaleRun, deadline: number): Promise<number> {
  const t0 = performance.now()
  const ends = (await run.hive.all<Array<[string, number]>>('ends')).flat()
  await run.hive.all('chains', { ends, deadline })
  return performance.now() - t0
}

/** `verify` on every device: every chain it holds audits clean. */
export async function verifyEverywhere (run: ScaleRun): Promise<{ ok: boolean, records: number, failures: string[] }> {
  const answers = await run.hive.all<{ records: number, failures: string[] }>('verify')
  const failures = answers.flatMap(a => a.failures)
  return { ok: failures.length === 0, records: answers.reduce((sum, a) => sum + a.records, 0), failures }
}
