// The placement service: builds the parts that play each role on this node and routes between
// them. A task lives in four roles: the submitter's auction (auction.ts), every member's bid
// (bidder.ts), the winner's run (runner.ts), and the record of it in the DHT (dht.ts). They never
// call each other: gossip, connection events and the parts' own events come here and are handed
// on, and requests to a task's submitter go through rpc.ts, the one place that knows whether
// the submitter is this node.

import { peerIdFromString } from '@libp2p/peer-id'
import { AGENT_FETCH_PROTOCOL, DEFAULT_PLACEMENT_TOPIC, PLACEMENT_PROTOCOL, PLACEMENT_SESSION_PROTOCOL } from '../wire/ids.ts'
import { createAgentStore } from '../agents/store.ts'
import { fetchAgent, serveAgentFetch } from '../agents/fetch.ts'
import { Auctioneer } from './auction.ts'
import { Bidder } from './bidder.ts'
import { SILENT_LOG, errorText, placementSettings } from './components.ts'
import { DhtBoard } from './dht.ts'
import { InvalidTaskError, NotSubmitterError, PlacementNotRunningError, TaskAlreadyEndedError, TaskNotFoundError } from './errors.ts'
import { TypedEventTarget } from './events.ts'
import { explainAuction, explainObserved, recomputeElection } from './explanation.ts'
import { placementGossip } from './gossip.ts'
import { isTaskId, sha256Hex } from './ids.ts'
import { isEnded } from './views.ts'
import { SubmitTask } from './messages.ts'
import { awardFromRecord, awardKey, bidKey } from './records.ts'
import { cancelRemoteRun, localSubmitter, remoteSubmitter, serveSubmitter, serveSubmitterSessions } from './rpc.ts'
import { SessionPool } from './session.ts'
import { Runner } from './runner.ts'
import type { AgentDigest, AgentStore } from '../agents/store.ts'
import type { AuctioneerEvents } from './auction.ts'
import type { BidderEvents, Observed } from './bidder.ts'
import type { PlacementComponents, PlacementInit, PlacementSettings, SubmitOptions } from './components.ts'
import type { ExplanationSources } from './explanation.ts'
import type { PlacementGossipChannel } from './gossip.ts'
import type { TaskId } from './ids.ts'
import type { AwardPayload, SubmitInput } from './messages.ts'
import type { CancelledHere, RanHere, RunnerEvents } from './runner.ts'
import type { SubmitterClient } from './rpc.ts'
import type { Explanation, Recomputation, TaskStatus, TaskView } from './views.ts'
import type { ProtocolLog, ServedProtocol } from '../wire/serve.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'


const MAX_FRAME_SLACK = 64 * 1024

/** Every event placement emits, with its detail. */
export interface PlacementEvents extends Record<string, unknown> {
  task: AuctioneerEvents['task']
  'winner-disconnected': AuctioneerEvents['winner-disconnected']
  'winner-reconnected': AuctioneerEvents['winner-reconnected']
  'run-start': RunnerEvents['run-start']
  'run-end': RunnerEvents['run-end']
  'result-send-failed': RunnerEvents['result-send-failed']
  running: RunnerEvents['running']
  /** What became of this node's bid on an announcement. */
  bid: BidderEvents['bid']
  /** A bid on a task submitted here, as the auction took it. */
  'bid-received': AuctioneerEvents['bid-received']
  /** Log lines the winner of a task submitted here streamed while it runs on another device. */
  logs: AuctioneerEvents['logs']
}

