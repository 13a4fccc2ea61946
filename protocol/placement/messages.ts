// Every message placement sends or stores, as zod schemas checked at the boundary.
//
// Gossip (topic `hive/placement/1`, authored and signed by gossipsub): `announce` a task,
// `award` it (carrying the signed award record), `closed` when it has its result.
// DHT records (signed envelopes, protocol/dht-records.ts): `bid` under
// `/hive/bid/<task>/<bidder>` and `award` under `/hive/award/<task>/<submitter>`.
// Streams: `/hive/placement/1.0.0` (bidder or winner → submitter, one request and its answer
// per stream) and `/hive/agent-fetch/1.0.0` (agent bytes by digest, in chunks).

import { z } from 'zod'
import { Bytes } from '../wire/codec.ts'
import { CONTEXT_ID_MAX_LENGTH, CONTEXT_ID_PATTERN, DIGEST_PATTERN, TASK_ID_PATTERN } from './ids.ts'
import { MAX_DEVICE_TAGS, TagSchema } from '../control/policy.ts'
import type { Digest, TaskId } from './ids.ts'

export const TaskIdSchema = z.string().regex(TASK_ID_PATTERN, 'a task id (32 hex characters)').transform(s => s as TaskId)
export const DigestSchema = z.string().regex(DIGEST_PATTERN, 'a SHA-256 digest (64 hex characters)').transform(s => s as Digest)
const PeerIdText = z.string().min(1).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'a base58 PeerId')
const Name = z.string().min(1).max(128)

export const DEFAULT_RUNTIME = 'wasm-component'

/** What a device must offer to run a task. Missing one is the only reason not to bid. */
export const Requirements = z.object({
  runtime: Name.default(DEFAULT_RUNTIME),
  /** Local LLM models the agent needs on the device. */
  models: z.array(Name).max(16).default([]),
  minMemoryMiB: z.number().int().min(0).max(1 << 24).optional(),
  minCores: z.number().int().min(1).max(4096).optional(),
  /** Only this device may run the task (`--on PEER`). */
  peer: PeerIdText.optional(),
  /** Only devices the hive's policy gives every one of these tags (`--tag gpu`). */
  tags: z.array(TagSchema).max(MAX_DEVICE_TAGS).optional(),
  /** Never leaves the submitting device (`--local-only`): the task is pinned to it. */
  localOnly: z.boolean().optional()
}).strict()
export type Requirements = z.infer<typeof Requirements>
export type RequirementsInput = z.input<typeof Requirements>

/**
 * A task grants at most this many permissions, each a name of at most PERMISSION_NAME_MAX
 * characters: room for every permission name and a manifest's 32 `net:` origins of up to 300.
 */
export const MAX_PERMISSIONS = 48
export const PERMISSION_NAME_MAX = 304
export const Permissions = z.array(z.string().min(1).max(PERMISSION_NAME_MAX)).max(MAX_PERMISSIONS)

export const ContextIdSchema = z.string().min(1).max(CONTEXT_ID_MAX_LENGTH)
  .regex(CONTEXT_ID_PATTERN, `1 to ${CONTEXT_ID_MAX_LENGTH} characters from A-Z a-z 0-9 . _ - , starting with a letter or digit`)

/** The most candidates an announcement may name (candidates.ts); a submitter asks at most this many bidders. */
export const MAX_CANDIDATES = 32

/** How long a submitter may wait for bids: 1 ms to 10 minutes. */
export const BidWindowMs = z.number().int().min(1).max(600_000)
/** A winner's lease: 100 ms to 1 hour. */
export const LeaseMs = z.number().int().min(100).max(3_600_000)

export const Announce = z.object({
  v: z.literal(1),
  t: z.literal('announce'),
  task: TaskIdSchema,
  submitter: PeerIdText,
  agent: DigestSchema,
  agentSize: z.number().int().min(0),
  input: DigestSchema,
  inputSize: z.number().int().min(0),
  requirements: Requirements,
  permissions: Permissions,
  context: ContextIdSchema.optional(),
  /** The agent's manifest name, which its runner writes in its ledger record (budgets count by it). */
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/).optional(),
  /** How long the submitter waits for bids, from when it announced. */
  bidWindowMs: BidWindowMs,
  /**
   * The members asked to bid, when the submitter asks only some (candidates.ts): distinct
   * members' PeerIds (gossip's validator checks membership). Absent: every capable member bids.
   */
  candidates: z.array(PeerIdText).min(1).max(MAX_CANDIDATES)
    .refine(c => new Set(c).size === c.length, 'each candidate once').optional()
})
export type Announce = z.infer<typeof Announce>

