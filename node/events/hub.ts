// The node's event hub: what `GET /events` streams and `hive-node monitor` and `logs` read. It
// listens to the events the parts already dispatch (placement's typed events, the ledger's,
// the context store's, membership's, capability gossip's, libp2p's connection events) and turns
// them into one typed, numbered stream with device names beside PeerIds. The parts know nothing
// of it; the node wires it, as it wires the metrics.
//
// Costs nothing while nobody listens: an event's payload is built only when a subscriber is



import { LOCAL_ORIGIN } from '../../crdt/index.ts'
import type { ContextStore } from '../../crdt/index.ts'
import type { Ledger, LedgerEventDetails, LedgerHealth } from '../../ledger/index.ts'
import type { AgentLogLine, CapabilityEntry, CapabilityReport, MembershipChange, Placement, TaskId, TaskStatus, TaskView } from '../../protocol/index.ts'
import { isEnded } from '../../protocol/index.ts'
import type { PeerId } from '@libp2p/interface'

/** A device named beside its PeerId: `{ peer, peerName }`, `{ executor, executorName }`, … */
type Named<K extends string> = { [P in K]: string } & { [P in `${K}Name`]?: string }

/** Every event the stream carries, with its payload. README › Event stream lists them. */
export interface HiveEventMap {
  /** The first event of every stream: which node this is. */
  hello: Named<'peer'>
  'peer.connected': Named<'peer'> & { member: boolean }
  'peer.disconnected': Named<'peer'>
  'capabilities.changed': Named<'peer'> & { caps: CapabilityReport }
  'capabilities.expired': Named<'peer'>
  'task.announced': { task: TaskId, agent: string, contextId?: string } & Named<'submitter'>
  /** A bid on a task submitted here (`accepted`, `dht`, `refused`, `late`), or this device's own bid (`sent`, `declined`, …). */
  'task.bid': { task: TaskId, outcome: string } & Named<'bidder'>
  'task.awarded': { task: TaskId, round: number } & Named<'winner'>
  'task.running': { task: TaskId, round: number } & Named<'executor'>
  /** A line the agent logged; `n` counts a task's lines from 1. */
  'task.log': { task: TaskId, n: number, level: string, message: string } & Named<'executor'>
  'task.done': { task: TaskId, round: number, durationMs: number, ledgerSeq?: number } & Named<'executor'>
  'task.failed': { task: TaskId, round: number, error: { code: string, message: string }, executor?: string, executorName?: string }
  /** A run on this device ended: its result taken by the submitter, discarded, or not sent (given back, revoked, stopped). */
  'task.run-ended': { task: TaskId, round: number, outcome: 'accepted' | 'discarded' | 'not-sent', reason?: string } & Named<'executor'>
  'ledger.appended': { end: number, stored: number } & Named<'signer'>
  'ledger.verified': LedgerEventDetails['verified']
  'ledger.health': LedgerHealth
  'context.created': { context: string }
  'context.changed': { context: string, origin: 'local' | 'remote', bytes: number, peer?: string, peerName?: string }
  'membership.changed': { hiveId: string, hiveChanged: boolean, joined: Array<Named<'peer'>>, left: Array<Named<'peer'>> }
}

export type HiveEventType = keyof HiveEventMap & string
export const HIVE_EVENT_TYPES: readonly HiveEventType[] = [
  'hello', 'peer.connected', 'peer.disconnected', 'capabilities.changed', 'capabilities.expired',
  'task.announced', 'task.bid', 'task.awarded', 'task.running', 'task.log', 'task.done', 'task.failed', 'task.run-ended',
  'ledger.appended', 'ledger.verified', 'ledger.health', 'context.created', 'context.changed', 'membership.changed'
]

/** One event: its number on this node (from 1, in order), its type, when, and its payload. */
export interface HiveEvent<K extends HiveEventType = HiveEventType> {
  id: number
  type: K
  at: number
  data: HiveEventMap[K]
}

export type Subscriber = (event: HiveEvent) => void

/** A task's log lines as this node holds them. */
export interface TaskLogs {
  lines: Array<AgentLogLine & { n: number, at: number }>
  /** Lines past the bound below were streamed but not kept. */
  dropped: number
  /** The run here ended. */
  ended: boolean
}