export interface Placement extends TypedEventTarget<PlacementEvents> {
  readonly agents: AgentStore
  start: () => Promise<void>
  stop: () => Promise<void>
  /**
   * Checks a task against SubmitTask and announces it; resolves once announced, with its view.
   * `taskId` submits it under an id the caller chose (and recorded) beforehand, so a caller that
   * dies between submitting and writing down what it submitted can look the task up after; an
   * id already submitted here is refused.
   */
  submit: (task: SubmitInput, options?: SubmitOptions) => Promise<TaskView>
  /**
   * Cancels a task submitted here: it ends `cancelled` at once, and its winner, if it has one,
   * is told to stop the run (its answer is in the task's history). Throws TaskNotFound,
   * TaskAlreadyEnded, or NotSubmitter (naming the device to ask) for a task submitted elsewhere.
   */
  cancel: (taskId: string, options?: AbortOptions & { reason?: string }) => Promise<TaskView>
  /** Cancels every open task submitted here and stops every run here (a halt). */
  stopAll: (reason: string, code: string) => { cancelled: number, stopped: number }
  /** Resolves when a task submitted here is done, failed or cancelled. */
  wait: (taskId: string, options?: AbortOptions) => Promise<TaskView>
  get: (taskId: string) => TaskView | undefined
  list: (options?: { limit?: number }) => TaskView[]
  explain: (taskId: string, options?: AbortOptions) => Promise<Explanation>
  /** Finds the task's published award and bids and runs the election here. */
  recompute: (taskId: string, options?: AbortOptions) => Promise<Recomputation>
  /** Tasks this node is executing now (its `running` event says when this changes). */
  running: () => number
  /** Resolves once every record this node queued for the DHT is published. */
  settled: (options?: AbortOptions) => Promise<void>
  /** Moves to another gossip topic (the hive's topic changes when this device joins a hive). */
  setTopic: (topic: string) => void
}

export function createPlacement (init: PlacementInit, components: PlacementComponents): Placement {
  return new PlacementService(init, components)
}

class PlacementService extends TypedEventTarget<PlacementEvents> implements Placement {
  readonly agents: AgentStore
  private readonly settings: PlacementSettings
  private readonly components: PlacementComponents
  private readonly log: ProtocolLog
  private readonly self: string
  private topic: string
  private readonly protocol: string
  private readonly fetchProtocol: string
  private readonly sessionProtocol: string | null
  /** This node's sessions to the submitters it asks. */
  private readonly sessions?: SessionPool
  private readonly maxFrameBytes: number
  private readonly auctioneer: Auctioneer
  private readonly bidder: Bidder
  private readonly runner: Runner
  private readonly board: DhtBoard
  private readonly gossip: PlacementGossipChannel
  private readonly self_: SubmitterClient
  private readonly served: ServedProtocol[] = []
  private stopping = new AbortController()
  /** connected(), until a peer connects or disconnects. */
  private connectedNow?: Set<string>
  private started = false
  /** Budget reservations of open tasks submitted here. */
  private readonly tickets = new Map<string, { bind: (task: string) => void, release: () => void }>()