export const BID_FACTORS = ['load', 'tasks', 'memory', 'power', 'agent', 'models'] as const
export type BidFactor = typeof BID_FACTORS[number]

export const Reason = z.object({
  factor: z.enum(BID_FACTORS),
  points: z.number().min(0).max(1e9),
  detail: z.string().max(200)
})
export type Reason = z.infer<typeof Reason>

/** The device state a bid was computed from, kept with the bid for `explain`. */
export const BidState = z.object({
  cores: z.number().int().min(1),
  load: z.number().min(0),
  running: z.number().int().min(0),
  freeMemory: z.number().int().min(0),
  totalMemory: z.number().int().min(0),
  power: z.enum(['ac', 'battery', 'unknown']),
  batteryPercent: z.number().min(0).max(100).optional(),
  overridden: z.array(z.string().max(32)).max(16)
})
export type BidState = z.infer<typeof BidState>

/** Payload of a `bid` DHT record. The bidder is the record's publisher (and in its key). */
export const BidPayload = z.object({
  v: z.literal(1),
  task: TaskIdSchema,
  submitter: PeerIdText,
  cost: z.number().min(0).max(1e12),
  reasons: z.array(Reason).max(BID_FACTORS.length),
  holdsAgent: z.boolean(),
  state: BidState
})
export type BidPayload = z.infer<typeof BidPayload>

export const AwardedBid = z.object({
  bidder: PeerIdText,
  cost: z.number().min(0).max(1e12),
  /** SHA-256 of the bid record's bytes as published, so anyone can check they hold the same bid. */
  hash: DigestSchema
})
export type AwardedBid = z.infer<typeof AwardedBid>

/** Payload of an `award` DHT record, published (and signed) by the submitter. */
export const AwardPayload = z.object({
  v: z.literal(1),
  task: TaskIdSchema,
  submitter: PeerIdText,
  round: z.number().int().min(1).max(1000),
  winner: PeerIdText,
  cost: z.number().min(0).max(1e12),
  rule: z.string().max(200),
  /** Every valid bid the election saw. */
  bids: z.array(AwardedBid).max(128),
  /** Bidders passed over because their lease lapsed or they gave the task up. */
  excluded: z.array(PeerIdText).max(128),
  agent: DigestSchema,
  input: DigestSchema,
  leaseMs: LeaseMs,
  /**
   * The signed bid records themselves (bytes as the bidders signed them), as many as fit the
   * record, so a member can check every signature and recompute the election from this one
   * record. Each one's SHA-256 is listed in `bids`.
   */
  bidRecords: z.array(Bytes).max(128).optional()
})
export type AwardPayload = z.infer<typeof AwardPayload>

export const GossipAward = z.object({
  v: z.literal(1),
  t: z.literal('award'),
  task: TaskIdSchema,
  /**
   * A signed `award` record: the one stored in the DHT, less the signed bids it carries
   * (`bidRecords`), signed again without them; `bids` still lists each bid's hash.
   */
  record: Bytes
})

export const TASK_OUTCOMES = ['done', 'failed', 'cancelled'] as const

export const GossipClosed = z.object({
  v: z.literal(1),
  t: z.literal('closed'),
  task: TaskIdSchema,
  status: z.enum(TASK_OUTCOMES),
  executor: PeerIdText.optional(),
  round: z.number().int().min(0).max(1000)
})

export const PlacementGossip = z.discriminatedUnion('t', [Announce, GossipAward, GossipClosed])
export type PlacementGossip = z.infer<typeof PlacementGossip>

// ---- a submission ----

/**
 * What a task is submitted with, the same whether it comes from the API or from code calling
 * `submit()`. Size bounds that are a node's setting (agent and input bytes) are checked by
 * `submit()` against its init; every other bound is here.
 */
export const SubmitFields = z.object({
  input: z.string(),
  requirements: Requirements.optional(),
  permissions: Permissions.optional(),
  contextId: ContextIdSchema.optional(),
  bidWindowMs: BidWindowMs.optional(),
  /** The winner's lease for this task (default from init). */
  leaseMs: LeaseMs.optional()
})

export const SubmitTask = SubmitFields.extend({
  agent: Bytes.refine(b => b.byteLength > 0, 'the bytes of a WebAssembly component')
}).strict()
export type SubmitTask = z.infer<typeof SubmitTask>
export type SubmitInput = z.input<typeof SubmitTask>

