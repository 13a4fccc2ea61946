// The placement service: the task lifecycle on one node, in all three roles a node plays.
//
// Submitter: announces a task on gossip, collects signed bids (sent to it directly and
// published in the DHT), closes the auction when every live capable member has bid or at the
// deadline, elects, publishes the signed award, serves the input to the winner, holds the
// winner's lease, re-elects when it lapses, and accepts at most one result.
// Bidder: on an announcement, computes a bid from its own capabilities (refusing only for
// permanent reasons), signs it, publishes it in the DHT and sends it to the submitter.
// Winner: claims the award, fetches the agent by digest, renews its lease while the executor
// runs, returns the result and appends the ledger record.

import { peerIdFromString } from '@libp2p/peer-id'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { encode as cborEncode } from 'cborg'
import { dialFramed, serveProtocol } from '../handler.ts'
import { protocolId } from '../ids.ts'
import { decodeMessage } from '../wire.ts'
import { createAgentStore, fetchAgent, serveAgentFetch } from './agents.ts'
import { canRun, makeBid } from './cost.ts'
import { ELECTION_RULE, elect, tieBreak } from './election.ts'
import {
  AgentDigestMismatchError, AgentFetchError, BiddersExhaustedError, InvalidTaskError, NoBidsError, PlacementNotRunningError,
  TaskNotFoundError, TaskWaitAbortedError
} from './errors.ts'
import { isTaskId, newTaskId, sha256Hex } from './ids.ts'
import {
  Ack, Announce, ClaimResponse, PlacementGossip, PlacementRequest, RecordedMessage, Refusal, RenewResponse, Requirements, ResultResponse
} from './messages.ts'
import { awardFromRecord, awardKey, bidFromRecord, bidKey, createAwardRecord, createBidRecord } from './records.ts'
import type { AgentStore } from './agents.ts'
import type { Ranked } from './election.ts'
import type { Digest, TaskId } from './ids.ts'
import type { AwardPayload, BidPayload, PlacementRequest as Request, Reason, RecordedMessage as Recorded, RequirementsInput } from './messages.ts'
import type { CapabilityEntry, CapabilityReport } from '../capabilities/index.ts'
import type { HiveRecord, RecordSigner } from '../dht-records.ts'
import type { PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from '../handler.ts'
import type { FramedStream } from '../wire.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import type { AbortOptions, PeerId } from '@libp2p/interface'
import type { z } from 'zod'

export const PLACEMENT_PROTOCOL = protocolId('placement')
export const DEFAULT_PLACEMENT_TOPIC = 'hive/placement/1'

// ---- components ----

/** Connection events placement follows: a winner that disconnects may have died. */
export type ConnectionEvent = 'peer:connect' | 'peer:disconnect'

/** The part of libp2p placement uses. */
export interface PlacementHost extends ProtocolHost {
  getPeers: () => PeerId[]
  addEventListener: (type: ConnectionEvent, listener: (event: CustomEvent<PeerId>) => void) => void
  removeEventListener: (type: ConnectionEvent, listener: (event: CustomEvent<PeerId>) => void) => void
}

export interface PlacementPubSub {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  addEventListener: (type: 'message', listener: (event: CustomEvent<Message>) => void) => void
  removeEventListener: (type: 'message', listener: (event: CustomEvent<Message>) => void) => void
  topicValidators?: Map<string, TopicValidatorFn>
}

/** The part of kad-dht placement uses: put a record, and get the best value under a key. */
export interface PlacementDht {
  put: (key: Uint8Array, value: Uint8Array, options?: AbortOptions) => AsyncIterable<unknown>
  get: (key: Uint8Array, options?: AbortOptions) => AsyncIterable<{ name: string }>
}

/** Opens and checks a signed DHT record (the node's HiveRecords: signature, membership, kind). */
export interface PlacementRecords {
  open: (key: Uint8Array | string, value: Uint8Array) => Promise<HiveRecord>
}

/** What placement needs from capability gossip. */
export interface CapabilitySource {
  local: (options?: { signal?: AbortSignal }) => Promise<CapabilityReport>
  view: () => CapabilityEntry[]
  setRunning: (count: number) => void
}

export interface ExecuteOptions {
  taskId: TaskId
  contextId?: string
  permissions: string[]
  signal: AbortSignal
}

/**
 * What running an agent came to. `retry` marks a failure of this node rather than of the agent
 * (its sandbox stopped, it could not compile here): the task is given up and re-elected instead
 * of failing.
 */
export type ExecutionOutcome = ({ ok: true, output: string } | { ok: false, error: string, retry?: boolean }) & {
  /** What the agent logged while it ran (returned to the submitter, bounded). */
  logs?: AgentLogLine[]
}

export interface AgentLogLine {
  level: string
  message: string
}

/** Runs an agent: the sandbox in the node, something small in tests. */
export interface Executor {
  run: (agent: Uint8Array, input: string, options: ExecuteOptions) => Promise<ExecutionOutcome>
}

export interface ExecutionRecord {
  task: string
  agent: string
  input: string
  output: string
  status: 'ok' | 'error' | 'discarded'
  placement: string
}

/** Where an executor records what it ran: the ledger in the node. */
export interface LedgerSink {
  append: (record: ExecutionRecord, options?: { signal?: AbortSignal }) => Promise<{ seq?: number, hash?: Uint8Array | string } | undefined | void>
}

export interface PlacementComponents {
  host: PlacementHost
  pubsub: PlacementPubSub
  dht: PlacementDht
  records: PlacementRecords
  signer: RecordSigner
  capabilities: CapabilitySource
  executor: Executor
  ledger?: LedgerSink
  gate?: PeerGate
  isMember?: (peerId: string) => boolean
  log?: ProtocolLog
}

export interface PlacementInit {
  topic?: string
  protocol?: string
  agentFetchProtocol?: string
  /** How long a submitter waits for bids. Default 2 s. */
  bidWindowMs?: number
  /** A winner silent this long loses the task. Default 5 s; renewed every third of it. */
  leaseMs?: number
  /**
   * A winner that disconnects from the submitter and does not reconnect within this long loses
   * the task without waiting for its lease to lapse. Default 2 s (a winner dials back at once).
   */
  winnerGraceMs?: number
  /** Tasks remembered (submitted here or seen). Default 1000. */
  maxTasks?: number
  maxAgentBytes?: number
  maxInputBytes?: number
  maxOutputBytes?: number
  /** Agents kept in memory for reuse (bytes). Default 256 MiB. */
  agentCacheBytes?: number
  /** How long a DHT lookup of missing bids may take when an auction closes. Default 1.5 s. */
  dhtLookupMs?: number
  /** How long an executor has to confirm its ledger record after its result is accepted. */
  recordConfirmMs?: number
}

// ---- views ----

export type TaskStatus = 'bidding' | 'awarded' | 'running' | 'done' | 'failed'
export type TaskRole = 'submitter' | 'observer'

export type HistoryType =
  | 'submitted' | 'bid' | 'bid-refused' | 'late-bid' | 'auction-closed' | 'awarded' | 'claimed' | 'lease-lapsed'
  | 'winner-lost' | 'abandoned' | 'result-accepted' | 'late-result' | 'recorded' | 'failed'

export interface HistoryEvent {
  at: number
  type: HistoryType
  peer?: string
  round?: number
  detail: string
}

export interface TaskResult {
  ok: boolean
  output?: string
  error?: string
  executor: string
  round: number
  durationMs: number
  logs?: AgentLogLine[]
  ledger?: { seq?: number, hash?: string, error?: string }
}

export interface TaskView {
  id: TaskId
  role: TaskRole
  submitter: string
  status: TaskStatus
  agent: Digest
  input: Digest
  inputSize: number
  requirements: Requirements
  permissions: string[]
  contextId?: string
  createdAt: number
  closedAt?: number
  round: number
  winner?: string
  result?: TaskResult
  error?: { code: string, message: string }
  history: HistoryEvent[]
}

export interface ExplainedBid {
  bidder: string
  name?: string
  cost: number
  reasons: Reason[]
  holdsAgent: boolean
  rank: number
  tieBreak: string
  excluded: boolean
  /** How this node learnt the bid. */
  via: 'local' | 'stream' | 'dht'
}

export interface ExplainedRound {
  round: number
  winner: string
  cost: number
  excluded: string[]
  why: string
}

export interface Explanation {
  task: TaskId
  submitter: string
  status: TaskStatus
  rule: string
  requirements: Requirements
  /** Live capable members the submitter waited for. */
  expected: string[]
  /** Expected bidders whose bid never came. */
  missing: string[]
  bids: ExplainedBid[]
  rounds: ExplainedRound[]
  winner?: string
  result?: TaskResult
  history: HistoryEvent[]
}

export interface Recomputation {
  task: TaskId
  /** The winner this node computes from the bids it found in the DHT. */
  winner?: string
  /** The winner the submitter's newest award names. */
  awarded?: string
  round: number
  bids: Array<{ bidder: string, cost: number, hash: string }>
  /** Bids the award lists that were not found, or found with other bytes. */
  mismatched: string[]
  agrees: boolean
}

export interface SubmitInput {
  agent: Uint8Array
  input: string
  requirements?: RequirementsInput
  permissions?: string[]
  contextId?: string
  bidWindowMs?: number
  /** The winner's lease for this task (default from init). */
  leaseMs?: number
}

export interface Placement extends EventTarget {
  readonly agents: AgentStore
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Announces a task; resolves once it is announced, with its view. */
  submit: (task: SubmitInput, options?: AbortOptions) => Promise<TaskView>
  /** Resolves when a task submitted here is done or failed. */
  wait: (taskId: string, options?: AbortOptions) => Promise<TaskView>
  get: (taskId: string) => TaskView | undefined
  list: (options?: { limit?: number }) => TaskView[]
  explain: (taskId: string, options?: AbortOptions) => Promise<Explanation>
  /** Enumerates the task's bids in the DHT and runs the election here. */
  recompute: (taskId: string, options?: AbortOptions) => Promise<Recomputation>
  /** Tasks this node is executing now. */
  running: () => number
  /** Resolves once every bid and award this node queued for the DHT is published. */
  settled: (options?: AbortOptions) => Promise<void>
  /** Moves to another gossip topic (the hive's topic changes when this device joins a hive). */
  setTopic: (topic: string) => void
}

// ---- internal state ----

interface HeldBid {
  bidder: string
  payload: BidPayload
  record: Uint8Array
  hash: Digest
  via: ExplainedBid['via']
}

interface Auction {
  id: TaskId
  announce: Announce
  /** Served to the winner; dropped when the task ends. */
  input: string
  status: TaskStatus
  createdAt: number
  closedAt?: number
  expected: Set<string>
  bids: Map<string, HeldBid>
  round: number
  winner?: string
  excluded: Set<string>
  awards: AwardPayload[]
  leaseMs: number
  leaseExpiry: number
  leaseTimer?: NodeJS.Timeout
  /** Runs while the winner is disconnected from this node; its end loses it the task. */
  graceTimer?: NodeJS.Timeout
  auctionTimer?: NodeJS.Timeout
  closing: boolean
  accepted: boolean
  result?: TaskResult
  error?: { code: string, message: string }
  history: HistoryEvent[]
  done: PromiseWithResolvers<void>
}

interface Observed {
  announce: Announce
  seenAt: number
  awards: Array<{ award: AwardPayload, record: Uint8Array }>
  closed?: { status: 'done' | 'failed', executor?: string, round: number }
  myBid?: BidPayload
  declined?: string
}

interface Assignment {
  task: TaskId
  round: number
  award: AwardPayload
  announce?: Announce
  controller: AbortController
  /** The submitter said this node is no longer the winner. */
  revoked?: string
  renewTimer?: NodeJS.Timeout
  /** Renews the lease at once (when the connection to the submitter dropped). */
  renewNow?: () => void
}

const SILENT: ProtocolLog = { debug: () => {}, warn: () => {} }
const MAX_HISTORY = 200
/** How often deferred DHT puts look for a moment when no task is under way. */
const DHT_QUIET_CHECK_MS = 100
const MAX_FRAME_SLACK = 64 * 1024
/** Agent log lines a result carries back to the submitter. */
const MAX_LOG_LINES = 200
/** Time limit of one DHT lookup when a member recomputes an election. */
const RECOMPUTE_LOOKUP_MS = 15_000

function errorText (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}

export function createPlacement (init: PlacementInit, components: PlacementComponents): Placement {
  return new PlacementService(init, components)
}

class PlacementService extends EventTarget implements Placement {
  readonly agents: AgentStore
  private readonly init: Required<Omit<PlacementInit, 'topic' | 'protocol' | 'agentFetchProtocol'>>
  private readonly components: PlacementComponents
  private readonly log: ProtocolLog
  private readonly self: string
  private topic: string
  private readonly protocol: string
  private readonly fetchProtocol: string
  private readonly maxFrameBytes: number
  private readonly auctions = new Map<TaskId, Auction>()
  private readonly observed = new Map<TaskId, Observed>()
  private readonly assignments = new Map<TaskId, Assignment>()
  private readonly served: ServedProtocol[] = []
  private priorValidator?: TopicValidatorFn
  private readonly dhtQueue: Array<{ key: Uint8Array, value: Uint8Array, task: TaskId, due: number }> = []
  private dhtPumping = false
  private dhtTimer?: NodeJS.Timeout
  private stopping = new AbortController()
  private started = false

  constructor (init: PlacementInit, components: PlacementComponents) {
    super()
    this.components = components
    this.log = components.log ?? SILENT
    this.self = components.signer.peerId
    this.topic = init.topic ?? DEFAULT_PLACEMENT_TOPIC
    this.protocol = init.protocol ?? PLACEMENT_PROTOCOL
    this.fetchProtocol = init.agentFetchProtocol ?? protocolId('agent-fetch')
    this.init = {
      bidWindowMs: init.bidWindowMs ?? 2_000,
      leaseMs: init.leaseMs ?? 5_000,
      winnerGraceMs: init.winnerGraceMs ?? 2_000,
      maxTasks: init.maxTasks ?? 1_000,
      maxAgentBytes: init.maxAgentBytes ?? 64 * 1024 * 1024,
      maxInputBytes: init.maxInputBytes ?? 4 * 1024 * 1024,
      maxOutputBytes: init.maxOutputBytes ?? 4 * 1024 * 1024,
      agentCacheBytes: init.agentCacheBytes ?? 256 * 1024 * 1024,
      dhtLookupMs: init.dhtLookupMs ?? 1_500,
      recordConfirmMs: init.recordConfirmMs ?? 10_000
    }
    this.maxFrameBytes = Math.max(this.init.maxInputBytes, this.init.maxOutputBytes) + MAX_FRAME_SLACK
    this.agents = createAgentStore({ maxBytes: this.init.agentCacheBytes })
  }

  // ---- lifecycle ----

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.stopping = new AbortController()
    const { host, pubsub, gate } = this.components
    host.addEventListener('peer:disconnect', this.onPeerDisconnect)
    host.addEventListener('peer:connect', this.onPeerConnect)
    this.served.push(await serveProtocol(host, this.protocol, this.serve, {
      log: this.log, gate, maxMessageBytes: this.maxFrameBytes, timeoutMs: this.init.recordConfirmMs + 30_000, maxInboundStreams: 256
    }))
    this.served.push(await serveAgentFetch(host, this.agents, { log: this.log, gate, protocol: this.fetchProtocol }))
    pubsub.addEventListener('message', this.onGossip)
    this.join()
  }

  setTopic (topic: string): void {
    if (topic === this.topic) return
    if (this.started) this.leave()
    this.topic = topic
    if (this.started) this.join()
  }

  private join (): void {
    const { pubsub } = this.components
    const validators = pubsub.topicValidators
    if (validators != null) {
      this.priorValidator = validators.get(this.topic)
      validators.set(this.topic, this.validateGossip)
    }
    pubsub.subscribe(this.topic)
  }

  private leave (): void {
    const { pubsub } = this.components
    try {
      pubsub.unsubscribe(this.topic)
    } catch {}
    const validators = pubsub.topicValidators
    if (validators?.get(this.topic) === this.validateGossip) {
      if (this.priorValidator != null) validators.set(this.topic, this.priorValidator)
      else validators.delete(this.topic)
    }
    this.priorValidator = undefined
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.stopping.abort(new PlacementNotRunningError('placement stopped'))
    clearTimeout(this.dhtTimer)
    this.components.host.removeEventListener('peer:disconnect', this.onPeerDisconnect)
    this.components.host.removeEventListener('peer:connect', this.onPeerConnect)
    this.components.pubsub.removeEventListener('message', this.onGossip)
    this.leave()
    for (const a of this.assignments.values()) {
      clearTimeout(a.renewTimer)
      a.controller.abort(new PlacementNotRunningError('placement stopped'))
    }
    for (const auction of this.auctions.values()) {
      clearTimeout(auction.auctionTimer)
      clearTimeout(auction.leaseTimer)
      this.clearGrace(auction)
      if (auction.status !== 'done' && auction.status !== 'failed') {
        auction.done.reject(new PlacementNotRunningError(`placement stopped before task ${auction.id} finished`))
      }
    }
    await Promise.all(this.served.splice(0).map(async s => { await s.stop().catch(() => {}) }))
  }

  running (): number {
    return this.assignments.size
  }

  // ---- submitter ----

  async submit (task: SubmitInput, options: AbortOptions = {}): Promise<TaskView> {
    if (!this.started) throw new PlacementNotRunningError('placement is not running; start the node first')
    if (!(task.agent instanceof Uint8Array) || task.agent.byteLength === 0) throw new InvalidTaskError('the agent must be the bytes of a WebAssembly component')
    if (task.agent.byteLength > this.init.maxAgentBytes) throw new InvalidTaskError(`the agent is ${task.agent.byteLength} bytes; at most ${this.init.maxAgentBytes} are accepted`)
    if (typeof task.input !== 'string') throw new InvalidTaskError('the input must be a string')
    const inputBytes = Buffer.byteLength(task.input, 'utf8')
    if (inputBytes > this.init.maxInputBytes) throw new InvalidTaskError(`the input is ${inputBytes} bytes; at most ${this.init.maxInputBytes} are accepted`)
    const parsedReq = Requirements.safeParse(task.requirements ?? {})
    if (!parsedReq.success) {
      const issue = parsedReq.error.issues[0]
      throw new InvalidTaskError(`requirement ${issue?.path.join('.') ?? ''} is invalid: ${issue?.message ?? 'unknown'}`)
    }
    const permissions = task.permissions ?? []
    if (!Array.isArray(permissions) || permissions.length > 32 || permissions.some(p => typeof p !== 'string' || p.length === 0 || p.length > 64)) {
      throw new InvalidTaskError('permissions must be a list of at most 32 permission names')
    }
    if (task.contextId != null && (typeof task.contextId !== 'string' || task.contextId.length === 0 || task.contextId.length > 256)) {
      throw new InvalidTaskError('a context id is 1 to 256 characters')
    }
    const bidWindowMs = task.bidWindowMs ?? this.init.bidWindowMs
    if (!Number.isInteger(bidWindowMs) || bidWindowMs < 1 || bidWindowMs > 600_000) throw new InvalidTaskError('the bid window is 1 ms to 10 minutes')
    const leaseMs = task.leaseMs ?? this.init.leaseMs
    if (!Number.isInteger(leaseMs) || leaseMs < 100 || leaseMs > 3_600_000) throw new InvalidTaskError('a lease is 100 ms to 1 hour')
    options.signal?.throwIfAborted()

    const agent = this.agents.put(task.agent)
    this.agents.pin(agent)
    const id = newTaskId()
    const announce: Announce = {
      v: 1,
      t: 'announce',
      task: id,
      submitter: this.self,
      agent,
      agentSize: task.agent.byteLength,
      input: sha256Hex(task.input),
      inputSize: inputBytes,
      requirements: parsedReq.data,
      permissions,
      ...(task.contextId != null ? { context: task.contextId } : {}),
      bidWindowMs
    }
    const expected = new Set<string>()
    const connected = this.connected()
    for (const entry of this.components.capabilities.view()) {
      if (!connected.has(entry.peerId)) continue
      if (canRun(announce.requirements, entry.caps, entry.peerId).ok) expected.add(entry.peerId)
    }
    const auction: Auction = {
      id,
      announce,
      input: task.input,
      status: 'bidding',
      createdAt: Date.now(),
      expected,
      bids: new Map(),
      round: 0,
      excluded: new Set(),
      awards: [],
      leaseMs,
      leaseExpiry: 0,
      closing: false,
      accepted: false,
      history: [],
      done: Promise.withResolvers<void>()
    }
    auction.done.promise.catch(() => {})
    this.auctions.set(id, auction)
    this.trim()
    this.note(auction, 'submitted', `agent ${agent.slice(0, 12)}…, ${expected.size} live capable member${expected.size === 1 ? '' : 's'} expected to bid within ${bidWindowMs} ms`)
    auction.auctionTimer = setTimeout(() => { void this.closeAuction(auction, 'deadline') }, bidWindowMs)

    await this.publishGossip(announce)
    // the submitter bids like any member; gossip does not come back to its author
    void this.onAnnounce(announce, this.self)
    this.emitTask(auction)
    return this.auctionView(auction)
  }

  async wait (taskId: string, options: AbortOptions = {}): Promise<TaskView> {
    const auction = this.auctions.get(taskId as TaskId)
    if (auction == null) throw new TaskNotFoundError(`no task ${taskId} was submitted on this node`)
    const { signal } = options
    if (signal == null) {
      await auction.done.promise
    } else {
      signal.throwIfAborted()
      const aborted = Promise.withResolvers<never>()
      const onAbort = (): void => { aborted.reject(new TaskWaitAbortedError(`stopped waiting for task ${taskId}; it continues`)) }
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        await Promise.race([auction.done.promise, aborted.promise])
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    }
    return this.auctionView(auction)
  }

  private async closeAuction (auction: Auction, why: 'all-bids' | 'deadline'): Promise<void> {
    if (auction.status !== 'bidding' || auction.closing) return
    auction.closing = true
    clearTimeout(auction.auctionTimer)
    const missing = [...auction.expected].filter(p => !auction.bids.has(p))
    if (missing.length > 0) {
      // bids may have reached the DHT without reaching us: enumerate them by member
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.init.dhtLookupMs)])
      await Promise.all(missing.map(async (bidder) => {
        const found = await this.lookupBid(auction.id, bidder, { signal }).catch(() => undefined)
        if (found != null && !auction.bids.has(bidder)) {
          auction.bids.set(bidder, { ...found, via: 'dht' })
          this.note(auction, 'bid', `cost ${found.payload.cost} (found in the DHT)`, { peer: bidder })
        }
      }))
    }
    if (!this.started) return
    const stillMissing = [...auction.expected].filter(p => !auction.bids.has(p))
    this.note(auction, 'auction-closed', why === 'all-bids'
      ? `every live capable member bid (${auction.bids.size})`
      : `deadline reached with ${auction.bids.size} bid${auction.bids.size === 1 ? '' : 's'}${stillMissing.length > 0 ? `; no bid from ${stillMissing.join(', ')}` : ''}`)
    if (auction.bids.size === 0) {
      this.fail(auction, new NoBidsError(`no member bid for task ${auction.id}: none that is live can meet its requirements (${JSON.stringify(auction.announce.requirements)})`))
      return
    }
    await this.award(auction, auction.round + 1, 'lowest cost')
  }

  private async award (auction: Auction, round: number, why: string): Promise<void> {
    const result = elect(auction.id, [...auction.bids.values()].map(b => ({ bidder: b.bidder, cost: b.payload.cost })), auction.excluded)
    if (result == null) {
      // say why each one failed: a reason they share (a permission no device grants) is the fix
      const why = auction.history
        .filter(h => (h.type === 'abandoned' || h.type === 'lease-lapsed' || h.type === 'winner-lost') && h.peer != null)
        .map(h => h.detail)
      this.fail(auction, new BiddersExhaustedError(`every bidder for task ${auction.id} was tried and none delivered a result: ${why.length > 0 ? why.join('; ') : [...auction.excluded].join(', ')}`.slice(0, 2048)))
      return
    }
    const payload: AwardPayload = {
      v: 1,
      task: auction.id,
      submitter: this.self,
      round,
      winner: result.winner,
      cost: result.cost,
      rule: ELECTION_RULE,
      bids: [...auction.bids.values()].slice(0, 128).map(b => ({ bidder: b.bidder, cost: b.payload.cost, hash: b.hash })),
      excluded: [...auction.excluded],
      agent: auction.announce.agent,
      input: auction.announce.input,
      leaseMs: auction.leaseMs
    }
    auction.round = round
    auction.winner = result.winner
    auction.status = 'awarded'
    auction.awards.push(payload)
    auction.leaseExpiry = Date.now() + auction.leaseMs
    this.armLease(auction)
    this.clearGrace(auction)
    this.note(auction, 'awarded', `${why}: cost ${result.cost} of ${auction.bids.size} bid${auction.bids.size === 1 ? '' : 's'}`, { peer: result.winner, round })
    // a winner that is not connected now gets the same grace as one that disconnects later
    if (!this.connected().has(result.winner)) this.armGrace(auction)
    this.emitTask(auction)
    let record: Uint8Array
    try {
      record = await createAwardRecord(payload, this.components.signer)
    } catch (err) {
      this.fail(auction, err as Error)
      return
    }
    if (auction.round !== round || !this.started) return
    await this.publishGossip({ v: 1, t: 'award', task: auction.id, record })
    this.putInDht(awardKey(auction.id, this.self), record, { task: auction.id, deferMs: auction.leaseMs })
    this.onAward(payload, record)
  }

  private armLease (auction: Auction): void {
    clearTimeout(auction.leaseTimer)
    const wait = Math.max(0, auction.leaseExpiry - Date.now()) + 5
    auction.leaseTimer = setTimeout(() => { this.checkLease(auction) }, wait)
  }

  private checkLease (auction: Auction): void {
    if (!this.started || auction.accepted || (auction.status !== 'awarded' && auction.status !== 'running')) return
    if (Date.now() < auction.leaseExpiry) {
      this.armLease(auction)
      return
    }
    const winner = auction.winner
    if (winner == null) return
    this.note(auction, 'lease-lapsed', `${winner} ${auction.status === 'awarded' ? 'never claimed the task' : 'stopped renewing its lease'}; re-electing among the remaining bidders`, { peer: winner, round: auction.round })
    auction.excluded.add(winner)
    void this.award(auction, auction.round + 1, `re-election after ${winner}'s lease lapsed`)
  }

  // ---- a winner that disconnects ----
  //
  // A dead device cannot renew its lease, but waiting for the lease to lapse costs a whole lease.
  // When the winner's last connection to this node closes and no new one opens within the grace,
  // the task is re-elected as for a lapsed lease. The lease stays the fallback for a winner that
  // is connected but stuck. A winner that comes back later finds its round over: its renewals are
  // answered Lapsed and a result it still sends is discarded.

  /** Whether the auction waits on `peer` as its winner (awarded or running, no result yet). */
  private waitsOn (auction: Auction, peer: string): boolean {
    return auction.winner === peer && peer !== this.self && !auction.accepted && (auction.status === 'awarded' || auction.status === 'running')
  }

  private readonly onPeerDisconnect = (event: CustomEvent<PeerId>): void => {
    if (!this.started) return
    const peer = event.detail.toString()
    for (const auction of this.auctions.values()) {
      if (this.waitsOn(auction, peer)) this.armGrace(auction)
    }
    // as a winner: dial the submitter back now, not at the next renewal, so it sees this device
    // again within its grace
    for (const a of this.assignments.values()) {
      if (a.award.submitter === peer) a.renewNow?.()
    }
  }

  private readonly onPeerConnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    for (const auction of this.auctions.values()) {
      if (auction.graceTimer == null || auction.winner !== peer) continue
      this.clearGrace(auction)
      this.log.debug(`winner ${peer} of ${auction.id} round ${auction.round} reconnected within the grace`)
      this.dispatchEvent(new CustomEvent('winner-reconnected', { detail: { task: auction.id, peer, round: auction.round } }))
    }
  }

  private armGrace (auction: Auction): void {
    const winner = auction.winner
    if (auction.graceTimer != null || winner == null) return
    const round = auction.round
    const graceMs = this.init.winnerGraceMs
    this.log.debug(`winner ${winner} of ${auction.id} round ${round} is disconnected; re-electing unless it reconnects within ${graceMs} ms`)
    this.dispatchEvent(new CustomEvent('winner-disconnected', { detail: { task: auction.id, peer: winner, round } }))
    auction.graceTimer = setTimeout(() => {
      auction.graceTimer = undefined
      if (!this.started || auction.round !== round || !this.waitsOn(auction, winner)) return
      // a connection that opened without its event reaching us still counts
      if (this.connected().has(winner)) return
      this.note(auction, 'winner-lost', `${winner} disconnected from this device ${auction.status === 'awarded' ? 'before claiming the task' : 'while running it'} ` +
        `and did not reconnect within ${graceMs} ms; re-electing among the remaining bidders`, { peer: winner, round })
      auction.excluded.add(winner)
      void this.award(auction, round + 1, `re-election after ${winner} disconnected`)
    }, graceMs)
  }

  private clearGrace (auction: Auction): void {
    clearTimeout(auction.graceTimer)
    auction.graceTimer = undefined
  }

  private fail (auction: Auction, err: Error): void {
    if (auction.status === 'done' || auction.status === 'failed') return
    auction.error = { code: err.name, message: err.message }
    this.note(auction, 'failed', err.message)
    this.finish(auction, 'failed')
  }

  private finish (auction: Auction, status: 'done' | 'failed'): void {
    if (auction.status === 'done' || auction.status === 'failed') return
    auction.status = status
    auction.closedAt = Date.now()
    // the input may be megabytes; nobody needs it once the task is over
    auction.input = ''
    clearTimeout(auction.leaseTimer)
    clearTimeout(auction.auctionTimer)
    this.clearGrace(auction)
    this.agents.unpin(auction.announce.agent)
    auction.done.resolve()
    this.emitTask(auction)
    this.pumpDht()
    void this.publishGossip({ v: 1, t: 'closed', task: auction.id, status, round: auction.round, ...(auction.result != null ? { executor: auction.result.executor } : {}) })
  }

  private note (auction: Auction, type: HistoryType, detail: string, extra: { peer?: string, round?: number } = {}): void {
    if (auction.history.length >= MAX_HISTORY) auction.history.splice(1, 1)
    auction.history.push({ at: Date.now(), type, detail, ...extra })
  }

  // ---- requests from bidders and winners (to this node as submitter) ----

  private readonly serve = async (stream: FramedStream, { peer, signal }: { peer: PeerId, signal: AbortSignal }): Promise<void> => {
    const request = await stream.read(PlacementRequest, { signal })
    const from = peer.toString()
    if (request.t === 'result') {
      const response = this.onResult(from, request)
      await stream.write(response, { signal })
      const recorded = await stream.readOrEnd(RecordedMessage, { signal: AbortSignal.any([signal, AbortSignal.timeout(this.init.recordConfirmMs)]) }).catch(() => null)
      this.onRecorded(from, request, recorded, response.ok && response.accepted)
      if (recorded != null) await stream.write({ ok: true }, { signal })
      return
    }
    await stream.write(await this.handle(from, request), { signal })
  }

  private async handle (from: string, request: Exclude<Request, { t: 'result' }>): Promise<unknown> {
    switch (request.t) {
      case 'bid': return this.receiveBid(request.task, request.bidder, request.record, from === this.self ? 'local' : 'stream')
      case 'claim': return this.onClaim(from, request.task, request.round)
      case 'renew': return this.onRenew(from, request.task, request.round)
      case 'abandon': return this.onAbandon(from, request.task, request.round, request.reason)
    }
  }

  private refuse (reason: string, message: string): Refusal {
    return { ok: false, reason, message }
  }

  private async receiveBid (task: TaskId, bidder: string, value: Uint8Array, via: HeldBid['via']): Promise<z.infer<typeof Ack>> {
    const auction = this.auctions.get(task)
    if (auction == null) return this.refuse('UnknownTask', `task ${task} was not submitted on this node`)
    let payload: BidPayload
    try {
      const record = await this.components.records.open(bidKey(task, bidder), value)
      payload = bidFromRecord(record)
      if (payload.submitter !== this.self) throw new Error(`the bid names ${payload.submitter} as submitter`)
    } catch (err) {
      this.note(auction, 'bid-refused', `bid claiming to be from ${bidder} ignored: ${errorText(err)}`, { peer: bidder })
      this.emitTask(auction)
      return this.refuse('InvalidBid', `bid refused: ${(err as Error).message}`)
    }
    if (auction.status !== 'bidding' || auction.closing) {
      this.note(auction, 'late-bid', `bid arrived after the auction closed (cost ${payload.cost}); kept for the record only`, { peer: bidder })
      return this.refuse('Closed', `the auction for task ${task} has closed`)
    }
    if (!auction.bids.has(bidder)) {
      auction.bids.set(bidder, { bidder, payload, record: value, hash: sha256Hex(value), via })
      this.note(auction, 'bid', `cost ${payload.cost}`, { peer: bidder })
    }
    const live = this.liveMembers()
    const waiting = [...auction.expected].filter(p => !auction.bids.has(p) && live.has(p))
    if (waiting.length === 0) void this.closeAuction(auction, 'all-bids')
    return { ok: true }
  }

  /** This node and every peer it is connected to. */
  private connected (): Set<string> {
    return new Set([this.self, ...this.components.host.getPeers().map(p => p.toString())])
  }

  /** Members that reported capabilities recently and are still connected. */
  private liveMembers (): Set<string> {
    const connected = this.connected()
    return new Set(this.components.capabilities.view().map(e => e.peerId).filter(p => connected.has(p)))
  }

  private current (from: string, task: TaskId, round: number): { auction: Auction } | { refusal: Refusal } {
    const auction = this.auctions.get(task)
    if (auction == null) return { refusal: this.refuse('UnknownTask', `task ${task} was not submitted on this node`) }
    if (auction.accepted || auction.status === 'done' || auction.status === 'failed') return { refusal: this.refuse('Closed', `task ${task} already has its result`) }
    if (auction.round !== round || auction.winner !== from) {
      return { refusal: this.refuse('Lapsed', `round ${round} of task ${task} is over: round ${auction.round} is awarded to ${auction.winner ?? 'nobody yet'}`) }
    }
    return { auction }
  }

  private onClaim (from: string, task: TaskId, round: number): z.infer<typeof ClaimResponse> {
    const found = this.current(from, task, round)
    if ('refusal' in found) return found.refusal
    const { auction } = found
    auction.leaseExpiry = Date.now() + auction.leaseMs
    if (auction.status === 'awarded') {
      auction.status = 'running'
      this.note(auction, 'claimed', `${from} claimed round ${round} and holds a ${auction.leaseMs} ms lease`, { peer: from, round })
      this.emitTask(auction)
    }
    return { ok: true, input: auction.input, leaseMs: auction.leaseMs }
  }

  private onRenew (from: string, task: TaskId, round: number): z.infer<typeof RenewResponse> {
    const found = this.current(from, task, round)
    if ('refusal' in found) return found.refusal
    found.auction.leaseExpiry = Date.now() + found.auction.leaseMs
    return { ok: true, leaseMs: found.auction.leaseMs }
  }

  private onAbandon (from: string, task: TaskId, round: number, reason: string): z.infer<typeof Ack> {
    const found = this.current(from, task, round)
    if ('refusal' in found) return found.refusal
    const { auction } = found
    this.note(auction, 'abandoned', `${from} gave the task up: ${reason}`, { peer: from, round })
    auction.excluded.add(from)
    void this.award(auction, auction.round + 1, `re-election after ${from} gave the task up`)
    return { ok: true }
  }

  private onResult (from: string, request: Extract<Request, { t: 'result' }>): z.infer<typeof ResultResponse> {
    const auction = this.auctions.get(request.task)
    if (auction == null) return this.refuse('UnknownTask', `task ${request.task} was not submitted on this node`)
    if (auction.accepted) {
      const reason = `task already has an accepted result from ${auction.result?.executor ?? 'another executor'}`
      this.note(auction, 'late-result', `result from ${from} (round ${request.round}) discarded: ${reason}`, { peer: from, round: request.round })
      this.emitTask(auction)
      return { ok: true, accepted: false, reason }
    }
    if (auction.round !== request.round || auction.winner !== from || (auction.status !== 'running' && auction.status !== 'awarded')) {
      const reason = `its lease for round ${request.round} lapsed; round ${auction.round} is awarded to ${auction.winner ?? 'nobody'}`
      this.note(auction, 'late-result', `result from ${from} discarded: ${reason}`, { peer: from, round: request.round })
      this.emitTask(auction)
      return { ok: true, accepted: false, reason }
    }
    auction.accepted = true
    clearTimeout(auction.leaseTimer)
    auction.result = {
      ok: request.ok,
      ...(request.ok ? { output: request.output ?? '' } : { error: request.error ?? 'the agent failed without a message' }),
      executor: from,
      round: request.round,
      durationMs: request.durationMs,
      ...(request.logs != null && request.logs.length > 0 ? { logs: request.logs } : {})
    }
    this.note(auction, 'result-accepted', `${request.ok ? 'result' : 'agent error'} from ${from} accepted (ran ${Math.round(request.durationMs)} ms)`, { peer: from, round: request.round })
    return { ok: true, accepted: true }
  }

  private onRecorded (from: string, request: Extract<Request, { t: 'result' }>, recorded: Recorded | null, accepted: boolean): void {
    const auction = this.auctions.get(request.task)
    if (auction == null) return
    if (!accepted) {
      if (recorded != null) this.note(auction, 'recorded', `${from} recorded its discarded run${recorded.seq != null ? ` at ledger seq ${recorded.seq}` : ''}`, { peer: from, round: request.round })
      return
    }
    if (auction.result != null) {
      if (recorded == null) {
        auction.result.ledger = { error: 'the executor did not confirm a ledger record' }
      } else {
        auction.result.ledger = {
          ...(recorded.seq != null ? { seq: recorded.seq } : {}),
          ...(recorded.hash != null ? { hash: recorded.hash } : {}),
          ...(recorded.error != null ? { error: recorded.error } : {})
        }
      }
    }
    this.note(auction, 'recorded', recorded == null
      ? `${from} did not confirm its ledger record in time`
      : recorded.error != null ? `${from} could not append its ledger record: ${recorded.error}` : `${from} appended ledger record seq ${recorded.seq ?? '?'}`, { peer: from, round: request.round })
    this.finish(auction, request.ok ? 'done' : 'failed')
  }

  // ---- gossip ----

  private async publishGossip (message: PlacementGossip): Promise<void> {
    try {
      await this.components.pubsub.publish(this.topic, cborEncode(message))
    } catch (err) {
      this.log.debug(`placement gossip ${message.t} for ${message.task} not sent: ${errorText(err)}`)
    }
  }

  private readonly validateGossip: TopicValidatorFn = async (peer, message) => {
    if (this.priorValidator != null) {
      const verdict = await this.priorValidator(peer, message)
      if (verdict !== TopicValidatorResult.Accept) return verdict
    }
    if (message.type !== 'signed') return TopicValidatorResult.Reject
    if (this.components.isMember != null && !this.components.isMember(message.from.toString())) return TopicValidatorResult.Reject
    try {
      const gossip = decodeMessage(message.data, PlacementGossip)
      if (gossip.t === 'announce' && gossip.submitter !== message.from.toString()) return TopicValidatorResult.Reject
    } catch {
      return TopicValidatorResult.Reject
    }
    return TopicValidatorResult.Accept
  }

  private readonly onGossip = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== this.topic || message.type !== 'signed') return
    const author = message.from.toString()
    if (author === this.self) return
    if (this.components.isMember != null && !this.components.isMember(author)) return
    let gossip: PlacementGossip
    try {
      gossip = decodeMessage(message.data, PlacementGossip)
    } catch (err) {
      this.log.debug(`ignored placement gossip from ${author}: ${errorText(err)}`)
      return
    }
    if (gossip.t === 'announce') {
      if (gossip.submitter !== author) return
      void this.onAnnounce(gossip, author)
    } else if (gossip.t === 'award') {
      this.components.records.open(awardKey(gossip.task, author), gossip.record).then((record) => {
        this.onAward(awardFromRecord(record), gossip.record)
      }).catch((err: Error) => { this.log.debug(`ignored award for ${gossip.task} from ${author}: ${errorText(err)}`) })
    } else {
      const seen = this.observed.get(gossip.task)
      if (seen != null && seen.announce.submitter === author) {
        seen.closed = { status: gossip.status, round: gossip.round, ...(gossip.executor != null ? { executor: gossip.executor } : {}) }
        this.pumpDht()
      }
    }
  }

  // ---- bidder ----

  private async onAnnounce (announce: Announce, from: string): Promise<void> {
    if (this.observed.has(announce.task)) return
    const seen: Observed = { announce, seenAt: Date.now(), awards: [] }
    this.observed.set(announce.task, seen)
    this.trim()
    try {
      const caps = await this.components.capabilities.local({ signal: this.stopping.signal })
      const able = canRun(announce.requirements, caps, this.self)
      if (!able.ok) {
        seen.declined = able.reason
        this.log.debug(`not bidding for ${announce.task}: ${able.reason}`)
        return
      }
      const bid = makeBid({ task: announce.task, submitter: announce.submitter, requirements: announce.requirements, agentSize: announce.agentSize }, caps, this.agents.has(announce.agent))
      seen.myBid = bid
      const record = await createBidRecord(bid, this.components.signer)
      if (!this.started) return
      const key = bidKey(announce.task, this.self)
      const message = { t: 'bid' as const, task: announce.task, bidder: this.self, record }
      let answer: z.infer<typeof Ack>
      try {
        answer = from === this.self
          ? await this.receiveBid(announce.task, this.self, record, 'local')
          : await this.request(from, message, Ack, { signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(announce.bidWindowMs + 5_000)]) })
      } catch (err) {
        // the submitter enumerates the DHT for missing bids when its deadline comes
        if (this.started) this.log.debug(`bid for ${announce.task} not delivered directly, publishing it in the DHT now: ${errorText(err)}`)
        this.putInDht(key, record, { task: announce.task, urgent: true })
        return
      }
      this.putInDht(key, record, { task: announce.task, deferMs: announce.bidWindowMs + 10_000 })
      if (!answer.ok) this.log.debug(`bid for ${announce.task} not taken: ${answer.message}`)
    } catch (err) {
      if (this.started) this.log.debug(`no bid for ${announce.task}: ${errorText(err)}`)
    }
  }

  /**
   * Publishes a record in the DHT. A put is a whole Kademlia query plus a store on each closest
   * peer, and nobody waits for a bid or award delivered directly, so those wait until their task
   * is decided (its `closed` gossip, or `deferMs` at most) and go one at a time, out of the way of
   * the tasks still running. `urgent` ones (a bid the submitter did not receive directly, which
   * it will look for in the DHT at its deadline) start at once.
   */
  private putInDht (key: Uint8Array, value: Uint8Array, options: { task: TaskId, urgent?: boolean, deferMs?: number }): void {
    if (options.urgent === true) {
      void this.dhtPut(key, value)
      return
    }
    this.dhtQueue.push({ key, value, task: options.task, due: Date.now() + (options.deferMs ?? 10_000) })
    if (this.dhtQueue.length > 10_000) this.dhtQueue.shift()
    this.pumpDht()
  }

  private taskDecided (task: TaskId): boolean {
    const auction = this.auctions.get(task)
    if (auction != null) return auction.status === 'done' || auction.status === 'failed'
    return this.observed.get(task)?.closed != null
  }

  /**
   * Whether this device is in the middle of a task: one it submitted is open, one it runs, or
   * one it bid on (recently) is undecided. Deferred DHT puts wait for a quiet moment (or their
   * due time), so a burst of tasks is not slowed by publishing the previous ones.
   */
  private busy (now: number): boolean {
    if (this.assignments.size > 0) return true
    for (const a of this.auctions.values()) if (a.status !== 'done' && a.status !== 'failed') return true
    for (const [id, seen] of this.observed) {
      // (a task this device submitted is judged by its auction above)
      if (seen.myBid != null && seen.closed == null && !this.auctions.has(id) && now - seen.seenAt < seen.announce.bidWindowMs + this.init.leaseMs) return true
    }
    return false
  }

  private pumpDht (): void {
    if (this.dhtPumping || !this.started) return
    const now = Date.now()
    const quiet = this.dhtQueue.length > 0 && !this.busy(now)
    const index = this.dhtQueue.findIndex(e => e.due <= now || (quiet && this.taskDecided(e.task)))
    if (index < 0) {
      clearTimeout(this.dhtTimer)
      // look again soon for a quiet moment, or at the first due time
      const decided = this.dhtQueue.some(e => this.taskDecided(e.task))
      const next = Math.min(...this.dhtQueue.map(e => e.due), decided ? now + DHT_QUIET_CHECK_MS : Infinity)
      if (Number.isFinite(next)) {
        this.dhtTimer = setTimeout(() => { this.pumpDht() }, Math.max(10, next - now))
        this.dhtTimer.unref()
      }
      return
    }
    const [entry] = this.dhtQueue.splice(index, 1)
    this.dhtPumping = true
    void this.dhtPut(entry!.key, entry!.value).finally(() => {
      this.dhtPumping = false
      this.pumpDht()
    })
  }

  private async dhtPut (key: Uint8Array, value: Uint8Array): Promise<void> {
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(30_000)])
    try {
      for await (const _ of this.components.dht.put(key, value, { signal })) { /* drain */ }
    } catch (err) {
      if (this.started) this.log.debug(`DHT put of ${new TextDecoder().decode(key)} failed: ${errorText(err)}`)
    }
  }

  /** Resolves when every queued DHT put has been made. */
  async settled (options: AbortOptions = {}): Promise<void> {
    while (this.started && (this.dhtPumping || this.dhtQueue.length > 0)) {
      options.signal?.throwIfAborted()
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  }

  private async lookupBid (task: TaskId, bidder: string, options: AbortOptions): Promise<Omit<HeldBid, 'via'> | undefined> {
    const key = bidKey(task, bidder)
    let best: Omit<HeldBid, 'via'> | undefined
    let bestTime = -1
    for await (const event of this.components.dht.get(key, options)) {
      if (event.name !== 'VALUE' || !('value' in event) || !(event.value instanceof Uint8Array)) continue
      const value = event.value
      try {
        const record = await this.components.records.open(key, value)
        const payload = bidFromRecord(record)
        if (record.time > bestTime) {
          best = { bidder, payload, record: value, hash: sha256Hex(value) }
          bestTime = record.time
        }
      } catch (err) {
        this.log.debug(`ignored a bid for ${task} under ${bidder}'s key: ${errorText(err)}`)
      }
    }
    return best
  }

  private async lookupAward (task: TaskId, submitter: string, options: AbortOptions): Promise<{ award: AwardPayload, record: Uint8Array } | undefined> {
    const key = awardKey(task, submitter)
    let best: { award: AwardPayload, record: Uint8Array } | undefined
    for await (const event of this.components.dht.get(key, options)) {
      if (event.name !== 'VALUE' || !('value' in event) || !(event.value instanceof Uint8Array)) continue
      const value = event.value
      try {
        const award = awardFromRecord(await this.components.records.open(key, value))
        if (best == null || award.round > best.award.round) best = { award, record: value }
      } catch {}
    }
    return best
  }

  // ---- winner ----

  private onAward (award: AwardPayload, record: Uint8Array): void {
    const seen = this.observed.get(award.task)
    if (seen != null && !seen.awards.some(a => a.award.round === award.round)) {
      seen.awards.push({ award, record })
      seen.awards.sort((a, b) => a.award.round - b.award.round)
    }
    if (award.winner !== this.self || this.assignments.has(award.task) || !this.started) return
    const assignment: Assignment = { task: award.task, round: award.round, award, controller: new AbortController() }
    if (seen != null) assignment.announce = seen.announce
    this.assignments.set(award.task, assignment)
    this.components.capabilities.setRunning(this.assignments.size)
    void this.execute(assignment).finally(() => {
      clearTimeout(assignment.renewTimer)
      this.assignments.delete(award.task)
      if (this.started) this.components.capabilities.setRunning(this.assignments.size)
    })
  }

  private async execute (a: Assignment): Promise<void> {
    const { award } = a
    const submitter = award.submitter
    const signal = AbortSignal.any([a.controller.signal, this.stopping.signal])
    const claim = await this.request(submitter, { t: 'claim', task: a.task, round: a.round }, ClaimResponse, { signal: AbortSignal.any([signal, AbortSignal.timeout(award.leaseMs)]) })
      .catch((err: Error) => this.refuse('Unreachable', errorText(err)))
    if (!claim.ok) {
      this.log.debug(`claim of ${a.task} round ${a.round} refused: ${claim.message}`)
      return
    }
    this.scheduleRenewal(a, claim.leaseMs)

    let agent = this.agents.get(award.agent)
    if (agent == null) {
      try {
        agent = submitter === this.self
          ? undefined
          : await fetchAgent(this.components.host, peerIdFromString(submitter), award.agent, { maxBytes: this.init.maxAgentBytes, signal, protocol: this.fetchProtocol })
        if (agent == null) throw new AgentFetchError(`agent ${award.agent} is no longer held here`)
        this.agents.put(agent)
      } catch (err) {
        if (signal.aborted) return
        const reason = err instanceof AgentDigestMismatchError || err instanceof AgentFetchError ? err.message : errorText(err)
        clearTimeout(a.renewTimer)
        await this.request(submitter, { t: 'abandon', task: a.task, round: a.round, reason }, Ack, { signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)]) }).catch(() => {})
        return
      }
    }
    this.agents.pin(award.agent)
    const started = performance.now()
    let outcome: ExecutionOutcome
    try {
      this.dispatchEvent(new CustomEvent('run-start', { detail: { task: a.task, round: a.round } }))
      try {
        outcome = await this.components.executor.run(agent, claim.input, {
          taskId: a.task,
          ...(a.announce?.context != null ? { contextId: a.announce.context } : {}),
          permissions: a.announce?.permissions ?? [],
          signal
        })
      } catch (err) {
        outcome = { ok: false, error: errorText(err) }
      }
    } finally {
      this.agents.unpin(award.agent)
    }
    clearTimeout(a.renewTimer)
    if (this.stopping.signal.aborted || a.revoked != null) {
      this.dispatchEvent(new CustomEvent('run-end', { detail: { task: a.task, round: a.round, sent: false, reason: a.revoked ?? 'stopped' } }))
      return
    }
    const durationMs = performance.now() - started
    if (!outcome.ok && outcome.retry === true) {
      this.dispatchEvent(new CustomEvent('run-end', { detail: { task: a.task, round: a.round, sent: false, reason: outcome.error } }))
      await this.request(submitter, { t: 'abandon', task: a.task, round: a.round, reason: `could not run it here: ${outcome.error}`.slice(0, 1024) }, Ack, {
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)])
      }).catch(() => {})
      return
    }
    if (outcome.ok && Buffer.byteLength(outcome.output, 'utf8') > this.init.maxOutputBytes) {
      outcome = { ok: false, error: `the agent's output exceeds ${this.init.maxOutputBytes} bytes` }
    }
    await this.deliver(a, outcome, durationMs)
  }

  private scheduleRenewal (a: Assignment, leaseMs: number): void {
    const every = Math.max(50, Math.floor(leaseMs / 3))
    let renewing = false
    const renew = async (): Promise<void> => {
      if (renewing) return
      renewing = true
      clearTimeout(a.renewTimer)
      const answer = await this.request(a.award.submitter, { t: 'renew', task: a.task, round: a.round }, RenewResponse, {
        signal: AbortSignal.any([a.controller.signal, this.stopping.signal, AbortSignal.timeout(every * 2)])
      }).catch((err: Error) => { this.log.debug(`lease renewal for ${a.task} failed: ${errorText(err)}`); return undefined })
      renewing = false
      if (answer != null && !answer.ok && (answer.reason === 'Lapsed' || answer.reason === 'Closed' || answer.reason === 'UnknownTask')) {
        a.revoked = answer.message
        a.controller.abort(new Error(`lease revoked: ${answer.message}`))
        return
      }
      if (!a.controller.signal.aborted && !this.stopping.signal.aborted) a.renewTimer = setTimeout(() => { void renew() }, every)
    }
    a.renewTimer = setTimeout(() => { void renew() }, every)
    // the dial a renewal makes is what reconnects a winner cut off from its submitter in time
    a.renewNow = () => { if (!a.controller.signal.aborted && !this.stopping.signal.aborted) void renew() }
  }

  /** Sends the result (retrying while the submitter is unreachable), then records the run. */
  private async deliver (a: Assignment, outcome: ExecutionOutcome, durationMs: number): Promise<void> {
    const request = {
      t: 'result' as const,
      task: a.task,
      round: a.round,
      ok: outcome.ok,
      ...(outcome.ok ? { output: outcome.output } : { error: outcome.error.slice(0, 4096) }),
      ...(outcome.logs != null && outcome.logs.length > 0
        ? { logs: outcome.logs.slice(0, MAX_LOG_LINES).map(l => ({ level: l.level.slice(0, 16), message: l.message.slice(0, 4096) })) }
        : {}),
      durationMs
    }
    const giveUpAt = Date.now() + 3 * a.award.leaseMs + 10_000
    const delays = [100, 250, 500, 1000, 2000]
    for (let attempt = 0; ; attempt++) {
      try {
        const sent = await this.sendResult(a, request, outcome)
        this.dispatchEvent(new CustomEvent('run-end', { detail: { task: a.task, round: a.round, sent: true, accepted: sent } }))
        return
      } catch (err) {
        this.dispatchEvent(new CustomEvent('result-send-failed', { detail: { task: a.task, round: a.round, error: errorText(err) } }))
        if (this.stopping.signal.aborted || Date.now() > giveUpAt) {
          this.log.warn(`result of ${a.task} could not be delivered to ${a.award.submitter}: ${errorText(err)}`)
          this.dispatchEvent(new CustomEvent('run-end', { detail: { task: a.task, round: a.round, sent: false, reason: 'submitter unreachable' } }))
          return
        }
        await new Promise(resolve => setTimeout(resolve, delays[Math.min(attempt, delays.length - 1)]))
      }
    }
  }

  /** One attempt: result, the submitter's verdict, the ledger record, its confirmation. */
  private async sendResult (a: Assignment, request: Extract<Request, { t: 'result' }>, outcome: ExecutionOutcome): Promise<boolean> {
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.init.recordConfirmMs + 10_000)])
    if (a.award.submitter === this.self) {
      const verdict = this.onResult(this.self, request)
      const accepted = verdict.ok && verdict.accepted
      const recorded = await this.record(a, outcome, accepted, signal)
      this.onRecorded(this.self, request, recorded, accepted)
      return accepted
    }
    const stream = await dialFramed(this.components.host, peerIdFromString(a.award.submitter), this.protocol, { signal, maxMessageBytes: this.maxFrameBytes })
    try {
      await stream.write(request, { signal })
      const verdict = await stream.read(ResultResponse, { signal })
      if (!verdict.ok) {
        // the submitter no longer knows the task: nothing to deliver, but the run is recorded
        await this.record(a, outcome, false, signal)
        await stream.close({ signal }).catch(() => {})
        return false
      }
      const recorded = await this.record(a, outcome, verdict.accepted, signal)
      await stream.write(recorded, { signal })
      await stream.read(Ack, { signal }).catch(() => {})
      await stream.close({ signal }).catch(() => {})
      return verdict.accepted
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }

  private async record (a: Assignment, outcome: ExecutionOutcome, accepted: boolean, signal: AbortSignal): Promise<Recorded> {
    const ledger = this.components.ledger
    if (ledger == null) return { t: 'recorded', error: 'this node keeps no ledger' }
    const status = !accepted ? 'discarded' : outcome.ok ? 'ok' : 'error'
    const summary = `round ${a.round} of task by ${a.award.submitter}; won with cost ${a.award.cost} among ${a.award.bids.length} bid${a.award.bids.length === 1 ? '' : 's'}` +
      (a.award.excluded.length > 0 ? `; after ${a.award.excluded.length} lapsed` : '')
    try {
      const appended = await ledger.append({
        task: a.task,
        agent: a.award.agent,
        input: a.award.input,
        output: sha256Hex(outcome.ok ? outcome.output : outcome.error),
        status,
        placement: summary.slice(0, 1000)
      }, { signal })
      const hash = appended?.hash
      return {
        t: 'recorded',
        ...(appended?.seq != null ? { seq: appended.seq } : {}),
        ...(hash != null ? { hash: typeof hash === 'string' ? hash : Buffer.from(hash).toString('hex') } : {})
      }
    } catch (err) {
      this.log.warn(`ledger record for ${a.task} not appended: ${errorText(err)}`)
      return { t: 'recorded', error: errorText(err).slice(0, 1000) }
    }
  }

  // ---- requests ----

  private async request<S extends z.ZodType> (peer: string, message: Exclude<Request, { t: 'result' }>, schema: S, options: AbortOptions): Promise<z.infer<S>> {
    if (peer === this.self) return schema.parse(await this.handle(this.self, message))
    const stream = await dialFramed(this.components.host, peerIdFromString(peer), this.protocol, { signal: options.signal, maxMessageBytes: this.maxFrameBytes })
    try {
      await stream.write(message, options)
      const answer = await stream.read(schema, options)
      await stream.close(options).catch(() => {})
      return answer
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }

  // ---- views ----

  private emitTask (auction: Auction): void {
    this.dispatchEvent(new CustomEvent('task', { detail: this.auctionView(auction) }))
  }

  private auctionView (auction: Auction): TaskView {
    const a = auction.announce
    return {
      id: auction.id,
      role: 'submitter',
      submitter: this.self,
      status: auction.status,
      agent: a.agent,
      input: a.input,
      inputSize: a.inputSize,
      requirements: a.requirements,
      permissions: a.permissions,
      ...(a.context != null ? { contextId: a.context } : {}),
      createdAt: auction.createdAt,
      ...(auction.closedAt != null ? { closedAt: auction.closedAt } : {}),
      round: auction.round,
      ...(auction.winner != null ? { winner: auction.winner } : {}),
      ...(auction.result != null ? { result: structuredClone(auction.result) } : {}),
      ...(auction.error != null ? { error: { ...auction.error } } : {}),
      history: auction.history.map(h => ({ ...h }))
    }
  }

  private observedView (id: TaskId, seen: Observed): TaskView {
    const a = seen.announce
    const last = seen.awards.at(-1)?.award
    const status: TaskStatus = seen.closed?.status ?? (last != null ? 'awarded' : 'bidding')
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
      round: last?.round ?? 0,
      ...(last != null ? { winner: seen.closed?.executor ?? last.winner } : {}),
      history: seen.awards.map(({ award }) => ({
        at: seen.seenAt,
        type: 'awarded' as const,
        peer: award.winner,
        round: award.round,
        detail: `awarded at cost ${award.cost} among ${award.bids.length} bids${award.excluded.length > 0 ? `, excluding ${award.excluded.join(', ')}` : ''}`
      }))
    }
  }

  get (taskId: string): TaskView | undefined {
    const auction = this.auctions.get(taskId as TaskId)
    if (auction != null) return this.auctionView(auction)
    const seen = this.observed.get(taskId as TaskId)
    return seen != null ? this.observedView(taskId as TaskId, seen) : undefined
  }

  list (options: { limit?: number } = {}): TaskView[] {
    const views: TaskView[] = [...this.auctions.values()].map(a => this.auctionView(a))
    for (const [id, seen] of this.observed) {
      if (!this.auctions.has(id)) views.push(this.observedView(id, seen))
    }
    views.sort((a, b) => b.createdAt - a.createdAt)
    return views.slice(0, options.limit ?? 50)
  }

  async explain (taskId: string, options: AbortOptions = {}): Promise<Explanation> {
    if (!isTaskId(taskId)) throw new TaskNotFoundError(`"${taskId}" is not a task id (32 hex characters)`)
    const names = new Map(this.components.capabilities.view().map(e => [e.peerId, e.caps.name]))
    const auction = this.auctions.get(taskId)
    if (auction != null) {
      const last = auction.awards.at(-1)
      const ranking = elect(auction.id, [...auction.bids.values()].map(b => ({ bidder: b.bidder, cost: b.payload.cost })), auction.excluded)?.ranking ??
        rankAll(auction.id, [...auction.bids.values()].map(b => ({ bidder: b.bidder, cost: b.payload.cost })), auction.excluded)
      return {
        task: auction.id,
        submitter: this.self,
        status: auction.status,
        rule: ELECTION_RULE,
        requirements: auction.announce.requirements,
        expected: [...auction.expected],
        missing: [...auction.expected].filter(p => !auction.bids.has(p)),
        bids: ranking.map(r => explainedBid(r, auction.bids.get(r.bidder)!.payload, auction.bids.get(r.bidder)!.via, names.get(r.bidder))),
        rounds: auction.awards.map((award, i) => ({
          round: award.round,
          winner: award.winner,
          cost: award.cost,
          excluded: award.excluded,
          why: i === 0 ? 'lowest cost among the bids' : reelectionWhy(auction, auction.awards[i - 1]!)
        })),
        ...(last != null ? { winner: auction.result?.executor ?? last.winner } : {}),
        ...(auction.result != null ? { result: structuredClone(auction.result) } : {}),
        history: auction.history.map(h => ({ ...h }))
      }
    }
    const seen = this.observed.get(taskId)
    if (seen == null) throw new TaskNotFoundError(`task ${taskId} is not known to this node`)
    const re = await this.recompute(taskId, options)
    const last = seen.awards.at(-1)?.award
    const bids = await this.bidsOf(taskId, seen, options)
    const ranking = rankAll(taskId, bids.map(b => ({ bidder: b.bidder, cost: b.payload.cost })), last?.excluded ?? [])
    return {
      task: taskId,
      submitter: seen.announce.submitter,
      status: this.observedView(taskId, seen).status,
      rule: ELECTION_RULE,
      requirements: seen.announce.requirements,
      expected: [],
      missing: re.mismatched,
      bids: ranking.map(r => explainedBid(r, bids.find(b => b.bidder === r.bidder)!.payload, 'dht', names.get(r.bidder))),
      rounds: seen.awards.map(({ award }, i) => ({
        round: award.round,
        winner: award.winner,
        cost: award.cost,
        excluded: award.excluded,
        why: i === 0 ? 'lowest cost among the bids' : `re-election: ${seen.awards[i - 1]!.award.winner} lost the task (its lease lapsed, it disconnected or gave the task up)`
      })),
      ...(last != null ? { winner: seen.closed?.executor ?? last.winner } : {}),
      history: this.observedView(taskId, seen).history
    }
  }

  private async bidsOf (taskId: TaskId, seen: Observed, options: AbortOptions): Promise<Array<Omit<HeldBid, 'via'>>> {
    // with an award, the bids it lists are the ones that decide; without one, ask every member
    const award = seen.awards.at(-1)?.award
    const bidders = new Set<string>(award?.bids.map(b => b.bidder) ?? this.components.capabilities.view().map(e => e.peerId))
    // each lookup is a whole Kademlia query: a few at a time, each with its own time limit
    const signals = [...(options.signal != null ? [options.signal] : []), this.stopping.signal]
    const queue = [...bidders]
    const found: Array<Omit<HeldBid, 'via'>> = []
    await Promise.all(Array.from({ length: Math.min(3, queue.length) }, async () => {
      for (let bidder = queue.shift(); bidder != null; bidder = queue.shift()) {
        const signal = AbortSignal.any([...signals, AbortSignal.timeout(RECOMPUTE_LOOKUP_MS)])
        const bid = await this.lookupBid(taskId, bidder, { signal }).catch((err: Error) => { this.log.debug(`bid of ${bidder} for ${taskId} not found: ${errorText(err)}`) })
        if (bid != null) found.push(bid)
      }
    }))
    return found
  }

  async recompute (taskId: string, options: AbortOptions = {}): Promise<Recomputation> {
    if (!isTaskId(taskId)) throw new TaskNotFoundError(`"${taskId}" is not a task id (32 hex characters)`)
    const auction = this.auctions.get(taskId)
    const seen = this.observed.get(taskId)
    if (auction == null && seen == null) throw new TaskNotFoundError(`task ${taskId} is not known to this node`)
    const submitter = auction != null ? this.self : seen!.announce.submitter
    let award = auction?.awards.at(-1) ?? seen?.awards.at(-1)?.award
    if (award == null) {
      const signal = AbortSignal.any([...(options.signal != null ? [options.signal] : []), AbortSignal.timeout(this.init.dhtLookupMs * 2)])
      award = (await this.lookupAward(taskId, submitter, { signal }))?.award
    }
    const stub: Observed = seen ?? { announce: auction!.announce, seenAt: 0, awards: [] }
    const bids = await this.bidsOf(taskId, award != null ? { ...stub, awards: [{ award, record: new Uint8Array() }] } : stub, options)
    const listed = award?.bids ?? []
    const mismatched = listed.filter(l => !bids.some(b => b.bidder === l.bidder && b.hash === l.hash)).map(l => l.bidder)
    // the election is over the bids the award lists, as found in the DHT with the same bytes
    const considered = award != null ? bids.filter(b => listed.some(l => l.bidder === b.bidder && l.hash === b.hash)) : bids
    const result = elect(taskId, considered.map(b => ({ bidder: b.bidder, cost: b.payload.cost })), award?.excluded ?? [])
    return {
      task: taskId,
      ...(result != null ? { winner: result.winner } : {}),
      ...(award != null ? { awarded: award.winner } : {}),
      round: award?.round ?? 0,
      bids: considered.map(b => ({ bidder: b.bidder, cost: b.payload.cost, hash: b.hash })),
      mismatched,
      agrees: award != null && result?.winner === award.winner && mismatched.length === 0
    }
  }

  private trim (): void {
    const max = this.init.maxTasks
    for (const [id, a] of this.auctions) {
      if (this.auctions.size <= max) break
      if (a.status === 'done' || a.status === 'failed') this.auctions.delete(id)
    }
    for (const id of this.observed.keys()) {
      if (this.observed.size <= max) break
      this.observed.delete(id)
    }
  }
}