  constructor (init: PlacementInit, components: PlacementComponents) {
    super()
    this.components = components
    this.log = components.log ?? SILENT_LOG
    this.self = components.signer.peerId
    this.topic = init.topic ?? DEFAULT_PLACEMENT_TOPIC
    this.protocol = init.protocol ?? PLACEMENT_PROTOCOL
    this.fetchProtocol = init.agentFetchProtocol ?? AGENT_FETCH_PROTOCOL
    this.settings = placementSettings(init)
    this.maxFrameBytes = Math.max(this.settings.maxInputBytes, this.settings.maxOutputBytes) + MAX_FRAME_SLACK
    this.sessionProtocol = init.sessionProtocol === undefined ? PLACEMENT_SESSION_PROTOCOL : init.sessionProtocol
    if (this.sessionProtocol != null) this.sessions = new SessionPool(components.host, { protocol: this.sessionProtocol, maxFrameBytes: this.maxFrameBytes, log: this.log, idleMs: this.settings.sessionIdleMs })
    this.agents = createAgentStore({ maxBytes: this.settings.agentCacheBytes })
    const { self, log } = this

    this.board = new DhtBoard({
      dht: components.dht,
      records: components.records,
      isQuiet: () => !this.busy(),
      isDecided: (task) => this.decided(task),
      log
    })
    this.gossip = placementGossip({ pubsub: components.pubsub, self, ...(components.isMember != null ? { isMember: components.isMember } : {}), log }, {
      announce: (announce) => { void this.bidder.onAnnounce(announce) },
      award: (gossip, author) => {
        // the gossip's author is proven (gossipsub's signature, or the link it came on): an
        // award it signed itself is not checked again, as it is not stored or handed on
        components.records.open(awardKey(gossip.task, author), gossip.record, { from: author }).then((record) => {
          this.onAward(awardFromRecord(record), gossip.record)
        }).catch((err: Error) => { log.debug(`ignored award for ${gossip.task} from ${author}: ${errorText(err)}`) })
      },
      closed: (gossip, author) => {
        // a run this node still has of a task its submitter cancelled stops here too
        if (gossip.status === 'cancelled') this.runner.cancel(author, gossip.task, gossip.round, 'the submitter closed the task as cancelled')
        const closed = { status: gossip.status, round: gossip.round, ...(gossip.executor != null ? { executor: gossip.executor } : {}) }
        if (this.bidder.noteClosed(gossip.task, author, closed)) this.board.poke()
      }
    })
    this.auctioneer = new Auctioneer(this.settings, {
      self,
      signer: components.signer,
      records: components.records,
      capabilities: components.capabilities,
      connected: () => this.connected(),
      ...(components.reachable != null ? { reachable: () => new Set([...this.connected(), ...components.reachable!()]) } : {}),
      publish: async (message) => { await this.gossip.publish(message) },
      bidHere: (announce) => { void this.bidder.onAnnounce(announce) },
      declinedHere: (task) => this.bidder.observed.get(task)?.declined,
      ...(components.refuses != null ? { refuses: components.refuses } : {}),
      ...(components.policy != null ? { policy: components.policy } : {}),
      onAwarded: (award, record) => { this.onAward(award, record) },
      lookupBid: async (task, bidder, options) => this.board.lookupBid(task, bidder, options),
      ...(components.bidsThroughDht != null ? { bidsThroughDht: components.bidsThroughDht } : {}),
      agents: this.agents,
      ...(components.keepResult != null ? { keepResult: components.keepResult } : {}),
      ...(components.keptBefore != null ? { keptBefore: components.keptBefore } : {}),
      log
    })
    this.self_ = localSubmitter(this.auctioneer, self)
    this.bidder = new Bidder(this.settings, {
      self,
      signer: components.signer,
      capabilities: components.capabilities,
      holdsAgent: (digest) => this.agents.has(digest),
      refusal: () => components.halted?.() ?? components.ledger?.unwritable?.(),
      ...(components.refuses != null ? { refuses: components.refuses } : {}),
      ...(components.policy != null ? { policy: (announce, caps) => components.policy?.(self, announce, caps) } : {}),
      ...(components.synced != null ? { synced: components.synced } : {}),
      ...(components.relayedTo != null ? { relayedTo: components.relayedTo } : {}),
      submitterFor: (peer) => this.submitterFor(peer),
      publishNow: (key, value, task) => { this.board.publish(key, value, { task, urgent: true }) },
      ...(components.bidsThroughDht != null ? { bidsThroughDht: components.bidsThroughDht } : {}),
      log
    })
    this.runner = new Runner(this.settings, {
      self,
      agents: this.agents,
      fetchAgent: async (peer, digest, options) => {
        const held = await components.agentSource?.load(digest)
        if (held != null) return held
        const bytes = await fetchAgent(components.host, peerIdFromString(peer), digest, { ...options, protocol: this.fetchProtocol })
        components.agentSource?.fetched?.(digest, bytes)
        return bytes
      },
      executor: components.executor,
      ...(components.ledger != null ? { ledger: components.ledger } : {}),
      submitterFor: (peer) => this.submitterFor(peer),
      log,
      ...(components.halted != null ? { halted: components.halted } : {}),
      ...(components.synced != null ? { synced: components.synced } : {})
    })

    // a budget reservation of a task that ended before any device was awarded it counted nothing
    this.auctioneer.on('task', (view) => {
      if (!isEnded(view.status)) return
      const ticket = this.tickets.get(view.id)
      if (ticket == null) return
      this.tickets.delete(view.id)
      if (view.round === 0) ticket.release()
    })
    for (const type of ['task', 'winner-disconnected', 'winner-reconnected', 'bid-received', 'logs'] as const) {
      this.auctioneer.on(type, (detail) => { this.emit(type, detail) })
    }
    for (const type of ['run-start', 'result-send-failed', 'running'] as const) {
      this.runner.on(type, (detail) => { this.emit(type, detail) })
    }
    this.runner.on('run-end', (detail) => { this.emit('run-end', detail) })
    this.bidder.on('bid', (detail) => { this.emit('bid', detail) })
    // a device that stops running tasks may be quiet now: deferred DHT puts may go
    this.runner.on('running', () => { this.board.poke() })
    this.auctioneer.on('decided', ({ task, award, bids }) => {
      if (award == null) return
      // one record per task: the award with the signed bids it carries; a bid it had no room
      // for goes under its bidder's key, as the bidder signed it
      this.board.publish(awardKey(task, self), award.record, { task })
      const carried = new Set((award.payload.bidRecords ?? []).map(r => sha256Hex(r)))
      for (const bid of bids) {
        if (!carried.has(bid.hash)) this.board.publish(bidKey(task, bid.bidder), bid.record, { task })
      }
    })
  }