/** Log lines kept per task run here: the sandbox's own bound on one run. */
export const MAX_KEPT_LINES_PER_TASK = 1000
/** Bytes of log lines kept over all tasks; the oldest task's lines go first. */
export const MAX_KEPT_LOG_BYTES = 4 * 1024 * 1024

type Off = () => void
type Listener<T> = (event: CustomEvent<T>) => void

/** What the hub listens to and reads names from: narrow, so a test can hand it stubs. */
export interface EventSources {
  /** This device's PeerId and name. */
  self: { peerId: string, name: string }
  placement: Pick<Placement, 'on' | 'get'>
  contexts: Pick<ContextStore, 'events'>
  ledger: Pick<Ledger, 'addEventListener' | 'removeEventListener'>
  capabilities: EventTarget & { get: (peerId: string) => CapabilityEntry | undefined }
  membership: EventTarget & { member: (peerId: string) => { name?: string } | undefined, isMember: (peerId: string) => boolean }
  host: {
    addEventListener: (type: 'peer:connect' | 'peer:disconnect', listener: Listener<PeerId>) => void
    removeEventListener: (type: 'peer:connect' | 'peer:disconnect', listener: Listener<PeerId>) => void
  }
}

interface KeptLog extends TaskLogs {
  bytes: number
  /** Of a task submitted here and run on another device: the round whose lines streamed, and how many of them came. */
  streamed?: { round: number, through: number }
}

export class EventHub {
  private readonly subscribers = new Set<Subscriber>()
  private nextId = 1
  private sources?: EventSources
  private readonly detach: Off[] = []
  /** Tasks submitted here and the status and round last streamed, to stream each step once. */
  private readonly submitted = new Map<TaskId, { status: TaskStatus, round: number }>()
  private readonly logs = new Map<TaskId, KeptLog>()
  private logBytes = 0

  get subscriberCount (): number {
    return this.subscribers.size
  }

  /** Calls `subscriber` with every event from now on; the returned function unsubscribes. */
  subscribe (subscriber: Subscriber): Off {
    this.subscribers.add(subscriber)
    return () => { this.subscribers.delete(subscriber) }
  }

  /** This node, as the `hello` event names it. */
  hello (): HiveEvent<'hello'> {
    const self = this.sources?.self
    return { id: 0, type: 'hello', at: Date.now(), data: { peer: self?.peerId ?? '', ...(self != null ? { peerName: self.name } : {}) } }
  }

  /** The name of a device: its current one from capability gossip, else the member list's. */
  name (peerId: string): string | undefined {
    const s = this.sources
    if (s == null) return undefined
    if (peerId === s.self.peerId) return s.self.name
    return s.capabilities.get(peerId)?.caps.name ?? s.membership.member(peerId)?.name
  }

  private named<K extends string> (key: K, peerId: string): Named<K> {
    const name = this.name(peerId)
    return { [key]: peerId, ...(name != null ? { [`${key}Name`]: name } : {}) } as Named<K>
  }

  /** Streams an event; its payload is built only when someone listens. */
  private publish<K extends HiveEventType> (type: K, data: () => HiveEventMap[K]): void {
    if (this.subscribers.size === 0) return
    const event: HiveEvent<K> = { id: this.nextId++, type, at: Date.now(), data: data() }
    for (const subscriber of this.subscribers) {
      try {
        subscriber(event as HiveEvent)
      } catch {
        // a subscriber's failure is its own
      }
    }
  }

  /** The log lines this node holds for a task run here; undefined when none ran here. */
  taskLogs (task: string): TaskLogs | undefined {
    const kept = this.logs.get(task as TaskId)
    if (kept == null) return undefined
    return { lines: kept.lines.map(l => ({ ...l })), dropped: kept.dropped, ended: kept.ended }
  }

  /** A line an agent running here for `task` logged (the executor's report). */
  agentLine (task: TaskId, line: AgentLogLine): void {
    this.keepLine(task, line, this.sources?.self.peerId ?? '')
  }

