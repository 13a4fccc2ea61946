// The node's own metrics, fed by the events its parts already emit: placement's typed events,
// the sandbox's run reports, the context store's updates, the ledger's events and the LLM
// router's calls. Gauges that mirror a count held elsewhere (members, peers, workers, records
// held) are read when a scrape comes. The subsystems know nothing of this file; the node wires
// it. Every metric is listed in the README (Metrics).

import { DURATION_BUCKETS, Registry } from './registry.ts'
import type { Counter, Gauge, Histogram } from './registry.ts'
import { LOCAL_ORIGIN } from '../../crdt/index.ts'
import type { ContextStore } from '../../crdt/index.ts'
import type { Ledger, LedgerEventDetails } from '../../ledger/index.ts'
import type { Placement, TaskId, TaskStatus, TaskView } from '../../protocol/index.ts'
import type { LlmCallEvent } from '../../protocol/llm/index.ts'
import type { Sandbox, SandboxRunEvent } from '../../sandbox/index.ts'

/** Tasks whose statuses are remembered, to count each status once per task. */
const MAX_TRACKED_TASKS = 10_000

export interface HiveMetricsInit {
  name: string
  version: string
  peerId: string
}

/** What the metrics read and listen to. */
export interface HiveMetricsSources {
  placement: Pick<Placement, 'on' | 'running'>
  contexts: Pick<ContextStore, 'events' | 'ids'>
  ledger: Pick<Ledger, 'addEventListener' | 'removeEventListener' | 'chains'>
  sandbox: Pick<Sandbox, 'stats'>
  members: () => number
  connectedPeers: () => number
}

export class HiveMetrics {
  readonly registry: Registry
  private readonly tasks: Counter
  private readonly taskDuration: Histogram
  private readonly placementOverhead: Histogram
  private readonly taskRuns: Counter
  private readonly bidsSent: Counter
  private readonly bidsReceived: Counter
  private readonly sandboxRuns: Counter
  private readonly sandboxDuration: Histogram
  private readonly sandboxFailures: Counter
  private readonly sandboxStarts: Counter
  private readonly contextUpdates: Counter
  private readonly contextBytes: Counter
  private readonly ledgerRecords: Counter
  private readonly verifications: Counter
  private readonly forks: Counter
  private readonly llmCalls: Counter
  private readonly llmTokens: Counter
  private readonly seen = new Map<TaskId, Set<TaskStatus>>()
  /** This device's PeerId: the signer of its own ledger chain. */
  private readonly self: string
  private sources?: HiveMetricsSources
  private readonly detach: Array<() => void> = []