/** Why a round was re-elected, from what the history says happened to the round before it. */
function reelectionWhy (auction: Auction, previous: AwardPayload): string {
  const lost = auction.history.find(h => h.round === previous.round && h.peer === previous.winner &&
    (h.type === 'lease-lapsed' || h.type === 'winner-lost' || h.type === 'abandoned'))
  const what = lost?.type === 'winner-lost'
    ? 'disconnected and did not come back'
    : lost?.type === 'lease-lapsed' ? 'let its lease lapse' : lost?.type === 'abandoned' ? 'gave the task up' : 'lost the task'
  return `re-election: ${previous.winner} ${what}`
}

/** One ranked bid as `explain` shows it. */
function explainedBid (r: Ranked, payload: Pick<BidPayload, 'reasons' | 'holdsAgent'>, via: ExplainedBid['via'], name: string | undefined): ExplainedBid {
  return {
    bidder: r.bidder,
    ...(name != null ? { name } : {}),
    cost: r.cost,
    reasons: payload.reasons,
    holdsAgent: payload.holdsAgent,
    rank: r.rank,
    tieBreak: r.tieBreak,
    excluded: r.excluded,
    via
  }
}

function rankAll (taskId: string, candidates: Array<{ bidder: string, cost: number }>, excluded: Iterable<string>): Ranked[] {
  const out = new Set(excluded)
  return candidates
    .map(c => ({ ...c, tieBreak: tieBreak(taskId, c.bidder), excluded: out.has(c.bidder) }))
    .sort((a, b) => Number(a.excluded) - Number(b.excluded) || a.cost - b.cost || (a.tieBreak < b.tieBreak ? -1 : 1))
    .map((r, i) => ({ ...r, rank: i + 1 }))
}

export function encodeGossip (message: PlacementGossip): Uint8Array {
  return cborEncode(message)
}

export function decodeGossip (bytes: Uint8Array): PlacementGossip {
  return decodeMessage(bytes, PlacementGossip)
}
