// The phases of a hive at scale, shared by the scale test (test/scale/hive.scale.ts, which
// asserts) and the scale benchmark (test/bench/scale.bench.ts, which only measures): a virtual
// hive of N real nodes in this process (node/simulate/virtual-hive.ts, the nodes `start` builds),
// formed device by device as pairing forms it, then membership, capabilities, a context edited on
// several devices, a burst of tasks, the ledger's chains on every member, and `verify`.
// Every wait is on the parts' own events with a deadline; each phase returns its figures.

import { parseDeviceSpec } from '../../node/simulate/devices.ts'
import { builtinAgent } from '../../node/simulate/agents.ts'
import { seededRandom } from '../../node/simulate/workload.ts'
import { startVirtualHive } from '../../node/simulate/virtual-hive.ts'
import { WaitTimeoutError } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { VirtualHive } from '../../node/simulate/virtual-hive.ts'
import type { TaskView } from '../../protocol/index.ts'

export interface ScaleOptions {
  devices: number
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
export function scaleProfiles (devices: number): ReturnType<typeof parseDeviceSpec> {
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

export interface ScaleRun {
  hive: VirtualHive
  nodes: HiveNode[]
  /** Gossip messages delivered to the nodes since the hive started (every topic). */
  gossip: () => number
  rssBefore: number
}

/** Starts the hive, formed one device at a time as pairing forms it. */
export async function startScaleHive (options: ScaleOptions): Promise<ScaleRun & { startMs: number, rssPerDeviceMiB: number }> {
  const rssBefore = process.memoryUsage().rss
  const t0 = performance.now()
  const hive = await startVirtualHive({
    profiles: scaleProfiles(options.devices),
    formation: 'one-by-one',
    startConcurrency: 4,
    logLevel: 'error',
    logSink: (line) => { options.log?.(line) },
    init: () => ({
      // a device quiet for a minute leaves the view: a loaded event loop must not expire a live one
      capabilities: { intervalMs: 5_000, expireMs: 60_000 },
      // a burst on one loaded process: room for bids and leases to arrive
      placement: { bidWindowMs: 5_000, leaseMs: 10_000, winnerGraceMs: 5_000 }
    })
  })
  const nodes = hive.live()
  let delivered = 0
  for (const node of nodes) node.libp2p.services.pubsub.addEventListener('message', () => { delivered++ })
  const startMs = performance.now() - t0
  return { hive, nodes, gossip: () => delivered, rssBefore, startMs, rssPerDeviceMiB: (process.memoryUsage().rss - rssBefore) / MiB / nodes.length }
}

/** Every member lists all N members (learned through membership's replication). */
export async function membershipConverges (run: ScaleRun, deadline: number): Promise<number> {
  const t0 = performance.now()
  const n = run.nodes.length
  await until(() => run.nodes.every(node => node.hive.membership.members().length === n),
    run.nodes.map(node => ({ target: node.hive.membership as unknown as EventTarget, type: 'change' })), deadline,
    `every device lists ${n} members`)
  return performance.now() - t0
}

/** Every device's capability report reaches every other device. */
export async function capabilitiesConverge (run: ScaleRun, deadline: number): Promise<number> {
  const t0 = performance.now()
  const n = run.nodes.length
  await until(() => run.nodes.every(node => node.capabilities.view().length === n),
    run.nodes.map(node => ({ target: node.capabilities, type: 'change' })), deadline,
    `every device holds ${n} devices' capabilities`)
  return performance.now() - t0
}

/** A context edited on `editors` devices at once converges on every device: each holds every edit. */
export async function contextConverges (run: ScaleRun, editors: number, deadline: number): Promise<number> {
  const id = 'scale-context'
  const keys = Array.from({ length: editors }, (_, i) => `edit-${i}`)
  const step = Math.max(1, Math.floor(run.nodes.length / editors))
  const t0 = performance.now()
  await Promise.all(keys.map(async (key, i) => {
    const node = run.nodes[(i * step) % run.nodes.length]!
    const context = await node.contexts.store.open(id)
    await context.set(key, node.name)
  }))
  await until(() => run.nodes.every(node => {
    const context = node.contexts.store.get(id)
    return context != null && keys.every(k => context.get(k) != null)
  }), run.nodes.map(node => ({ listeners: node.contexts.store.events.update })), deadline,
  `a context edited on ${editors} devices holds every edit on all ${run.nodes.length}`)
  return performance.now() - t0
}

export interface BurstResult {
  views: TaskView[]
  latencies: number[]
  spanMs: number
  /** Devices that ran at least one task. */
  executors: Set<string>
}

/** Submits `tasks` at once, each from a device drawn by the seed, and waits for every one to end. */
export async function burst (run: ScaleRun, tasks: number, seed: number, deadline: number): Promise<BurstResult> {
  const agent = await builtinAgent('work')
  const random = seededRandom(seed)
  const froms = Array.from({ length: tasks }, () => run.nodes[Math.floor(random() * run.nodes.length)]!)
  const t0 = performance.now()
  const latencies: number[] = []
  const views = await Promise.all(froms.map(async (node) => {
    const s = performance.now()
    const view = await node.placement.submit({ agent, input: 'w' })
    const ended = await node.placement.wait(view.id, { signal: AbortSignal.timeout(Math.max(1, deadline - Date.now())) })
    latencies.push(performance.now() - s)
    return ended
  }))
  return { views, latencies, spanMs: performance.now() - t0, executors: new Set(views.flatMap(v => v.result != null ? [v.result.executor] : [])) }
}

/** The `ok` ledger records for each task, over every executor's own chain. */
export async function okRecordsByTask (run: ScaleRun): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const node of run.nodes) {
    for (const listed of await node.ledger.list()) {
      if (listed.record?.status === 'ok') counts.set(listed.record.task, (counts.get(listed.record.task) ?? 0) + 1)
    }
  }
  return counts
}

/** Every device holds every device's chain up to that device's own end. */
export async function chainsEverywhere (run: ScaleRun, deadline: number): Promise<number> {
  const t0 = performance.now()
  const ends = new Map<string, number>()
  for (const node of run.nodes) {
    const own = (await node.ledger.chains()).find(c => c.self)
    if (own != null && own.end >= 0) ends.set(node.peerId.toString(), own.end)
  }
  const held = async (node: HiveNode): Promise<boolean> => {
    const chains = new Map((await node.ledger.chains()).map(c => [c.signer, c.end]))
    for (const [signer, end] of ends) if ((chains.get(signer) ?? -1) < end) return false
    return true
  }
  const done = new Set<HiveNode>()
  await until(async () => {
    for (const node of run.nodes) if (!done.has(node) && await held(node)) done.add(node)
    return done.size === run.nodes.length
  }, run.nodes.map(node => ({ target: node.ledger, type: 'chain' })), deadline,
  `every device holds the ${ends.size} chains with records`)
  return performance.now() - t0
}

/** `verify` on every device: every chain it holds audits clean. */
export async function verifyEverywhere (run: ScaleRun): Promise<{ ok: boolean, records: number, failures: string[] }> {
  let records = 0
  const failures: string[] = []
  for (const node of run.nodes) {
    const report = await node.ledger.verify()
    records += report.records
    if (!report.ok) failures.push(`${node.name}: ${JSON.stringify(report.chains.filter(c => !c.ok)).slice(0, 300)}`)
  }
  return { ok: failures.length === 0, records, failures }
}