  /** Requests to a task's submitter: in-process for this node, a stream for any other. */
  private submitterFor (peer: string): SubmitterClient {
    return peer === this.self ? this.self_ : remoteSubmitter(this.components.host, peer, { protocol: this.protocol, maxFrameBytes: this.maxFrameBytes, ...(this.sessions != null ? { sessions: this.sessions } : {}) })
  }

  private onAward (award: AwardPayload, record: Uint8Array): void {
    this.bidder.noteAward(award, record)
    this.runner.onAward(award, this.bidder.observed.get(award.task)?.announce ?? this.auctioneer.get(award.task)?.announce)
  }

  /**
   * This node and every peer it is connected to: read again after a peer connects or
   * disconnects, not at every bid (a task asks for it several times).
   */
  private connected (): ReadonlySet<string> {
    if (this.connectedNow != null) return this.connectedNow
    const now = new Set([this.self, ...this.components.host.getPeers().map(p => p.toString())])
    if (this.started) this.connectedNow = now
    return now
  }

  /** Whether this device is in the middle of a task: one it submitted, one it runs, one it bid on. */
  private busy (): boolean {
    return this.runner.running > 0 || this.auctioneer.busy || this.bidder.busy(Date.now(), (task) => this.auctioneer.get(task) != null)
  }

  private decided (task: TaskId): boolean {
    const auction = this.auctioneer.get(task)
    if (auction != null) return isEnded(auction.status)
    return this.bidder.decided(task)
  }