  constructor (init: HiveMetricsInit, registry: Registry = new Registry()) {
    const r = this.registry = registry
    this.self = init.peerId
    r.gauge({ name: 'hive_node_info', help: 'This node: its name, version and PeerId (always 1)', labelNames: ['name', 'version', 'peer_id'] })
      .set({ name: init.name, version: init.version, peer_id: init.peerId }, 1)

    // ---- process ----
    const startSeconds = (Date.now() - performance.now()) / 1000
    r.gauge({ name: 'process_start_time_seconds', help: 'When the process started, in seconds since the Unix epoch' }).set(undefined, Math.round(startSeconds))
    const rss = r.gauge({ name: 'process_resident_memory_bytes', help: 'Resident memory of the process', collect: () => { rss.set(undefined, process.memoryUsage.rss()) } })
    const cpu = r.counter({
      name: 'process_cpu_seconds_total',
      help: 'CPU time the process used, user and system',
      collect: () => { const u = process.cpuUsage(); cpu.setTotal(undefined, (u.user + u.system) / 1e6) }
    })
    const heap = r.gauge({ name: 'nodejs_heap_size_used_bytes', help: 'V8 heap in use', collect: () => { heap.set(undefined, process.memoryUsage().heapUsed) } })

    // ---- placement ----
    this.tasks = r.counter({ name: 'hive_tasks_total', help: 'Tasks submitted on this device, counted once for each status they reach (bidding, awarded, running, done, failed)', labelNames: ['status'] })
    this.taskDuration = r.histogram({ name: 'hive_task_duration_seconds', help: 'Tasks submitted on this device: from submission to their outcome', labelNames: ['outcome'], buckets: DURATION_BUCKETS })
    this.placementOverhead = r.histogram({ name: 'hive_task_placement_overhead_seconds', help: 'Tasks submitted on this device: time to the outcome not spent running the agent (bids, election, agent transfer, result delivery)', buckets: DURATION_BUCKETS })
    this.taskRuns = r.counter({ name: 'hive_task_runs_total', help: 'Tasks this device won and ran: result accepted by the submitter, discarded by it, or not sent (given back, revoked, stopped, or the submitter unreachable)', labelNames: ['outcome'] })
    this.bidsSent = r.counter({ name: 'hive_bids_total', help: 'This device\'s bids on announced tasks, by what became of them (sent, refused, dht, declined, failed)', labelNames: ['outcome'] })
    this.bidsReceived = r.counter({ name: 'hive_bids_received_total', help: 'Bids on tasks submitted on this device (accepted, dht, refused, late)', labelNames: ['outcome'] })
    const running = r.gauge({ name: 'hive_tasks_running', help: 'Tasks this device is running now', collect: () => { if (this.sources != null) running.set(undefined, this.sources.placement.running()) } })

    // ---- sandbox ----
    this.sandboxRuns = r.counter({ name: 'hive_sandbox_runs_total', help: 'Agent runs in this device\'s sandbox, by outcome (ok, error)', labelNames: ['outcome'] })
    this.sandboxDuration = r.histogram({ name: 'hive_sandbox_run_duration_seconds', help: 'Agent runs in this device\'s sandbox: how long each took', labelNames: ['outcome'], buckets: DURATION_BUCKETS })
    this.sandboxFailures = r.counter({ name: 'hive_sandbox_run_failures_total', help: 'Agent runs that failed, by error code', labelNames: ['code'] })
    this.sandboxStarts = r.counter({ name: 'hive_sandbox_starts_total', help: 'Agent runs by how their worker started: warm (it held the agent\'s code) or cold', labelNames: ['start'] })
    const workers = r.gauge({
      name: 'hive_sandbox_workers',
      help: 'Sandbox worker threads (idle, busy) and runs waiting for one (waiting)',
      labelNames: ['state'],
      collect: () => {
        if (this.sources == null) return
        const s = this.sources.sandbox.stats()
        workers.set({ state: 'idle' }, s.idle)
        workers.set({ state: 'busy' }, s.busy)
        workers.set({ state: 'waiting' }, s.waiting)
      }
    })
    const transpiles = r.counter({
      name: 'hive_sandbox_transpiles_total',
      help: 'Agents transpiled (a cold cache) and found in the transpile cache (hit)',
      labelNames: ['result'],
      collect: () => {
        if (this.sources == null) return
        const s = this.sources.sandbox.stats()
        transpiles.setTotal({ result: 'transpiled' }, s.transpiles)
        transpiles.setTotal({ result: 'hit' }, s.cacheHits)
      }
    })

    // ---- contexts ----
    this.contextUpdates = r.counter({ name: 'hive_context_updates_total', help: 'Context updates stored and applied, made here (local) or received from a peer (remote)', labelNames: ['origin'] })
    this.contextBytes = r.counter({ name: 'hive_context_update_bytes_total', help: 'Bytes of the context updates stored and applied', labelNames: ['origin'] })
    const contexts = r.gauge({ name: 'hive_contexts', help: 'Contexts this device holds', collect: () => { if (this.sources != null) contexts.set(undefined, this.sources.contexts.ids().length) } })

    // ---- ledger ----
    this.ledgerRecords = r.counter({ name: 'hive_ledger_records_total', help: 'Ledger records added since start: appended to this device\'s chain (self) or copied from peers (peers)', labelNames: ['chain'] })
    this.verifications = r.counter({ name: 'hive_ledger_verifications_total', help: 'Ledger audits run on this device, by result (ok, failed)', labelNames: ['result'] })
    this.forks = r.counter({ name: 'hive_ledger_forks_total', help: 'Forks proven in chains copied from peers' })
    const held = r.gauge({
      name: 'hive_ledger_records',
      help: 'Ledger records held: this device\'s chain (self) and its copies of members\' chains (peers)',
      labelNames: ['chain'],
      collect: async () => {
        if (this.sources == null) return
        let self = 0
        let peers = 0
        for (const c of await this.sources.ledger.chains()) {
          if (c.self) self += c.end + 1
          else peers += c.end + 1
        }
        held.set({ chain: 'self' }, self)
        held.set({ chain: 'peers' }, peers)
      }
    })

    // ---- hive ----
    const members = r.gauge({ name: 'hive_members', help: 'Devices in this device\'s hive, itself included', collect: () => { if (this.sources != null) members.set(undefined, this.sources.members()) } })
    const peers = r.gauge({ name: 'hive_connected_peers', help: 'Peers this device has a connection to', collect: () => { if (this.sources != null) peers.set(undefined, this.sources.connectedPeers()) } })

    // ---- every label value known in advance shows from the first scrape, at zero ----
    const each = <T extends string>(label: string, values: readonly T[]): Array<Record<string, T>> => values.map(v => ({ [label]: v }))
    this.tasks.init(...each('status', ['bidding', 'awarded', 'running', 'done', 'failed']))
    this.taskDuration.init(...each('outcome', ['done', 'failed']))
    this.taskRuns.init(...each('outcome', ['accepted', 'discarded', 'not_sent']))
    this.bidsSent.init(...each('outcome', ['sent', 'refused', 'dht', 'declined', 'failed']))
    this.bidsReceived.init(...each('outcome', ['accepted', 'dht', 'refused', 'late']))
    this.sandboxRuns.init(...each('outcome', ['ok', 'error']))
    this.sandboxDuration.init(...each('outcome', ['ok', 'error']))
    this.sandboxStarts.init(...each('start', ['warm', 'cold']))
    this.contextUpdates.init(...each('origin', ['local', 'remote']))
    this.contextBytes.init(...each('origin', ['local', 'remote']))
    this.ledgerRecords.init(...each('chain', ['self', 'peers']))
    this.verifications.init(...each('result', ['ok', 'failed']))

    // ---- llm ----
    this.llmCalls = r.counter({ name: 'hive_llm_calls_total', help: 'Model calls answered through the waterfall, by route (local, peer, cloud) and kind (chat, embed)', labelNames: ['route', 'kind'] })
    this.llmTokens = r.counter({ name: 'hive_llm_tokens_total', help: 'Tokens of answered model calls, by route and direction (in: prompt, out: completion)', labelNames: ['route', 'direction'] })
    for (const route of ['local', 'peer', 'cloud']) {
      this.llmCalls.init({ route, kind: 'chat' }, { route, kind: 'embed' })
      this.llmTokens.init({ route, direction: 'in' }, { route, direction: 'out' })
    }
  }

