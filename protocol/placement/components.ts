// The ports placement is built on: the narrow parts of libp2p it uses, what it needs from
// capability gossip, the executor that runs an agent and the ledger that records a run. Tests
// hand any of them stubs.

import { DEFAULT_MAX_BIDDERS } from './candidates.ts'
import { MAX_CANDIDATES } from './messages.ts'
import type { CapabilityEntry, CapabilityReport } from '../capabilities/index.ts'
import type { HiveRecord, OpenOptions, RecordSigner } from '../wire/dht-records.ts'
import type { SyncedOptions } from '../wire/replicated-entries.ts'
import type { PeerGate, ProtocolHost, ProtocolLog } from '../wire/serve.ts'
import type { LlmUsage } from '../llm/types.ts'
import type { Announce } from './messages.ts'
import type { TaskId } from './ids.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import type { AbortOptions, PeerId } from '@libp2p/interface'

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
  /**
   * Puts several records at once, as the node knows how (straight to a small hive's members,
   * several on one stream). Without it, each record is put on its own.
   */
  putMany?: (records: Array<{ key: Uint8Array, value: Uint8Array }>, options?: AbortOptions) => Promise<void>
}

/** Opens and checks a signed DHT record (the node's HiveRecords: signature, membership, kind). */
export interface PlacementRecords {
  /** Opens and checks a record; `from`, the peer the bytes provably came from (see wire's OpenOptions). */
  open: (key: Uint8Array | string, value: Uint8Array, options?: OpenOptions) => Promise<HiveRecord>
}

/**
 * What placement needs from capability gossip. The count of tasks running here is not pushed
 * into it: placement exposes `running()` and a `running` event for capabilities to pull.
 */
export interface CapabilitySource {
  local: (options?: { signal?: AbortSignal }) => Promise<CapabilityReport>
  view: () => CapabilityEntry[]
}

export interface ExecuteOptions {
  taskId: TaskId
  contextId?: string
  permissions: string[]
  signal: AbortSignal
  /** Called with each line the agent logs, as it is logged (the runner streams them to the submitter). */
  onLog?: (line: AgentLogLine) => void
}

export interface AgentLogLine {
  level: string
  message: string
}

/**
 * What running an agent came to. `retry` marks a failure of this node rather than of the agent
 * (its sandbox stopped, it could not compile here): the task is given up and re-elected instead
 * of failing.
 */
export type ExecutionOutcome = ({ ok: true, output: string } | { ok: false, error: string, retry?: boolean }) & {
  /** What the agent logged while it ran (returned to the submitter, bounded). */
  logs?: AgentLogLine[]
  /** The model calls the agent made, passed to the ledger record as they are. */
  llm?: LlmUsage[]
  /** The http requests the agent made (total, per granted origin), passed to the ledger record as they are. */
  net?: NetRequests
}

/** A run's http requests as its ledger record holds them (ledger/FORMAT.md, version 3). */
export interface NetRequests {
  requests: number
  origins: Array<{ origin: string, requests: number }>
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
  status: 'ok' | 'error' | 'discarded' | 'cancelled'
  placement: string
  /** The model calls of the run, when it made any. */
  llm?: LlmUsage[]
  /** The http requests of the run, when it made any. */
  net?: NetRequests
}