  /** Keeps a task's line (within the bounds below) and streams it, numbered within the task. */
  private keepLine (task: TaskId, line: AgentLogLine, executor: string): KeptLog {
    let kept = this.logs.get(task)
    if (kept == null) {
      kept = { lines: [], dropped: 0, ended: false, bytes: 0 }
      this.logs.set(task, kept)
    }
    const n = kept.lines.length + kept.dropped + 1
    const bytes = Buffer.byteLength(line.message) + line.level.length
    if (kept.lines.length < MAX_KEPT_LINES_PER_TASK) {
      kept.lines.push({ level: line.level, message: line.message, n, at: Date.now() })
      kept.bytes += bytes
      this.logBytes += bytes
      this.evictLogs(task)
    } else {
      kept.dropped++
    }
    this.publish('task.log', () => ({ task, n, level: line.level, message: line.message, ...this.named('executor', executor) }))
    return kept
  }

  private evictLogs (keep: TaskId): void {
    for (const [task, kept] of this.logs) {
      if (this.logBytes <= MAX_KEPT_LOG_BYTES) return
      if (task === keep) continue
      this.logs.delete(task)
      this.logBytes -= kept.bytes
    }
  }

  /** Subscribes to the parts' events; `stop` unsubscribes. */
  attach (sources: EventSources): void {
    this.sources = sources
    const { placement, contexts, ledger, capabilities, membership, host } = sources
    const self = sources.self.peerId

    // ---- tasks ----
    this.detach.push(
      placement.on('task', (view) => { this.onTask(view) }),
      placement.on('bid-received', ({ task, bidder, outcome }) => {
        this.publish('task.bid', () => ({ task, outcome, ...this.named('bidder', bidder) }))
      }),
      placement.on('bid', ({ task, outcome }) => {
        // this device's bid on its own task is streamed once, as the auction took it
        if (this.submitted.has(task)) return
        this.publish('task.bid', () => ({ task, outcome, ...this.named('bidder', self) }))
      }),
      placement.on('logs', ({ task, round, executor, from, lines }) => {
        let kept: KeptLog | undefined
        for (const line of lines) kept = this.keepLine(task, line, executor)
        if (kept != null) kept.streamed = { round, through: from + lines.length - 1 }
      }),
      placement.on('run-start', ({ task, round }) => {
        if (this.submitted.has(task)) return
        this.publish('task.running', () => ({ task, round, ...this.named('executor', self) }))
      }),
      placement.on('run-end', ({ task, round, sent, accepted, reason }) => {
        const kept = this.logs.get(task)
        if (kept != null) kept.ended = true
        const outcome = !sent ? 'not-sent' : accepted === true ? 'accepted' : 'discarded'
        this.publish('task.run-ended', () => ({ task, round, outcome, ...(reason != null ? { reason } : {}), ...this.named('executor', self) }))
        // a task submitted elsewhere ends here when its submitter took this device's result
        if (this.submitted.has(task) || outcome !== 'accepted') return
        const view = placement.get(task)
        if (view?.result != null) this.finished(view, view.result.ok ? 'done' : 'failed')
      })
    )

    // ---- contexts ----
    this.detach.push(
      contexts.events.created.add(({ id }) => { this.publish('context.created', () => ({ context: id })) }),
      contexts.events.update.add(({ id, update, origin }) => {
        this.publish('context.changed', () => {
          const peer = origin !== LOCAL_ORIGIN && typeof origin === 'object' && origin != null && typeof (origin as { peer?: unknown }).peer === 'string'
            ? (origin as { peer: string }).peer
            : undefined
          return { context: id, origin: origin === LOCAL_ORIGIN ? 'local' : 'remote', bytes: update.byteLength, ...(peer != null ? this.named('peer', peer) : {}) }
        })
      })
    )

    // ---- the rest: DOM-style events ----
    const listen = <T>(target: { addEventListener: (type: never, l: never) => void, removeEventListener: (type: never, l: never) => void }, type: string, fn: (detail: T) => void): void => {
      const l = (event: Event): void => { fn((event as CustomEvent<T>).detail) }
      ;(target.addEventListener as (type: string, l: (e: Event) => void) => void)(type, l)
      this.detach.push(() => { (target.removeEventListener as (type: string, l: (e: Event) => void) => void)(type, l) })
    }
    listen<LedgerEventDetails['chain']>(ledger, 'chain', ({ signer, end, stored }) => {
      this.publish('ledger.appended', () => ({ end, stored, ...this.named('signer', signer) }))
    })
    listen<LedgerEventDetails['verified']>(ledger, 'verified', (d) => { this.publish('ledger.verified', () => ({ ...d })) })
    listen<LedgerHealth>(ledger, 'health', (d) => { this.publish('ledger.health', () => ({ ...d })) })
    listen<CapabilityEntry>(capabilities, 'change', (entry) => {
      this.publish('capabilities.changed', () => ({ ...this.named('peer', entry.peerId), caps: entry.caps }))
    })
    listen<string>(capabilities, 'expire', (peer) => { this.publish('capabilities.expired', () => this.named('peer', peer)) })
    listen<MembershipChange>(membership, 'change', (d) => {
      this.publish('membership.changed', () => ({
        hiveId: d.hiveId,
        hiveChanged: d.hiveChanged,
        joined: d.joined.map(p => this.named('peer', p)),
        left: d.left.map(p => this.named('peer', p))
      }))
    })
    listen<PeerId>(host, 'peer:connect', (peer) => {
      const id = peer.toString()
      this.publish('peer.connected', () => ({ ...this.named('peer', id), member: membership.isMember(id) }))
    })
    listen<PeerId>(host, 'peer:disconnect', (peer) => { this.publish('peer.disconnected', () => this.named('peer', peer.toString())) })
  }