  /** Subscribes to the parts' events; `stop` unsubscribes. */
  attach (sources: HiveMetricsSources): void {
    this.sources = sources
    const { placement, contexts, ledger } = sources
    this.detach.push(
      placement.on('task', (view) => { this.onTask(view) }),
      placement.on('bid', ({ outcome }) => { this.bidsSent.inc({ outcome }) }),
      placement.on('bid-received', ({ outcome }) => { this.bidsReceived.inc({ outcome }) }),
      placement.on('run-end', ({ sent, accepted }) => { this.taskRuns.inc({ outcome: sent ? (accepted === true ? 'accepted' : 'discarded') : 'not_sent' }) }),
      contexts.events.update.add(({ update, origin }) => {
        // the store tags what this device made with its local origin, a peer's with its link
        const o = origin === LOCAL_ORIGIN ? 'local' : 'remote'
        this.contextUpdates.inc({ origin: o })
        this.contextBytes.inc({ origin: o }, update.byteLength)
      })
    )
    const onChain = (event: Event): void => {
      const d = (event as CustomEvent<LedgerEventDetails['chain']>).detail
      this.ledgerRecords.inc({ chain: d.signer === this.self ? 'self' : 'peers' }, d.stored)
    }
    const onVerified = (event: Event): void => { this.verifications.inc({ result: (event as CustomEvent<LedgerEventDetails['verified']>).detail.ok ? 'ok' : 'failed' }) }
    const onFork = (): void => { this.forks.inc() }
    ledger.addEventListener('chain', onChain)
    ledger.addEventListener('verified', onVerified)
    ledger.addEventListener('fork', onFork)
    this.detach.push(() => {
      ledger.removeEventListener('chain', onChain)
      ledger.removeEventListener('verified', onVerified)
      ledger.removeEventListener('fork', onFork)
    })
  }

  stop (): void {
    for (const off of this.detach.splice(0)) off()
  }

  private onTask (view: TaskView): void {
    if (view.role !== 'submitter') return
    let statuses = this.seen.get(view.id)
    if (statuses == null) {
      statuses = new Set()
      this.seen.set(view.id, statuses)
      if (this.seen.size > MAX_TRACKED_TASKS) this.seen.delete(this.seen.keys().next().value as TaskId)
    }
    if (statuses.has(view.status)) return
    statuses.add(view.status)
    this.tasks.inc({ status: view.status })
    if ((view.status === 'done' || view.status === 'failed') && view.closedAt != null) {
      this.seen.delete(view.id)
      const total = Math.max(0, view.closedAt - view.createdAt)
      this.taskDuration.observe({ outcome: view.status }, total / 1000)
      if (view.result != null) this.placementOverhead.observe(undefined, Math.max(0, total - view.result.durationMs) / 1000)
    }
  }

  /** The sandbox's report of a run (its `onRun`). */
  sandboxRun (event: SandboxRunEvent): void {
    const outcome = event.ok ? 'ok' : 'error'
    this.sandboxRuns.inc({ outcome })
    this.sandboxDuration.observe({ outcome }, event.durationMs / 1000)
    if (!event.ok) this.sandboxFailures.inc({ code: event.code ?? 'Error' })
    if (event.warm != null) this.sandboxStarts.inc({ start: event.warm ? 'warm' : 'cold' })
  }

  /** The LLM router's report of an answered call (its `onCall`). */
  llmCall (event: LlmCallEvent): void {
    this.llmCalls.inc({ route: event.route.kind, kind: event.kind })
    this.llmTokens.inc({ route: event.route.kind, direction: 'in' }, event.tokensIn)
    this.llmTokens.inc({ route: event.route.kind, direction: 'out' }, event.tokensOut)
  }

  /** The text a scrape gets. */
  async render (): Promise<string> {
    return this.registry.render()
  }
}