/** Where an executor records what it ran: the ledger in the node. */
export interface LedgerSink {
  append: (record: ExecutionRecord, options?: { signal?: AbortSignal }) => Promise<{ seq?: number, hash?: Uint8Array | string } | undefined | void>
  /**
   * Why a record could not be appended now (the chain is damaged), or undefined when it can.
   * A node whose ledger says so does not bid, does not run what it was awarded, and refuses a
   * task pinned to it: every run it accepts leaves a record.
   */
  unwritable?: () => Error | undefined
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
  /**
   * Why a device with this report would not run a task granted `permissions` by its own policy
   * (an origin it refuses), or undefined. The node supplies the rule; placement applies it to its
   * own bid and to whom it expects bids from.
   */
  refuses?: (permissions: readonly string[], caps: CapabilityReport) => string | undefined
  log?: ProtocolLog
  /**
   * Why the hive's policy keeps device `peer`, whose report is `caps`, from a task now (a
   * battery bound, quiet hours, a task bound, tags it lacks, a local-only task), as text naming
   * the rule and what to change; undefined when nothing does. Asked by the bidder of its own
   * device (which then declines and tells the submitter) and by the submitter of every device
   * it expects bids from, as far as their reports tell.
   */
  policy?: (peer: string, announce: Announce, caps: CapabilityReport) => string | undefined
  /**
   * Budgets: `ready` reads what the ledger counts, then `admit` checks the task and reserves it
   * in one synchronous step, or throws (OverBudget). The ticket is bound to the task's id, and
   * released when the task ends without having been awarded.
   */
  budget?: {
    ready: (options: AbortOptions) => Promise<void>
    admit: (task: { agent: Uint8Array, digest: string, context?: string }) => { name?: string, ticket?: { bind: (task: string) => void, release: () => void } }
  }
  /**
   * The hive's kill switch: why nothing may be submitted, bid on or run now (the hive is
   * halted), or undefined. Placement checks it before each of those.
   */
  halted?: () => Error | undefined
  /**
   * Resolves once this node holds what `peer` knows of the kill switch (an exchange on their
   * current connection). A bidder awaits it for the submitter first, so a device back from
   * offline hears of a halt before it bids.
   */
  synced?: (peer: string, options: SyncedOptions) => Promise<void>
  /**
   * Whether this device reaches `peer` only through a relay: a bid for that peer's task then
   * counts the agent and the input crossing the relay (RELAYED_* in cost.ts).
   */
  relayedTo?: (peer: string) => boolean
  /**
   * Members this device reaches through the hive's mesh without a connection of its own (beyond
   * an all-to-all hive: members that are not its neighbours). A submitter expects their bids and
   * waits for them as for connected members'; a winner's loss is still noticed on its connection.
   */
  reachable?: () => Iterable<string>
  /**
   * Whether a bid that could not be handed to its submitter goes into the DHT at once, and the
   * submitter looks up the missing bids there at its deadline (true when omitted). Beyond an
   * all-to-all hive both dial members across the hive (the k closest to the key): a bid fails
   * to arrive when the hive is too busy to finish a connection, which is when those dials fail
   * too. At 50 devices a burst put 1,300 bids there and the lookups found none.
   */
  bidsThroughDht?: () => boolean
  /**
   * Agents held beyond the store in memory (the registry's, on disk): a winner looks there before
   * it fetches from the submitter, members are served from there too, and `fetched` is told of
   * each agent a winner had to fetch (so it can keep the ones it wants).
   */
  agentSource?: {
    load: (digest: string) => Promise<Uint8Array | undefined>
    fetched?: (digest: string, bytes: Uint8Array) => void
  }
  /**
   * Called with a task submitted here the moment its result is accepted, and awaited before the
   * winner hears "accepted" (and so before it appends its `ok` ledger record): whoever must not
   * lose the result (a workflow's durable state) writes it here. A failure is logged, not fatal.
   */
  keepResult?: (task: KeptResult) => Promise<void>
  /**
   * Asked when a result comes for a task this node no longer holds (it restarted since): whether
   * `keepResult` kept this very result before the node stopped. True: the result is answered
   * "accepted" again, so its winner records the run `ok` rather than `discarded`, and a kept
   * result never lacks its `ok` record. Absent, or false: the task is unknown.
   */
  keptBefore?: (task: KeptBefore) => Promise<boolean>
}

/** A result delivered for a task the submitter no longer holds, as `keptBefore` is asked about it. */
export interface KeptBefore {
  id: TaskId
  executor: string
  round: number
  ok: boolean
  output?: string
  error?: string
}

/** What `keepResult` is handed: the task (its view, of which these fields matter) with its accepted result. */
export interface KeptResult {
  id: TaskId
  result?: { ok: boolean, output?: string, executor: string }
}

/** How a caller may submit: with a task id it chose and recorded beforehand (see `Placement.submit`). */
export interface SubmitOptions extends AbortOptions {
  taskId?: TaskId
}

/**
 * A placement session (session.ts) with nothing asked or answered for this long is closed by its
 * asker. An open session is a stream that holds its connection in use: between devices that are
 * not neighbours in a bounded mesh, the link would otherwise never be let go of (membership/mesh.ts).
 */
export const SESSION_IDLE_MS = 30_000

/** How long an executor has to confirm its ledger record after its result is answered. */
export const RECORD_CONFIRM_MS = 10_000

export interface PlacementInit {
  topic?: string
  protocol?: string
  /** Where one-shot requests go on one stream per pair of peers; null: one stream per request. */
  sessionProtocol?: string | null
  /** A session with nothing asked or answered this long is closed by its asker. Default 30 s. */
  sessionIdleMs?: number
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
  /** How long an executor has to confirm its ledger record after its result is accepted. Default RECORD_CONFIRM_MS. */
  recordConfirmMs?: number
  /**
   * The most members asked to bid on one task (candidates.ts). Default 8; at most
   * MAX_CANDIDATES. In a hive with no more live capable members than this, all bid.
   */
  maxBidders?: number
}

/** The init with every default filled in. */
export type PlacementSettings = Required<Omit<PlacementInit, 'topic' | 'protocol' | 'sessionProtocol' | 'agentFetchProtocol'>>

export function placementSettings (init: PlacementInit): PlacementSettings {
  return {
    bidWindowMs: init.bidWindowMs ?? 2_000,
    leaseMs: init.leaseMs ?? 5_000,
    winnerGraceMs: init.winnerGraceMs ?? 2_000,
    maxTasks: init.maxTasks ?? 1_000,
    maxAgentBytes: init.maxAgentBytes ?? 64 * 1024 * 1024,
    maxInputBytes: init.maxInputBytes ?? 4 * 1024 * 1024,
    maxOutputBytes: init.maxOutputBytes ?? 4 * 1024 * 1024,
    agentCacheBytes: init.agentCacheBytes ?? 256 * 1024 * 1024,
    dhtLookupMs: init.dhtLookupMs ?? 1_500,
    recordConfirmMs: init.recordConfirmMs ?? RECORD_CONFIRM_MS,
    maxBidders: Math.max(1, Math.min(MAX_CANDIDATES, Math.floor(init.maxBidders ?? DEFAULT_MAX_BIDDERS))),
    sessionIdleMs: Math.max(1_000, init.sessionIdleMs ?? SESSION_IDLE_MS)
  }
}

export const SILENT_LOG: ProtocolLog = { debug: () => {}, warn: () => {} }

export function errorText (err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err)
}