  // ---- lifecycle ----

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.stopping = new AbortController()
    const { host, gate } = this.components
    this.board.start()
    this.auctioneer.start()
    this.bidder.start()
    this.runner.start()
    host.addEventListener('peer:disconnect', this.onPeerDisconnect)
    host.addEventListener('peer:connect', this.onPeerConnect)
    this.served.push(await serveSubmitter(host, this.auctioneer, {
      winner: this.runner,
      protocol: this.protocol, maxFrameBytes: this.maxFrameBytes, recordConfirmMs: this.settings.recordConfirmMs, log: this.log, ...(gate != null ? { gate } : {})
    }))
    if (this.sessionProtocol != null) {
      this.sessions?.start()
      this.served.push(await serveSubmitterSessions(host, this.auctioneer, { protocol: this.sessionProtocol, maxFrameBytes: this.maxFrameBytes, recordConfirmMs: this.settings.recordConfirmMs, log: this.log, ...(gate != null ? { gate } : {}) }))
    }
    const source = this.components.agentSource
    this.served.push(await serveAgentFetch<string>(host, {
      get: (digest) => this.agents.get(digest as AgentDigest),
      ...(source != null ? { load: async (digest: string) => source.load(digest) } : {})
    }, { log: this.log, gate, protocol: this.fetchProtocol }))
    this.gossip.join(this.topic)
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.connectedNow = undefined
    const stopped = new PlacementNotRunningError('placement stopped')
    this.stopping.abort(stopped)
    this.components.host.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    this.components.host.removeEventListener('peer:connect', this.onPeerConnect)
    this.gossip.leave()
    this.runner.stop(stopped)
    this.auctioneer.stop()
    this.bidder.stop()
    this.board.stop()
    await this.sessions?.stop()
    await Promise.all(this.served.splice(0).map(async s => { await s.stop().catch(() => {}) }))
  }

  setTopic (topic: string): void {
    if (topic === this.topic) return
    this.topic = topic
    if (this.started) this.gossip.join(topic)
  }

  private readonly onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    this.connectedNow = undefined
    if (!this.started) return
    const peer = event.detail.toString()
    this.auctioneer.peerDisconnected(peer)
    // as a winner: dial the submitter back now, not at the next renewal, so it sees this device
    // again within its grace
    this.runner.peerDisconnected(peer)
  }

  private readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    this.connectedNow = undefined
    this.auctioneer.peerConnected(event.detail.toString())
  }

  // ---- the facade ----

  running (): number {
    return this.runner.running
  }

  async submit (input: SubmitInput, options: SubmitOptions = {}): Promise<TaskView> {
    if (!this.started) throw new PlacementNotRunningError('placement is not running; start the node first')
    const halted = this.components.halted?.()
    if (halted != null) throw halted
    const parsed = SubmitTask.safeParse(input)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const field = issue?.path.join('.') ?? ''
      throw new InvalidTaskError(`${field !== '' ? `${field} is invalid` : 'the task is invalid'}: ${issue?.message ?? 'unknown'}`)
    }
    const task = parsed.data
    if (options.taskId != null && !isTaskId(options.taskId)) throw new InvalidTaskError(`"${String(options.taskId)}" is not a task id (32 hex characters)`)
    if (task.agent.byteLength > this.settings.maxAgentBytes) throw new InvalidTaskError(`the agent is ${task.agent.byteLength} bytes; at most ${this.settings.maxAgentBytes} are accepted`)
    const inputBytes = Buffer.byteLength(task.input, 'utf8')
    if (inputBytes > this.settings.maxInputBytes) throw new InvalidTaskError(`the input is ${inputBytes} bytes; at most ${this.settings.maxInputBytes} are accepted`)
    // a local-only task is pinned to this node: it is never announced to another
    if (task.requirements?.localOnly === true) {
      if (task.requirements.peer != null && task.requirements.peer !== this.self) {
        throw new InvalidTaskError(`a local-only task runs on the device that submits it; it cannot also be pinned to ${task.requirements.peer} (drop --on or --local-only)`)
      }
      task.requirements = { ...task.requirements, peer: this.self }
    }
    // a task pinned to this node can run nowhere else: refuse it now, with the reason
    if (task.requirements?.peer === this.self) {
      const refused = this.components.ledger?.unwritable?.()
      if (refused != null) throw refused
    }
    // budgets: what the ledger counts is read first; the check and the reservation are one step
    const budget = this.components.budget
    if (budget != null) await budget.ready(options)
    const againHalted = this.components.halted?.()
    if (againHalted != null) throw againHalted
    const admitted = budget?.admit({ agent: task.agent, digest: sha256Hex(task.agent), ...(task.contextId != null ? { context: task.contextId } : {}) })
    let view: TaskView
    try {
      view = await this.auctioneer.submit(task, options, admitted?.name)
    } catch (err) {
      admitted?.ticket?.release()
      throw err
    }
    if (admitted?.ticket != null) {
      admitted.ticket.bind(view.id)
      if (isEnded(view.status) && view.round === 0) admitted.ticket.release()
      else this.tickets.set(view.id, admitted.ticket)
    }
    return view
  }

  async cancel (taskId: string, options: AbortOptions & { reason?: string } = {}): Promise<TaskView> {
    if (!isTaskId(taskId)) throw new TaskNotFoundError(`"${taskId}" is not a task id (32 hex characters)`)
    const auction = this.auctioneer.get(taskId)
    if (auction == null) {
      const seen = this.bidder.observed.get(taskId)
      if (seen != null) {
        const submitter = seen.announce.submitter
        const name = this.components.capabilities.view().find(e => e.peerId === submitter)?.caps.name
        throw new NotSubmitterError(submitter, `task ${taskId} was submitted on ${name != null ? `${name} (${submitter})` : submitter}; only its submitter can cancel it: run "hive-node cancel ${taskId}" there`)
      }
      throw new TaskNotFoundError(`no task ${taskId} is known to this node; "hive-node tasks" lists the recent ones`)
    }
    const reason = options.reason ?? 'cancelled by its submitter'
    const { winner, round } = this.auctioneer.cancel(taskId, reason)
    if (winner != null) await this.tellWinner(taskId, winner, round, reason, options)
    return this.auctioneer.view(this.auctioneer.get(taskId) ?? auction)
  }

  /** Asks a cancelled task's winner to stop its run, and notes its answer. */
  private async tellWinner (task: TaskId, winner: string, round: number, reason: string, options: AbortOptions = {}): Promise<void> {
    let detail: string
    if (winner === this.self) {
      const answer = this.runner.cancel(this.self, task, round, reason)
      detail = answer.ok ? 'this device stopped its run' : `this device had no run to stop (${answer.message})`
    } else {
      try {
        const answer = await cancelRemoteRun(this.components.host, winner, { task, round, reason }, {
          protocol: this.protocol,
          maxFrameBytes: this.maxFrameBytes,
          signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000), ...(options.signal != null ? [options.signal] : [])])
        })
        detail = answer.ok ? `${winner} stopped its run` : `${winner} had no run to stop (${answer.message})`
      } catch (err) {
        // it learns at its next lease renewal, which is refused, or from the closed gossip
        detail = `${winner} could not be told at once (${errorText(err)}); its next lease renewal is refused`
      }
    }
    this.auctioneer.noteCancelAnswer(task, detail)
  }

  stopAll (reason: string, code: string): { cancelled: number, stopped: number } {
    const stopped = this.runner.cancelAll(reason)
    let cancelled = 0
    for (const auction of [...this.auctioneer.all()]) {
      if (isEnded(auction.status)) continue
      const { winner, round } = this.auctioneer.cancel(auction.id, reason, code)
      cancelled++
      if (winner != null && winner !== this.self) void this.tellWinner(auction.id, winner, round, reason)
    }
    return { cancelled, stopped }
  }

  async wait (taskId: string, options: AbortOptions = {}): Promise<TaskView> {
    return this.auctioneer.wait(taskId, options)
  }

  async settled (options: AbortOptions = {}): Promise<void> {
    await this.board.settled(options)
  }

  get (taskId: string): TaskView | undefined {
    const auction = this.auctioneer.get(taskId as TaskId)
    if (auction != null) return this.auctioneer.view(auction)
    const seen = this.bidder.observed.get(taskId as TaskId)
    return seen != null ? observedView(taskId as TaskId, seen, this.runner.ran.get(taskId as TaskId), this.runner.cancelledRuns.get(taskId as TaskId)) : undefined
  }

  list (options: { limit?: number } = {}): TaskView[] {
    const views: TaskView[] = [...this.auctioneer.all()].map(a => this.auctioneer.view(a))
    for (const [id, seen] of this.bidder.observed) {
      if (this.auctioneer.get(id) == null) views.push(observedView(id, seen, this.runner.ran.get(id), this.runner.cancelledRuns.get(id)))
    }
    views.sort((a, b) => b.createdAt - a.createdAt)
    return views.slice(0, options.limit ?? 50)
  }

  private sources (): ExplanationSources {
    return {
      records: this.components.records,
      lookupBid: async (task, bidder, options) => this.board.lookupBid(task, bidder, options),
      lookupAward: async (task, submitter, options) => this.board.lookupAward(task, submitter, options),
      members: () => this.components.capabilities.view().map(e => e.peerId),
      names: () => new Map(this.components.capabilities.view().map(e => [e.peerId, e.caps.name])),
      log: this.log,
      signal: this.stopping.signal,
      dhtLookupMs: this.settings.dhtLookupMs
    }
  }

  async explain (taskId: string, options: AbortOptions = {}): Promise<Explanation> {
    if (!isTaskId(taskId)) throw new TaskNotFoundError(`"${taskId}" is not a task id (32 hex characters)`)
    const auction = this.auctioneer.get(taskId)
    const sources = this.sources()
    if (auction != null) return explainAuction(auction, this.self, sources.names())
    const seen = this.bidder.observed.get(taskId)
    if (seen == null) throw new TaskNotFoundError(`task ${taskId} is not known to this node`)
    return explainObserved(taskId, seen, observedView(taskId, seen, this.runner.ran.get(taskId), this.runner.cancelledRuns.get(taskId)), sources, options)
  }

  async recompute (taskId: string, options: AbortOptions = {}): Promise<Recomputation> {
    if (!isTaskId(taskId)) throw new TaskNotFoundError(`"${taskId}" is not a task id (32 hex characters)`)
    const auction = this.auctioneer.get(taskId)
    const seen = this.bidder.observed.get(taskId)
    if (auction == null && seen == null) throw new TaskNotFoundError(`task ${taskId} is not known to this node`)
    const held = auction != null
      ? { submitter: this.self, award: auction.awards.at(-1) }
      : { submitter: seen!.announce.submitter, award: seen!.awards.at(-1)?.award }
    return (await recomputeElection(taskId, held, this.sources(), options)).recomputation
  }
}