// ---- /hive/placement/1.0.0 ----

export const BidRequest = z.object({ t: z.literal('bid'), task: TaskIdSchema, bidder: PeerIdText, record: Bytes })
export const ClaimRequest = z.object({ t: z.literal('claim'), task: TaskIdSchema, round: z.number().int().min(1) })
export const RenewRequest = z.object({ t: z.literal('renew'), task: TaskIdSchema, round: z.number().int().min(1) })
export const ResultRequest = z.object({
  t: z.literal('result'),
  task: TaskIdSchema,
  round: z.number().int().min(1),
  ok: z.boolean(),
  output: z.string().optional(),
  error: z.string().max(4096).optional(),
  logs: z.array(z.object({ level: z.string().max(16), message: z.string().max(4096) })).max(200).optional(),
  durationMs: z.number().min(0)
})
export const AbandonRequest = z.object({ t: z.literal('abandon'), task: TaskIdSchema, round: z.number().int().min(1), reason: z.string().max(1024) })

/**
 * The bounds of the log lines a winner streams to the submitter while it runs (PROTOCOL.md ›
 * Live log lines): lines and bytes per task, lines per message. Past either per-task bound the
 * rest travel only with the result; a message over them is refused.
 */
export const LIVE_LOG_LIMITS = {
  linesPerTask: 1000,
  bytesPerTask: 256 * 1024,
  linesPerMessage: 100
} as const

const LiveLogLine = z.object({ level: z.string().max(16), message: z.string().max(4096) })

/** Log lines of a running task, numbered from `from` (the task's first line is 1). */
export const LogsRequest = z.object({
  t: z.literal('logs'),
  task: TaskIdSchema,
  round: z.number().int().min(1),
  from: z.number().int().min(1).max(LIVE_LOG_LIMITS.linesPerTask),
  lines: z.array(LiveLogLine).min(1).max(LIVE_LOG_LIMITS.linesPerMessage)
})
export type LogsRequest = z.infer<typeof LogsRequest>

/**
 * Bidder → submitter: this device will not bid on the task, and why (a rule of the hive's
 * policy: which one, why now, what to change). The submitter stops waiting for its bid and
 * `explain` shows the reason.
 */
export const MAX_DECLINE_REASON_CHARS = 500
export const DeclineRequest = z.object({ t: z.literal('decline'), task: TaskIdSchema, reason: z.string().min(1).max(MAX_DECLINE_REASON_CHARS) })

/** Submitter → winner: stop the run of this task (its submitter cancelled it, or the hive halted). */
export const CancelRequest = z.object({ t: z.literal('cancel'), task: TaskIdSchema, round: z.number().int().min(1), reason: z.string().max(1024) })

export const PlacementRequest = z.discriminatedUnion('t', [BidRequest, ClaimRequest, RenewRequest, ResultRequest, AbandonRequest, LogsRequest, CancelRequest, DeclineRequest])
export type PlacementRequest = z.infer<typeof PlacementRequest>

export const Refusal = z.object({ ok: z.literal(false), reason: z.string().max(64), message: z.string().max(1024) })
export type Refusal = z.infer<typeof Refusal>

export function refusal (reason: string, message: string): Refusal {
  return { ok: false, reason, message: message.slice(0, 1024) }
}

export const Ack = z.union([z.object({ ok: z.literal(true) }), Refusal])
export const ClaimResponse = z.union([z.object({ ok: z.literal(true), input: z.string(), leaseMs: z.number().int().min(1) }), Refusal])
export const RenewResponse = z.union([z.object({ ok: z.literal(true), leaseMs: z.number().int().min(1) }), Refusal])
export const ResultResponse = z.union([z.object({ ok: z.literal(true), accepted: z.boolean(), reason: z.string().max(1024).optional() }), Refusal])

/** After an accepted (or discarded) result, the executor says where its ledger record is. */
export const RecordedMessage = z.object({
  t: z.literal('recorded'),
  seq: z.number().int().min(0).optional(),
  hash: z.string().max(128).optional(),
  error: z.string().max(1024).optional()
})
export type RecordedMessage = z.infer<typeof RecordedMessage>

/**
 * The same confirmation as a request of its own, on a session (session.ts): it names the task
 * and round of the result it confirms, which a stream of its own says by being that result's.
 */
export const RecordedRequest = RecordedMessage.extend({ task: TaskIdSchema, round: z.number().int().min(1) })
export type RecordedRequest = z.infer<typeof RecordedRequest>