  stop (): void {
    for (const off of this.detach.splice(0)) off()
    this.subscribers.clear()
  }

  /** A task submitted here changed: each step (announced, awarded per round, running, done, failed) is streamed once. */
  private onTask (view: TaskView): void {
    if (view.role !== 'submitter') return
    const last = this.submitted.get(view.id)
    if (last != null && last.status === view.status && last.round === view.round) return
    this.submitted.set(view.id, { status: view.status, round: view.round })
    if (this.submitted.size > MAX_TRACKED_TASKS) {
      for (const [id, s] of this.submitted) {
        if (this.submitted.size <= MAX_TRACKED_TASKS) break
        if (isEnded(s.status)) this.submitted.delete(id)
      }
    }
    if (last == null) {
      this.publish('task.announced', () => ({
        task: view.id, agent: view.agent, ...(view.contextId != null ? { contextId: view.contextId } : {}), ...this.named('submitter', view.submitter)
      }))
    }
    if (view.status === 'awarded' && view.winner != null) {
      const winner = view.winner
      this.publish('task.awarded', () => ({ task: view.id, round: view.round, ...this.named('winner', winner) }))
    } else if (view.status === 'running' && view.winner != null) {
      const winner = view.winner
      this.publish('task.running', () => ({ task: view.id, round: view.round, ...this.named('executor', winner) }))
    } else if (isEnded(view.status)) {
      // a cancelled task is reported as failed, with its error's code (Cancelled, Halted)
      this.finished(view, view.status === 'done' ? 'done' : 'failed')
    }
  }

  private finished (view: TaskView, status: 'done' | 'failed'): void {
    const r = view.result
    const self = this.sources?.self.peerId
    // a run on another device streamed its lines as they were logged; those that did not come
    // (past the streaming bounds, or lost) arrive with its result and are streamed now
    if (r?.logs != null && r.executor !== self) {
      const kept = this.logs.get(view.id)
      const through = kept?.streamed?.round === r.round ? kept.streamed.through : 0
      for (const line of r.logs.slice(through)) this.keepLine(view.id, line, r.executor)
    }
    if (status === 'done' && r != null) {
      this.publish('task.done', () => ({
        task: view.id, round: r.round, durationMs: r.durationMs, ...(r.ledger?.seq != null ? { ledgerSeq: r.ledger.seq } : {}), ...this.named('executor', r.executor)
      }))
    } else {
      const error = view.error ?? (r != null && !r.ok ? agentError(r.error ?? '') : { code: 'TaskFailed', message: `task ${view.id} failed` })
      this.publish('task.failed', () => ({
        task: view.id, round: view.round, error, ...(r != null ? this.named('executor', r.executor) : {})
      }))
    }
  }
}

/** Tasks submitted here whose last step is remembered. */
const MAX_TRACKED_TASKS = 10_000

/** An agent's failure as the executor reported it: `Code: message`. */
function agentError (text: string): { code: string, message: string } {
  const match = /^([A-Za-z]+): ([\s\S]*)$/.exec(text)
  return { code: match?.[1] ?? 'AgentFailed', message: match?.[2] ?? text }
}