/**
 * A task another node submitted, as this node saw it. When this node ran it, its result is the
 * one it delivered: accepted, it is the task's result (the executing device shows what the
 * submitter shows, before the submitter's `closed` arrives too); discarded, a `late-result`.
 */
function observedView (id: TaskId, seen: Observed, ran: RanHere | undefined, cancelled?: CancelledHere): TaskView {
  const a = seen.announce
  const last = seen.awards.at(-1)?.award
  const accepted = ran?.accepted === true ? ran.result : undefined
  const status: TaskStatus = seen.closed?.status ?? (cancelled != null ? 'cancelled' : accepted != null ? (accepted.ok ? 'done' : 'failed') : last != null ? 'awarded' : 'bidding')
  const history: TaskView['history'] = seen.awards.map(({ award }) => ({
    at: seen.seenAt,
    type: 'awarded' as const,
    peer: award.winner,
    round: award.round,
    detail: `awarded at cost ${award.cost} among ${award.bids.length} bids${award.excluded.length > 0 ? `, excluding ${award.excluded.join(', ')}` : ''}`
  }))
  // why this device did not bid (not a candidate, cannot run it, a policy): what `task` shows here
  if (seen.declined != null) history.unshift({ at: seen.seenAt, type: 'bid-declined', detail: `this device did not bid: ${seen.declined}`.slice(0, 500) })
  if (cancelled != null) {
    history.push({ at: cancelled.at, type: 'cancelled', round: cancelled.round, detail: `this device stopped its run: ${cancelled.reason}${cancelled.ledger?.seq != null ? `; recorded cancelled at ledger seq ${cancelled.ledger.seq}` : ''}` })
  }
  if (ran != null && !ran.accepted) {
    history.push({ at: seen.seenAt, type: 'late-result', peer: ran.result.executor, round: ran.result.round, detail: `this device ran round ${ran.result.round}; the submitter discarded its result (the round was over)` })
  }
  return {
    id,
    role: 'observer',
    submitter: a.submitter,
    status,
    agent: a.agent,
    input: a.input,
    inputSize: a.inputSize,
    requirements: a.requirements,
    permissions: a.permissions,
    ...(a.context != null ? { contextId: a.context } : {}),
    createdAt: seen.seenAt,
    round: accepted?.round ?? last?.round ?? 0,
    ...(last != null ? { winner: seen.closed?.executor ?? accepted?.executor ?? last.winner } : {}),
    ...(accepted != null ? { result: accepted } : {}),
    history
  }
}
