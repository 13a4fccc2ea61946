// What placement shows of a task: its view (status, rounds, history, result), the explanation
// of its election, and a member's recomputation of it. Plain data, safe to copy and store.

import type { AgentLogLine } from './components.ts'
import type { Ranked } from './election.ts'
import type { Digest, TaskId } from './ids.ts'
import type { Announce, BidPayload, Reason, Requirements } from './messages.ts'

export type TaskStatus = 'bidding' | 'awarded' | 'running' | 'done' | 'failed' | 'cancelled'

/** A task in one of these states is over: nothing more happens to it. */
export function isEnded (status: TaskStatus): boolean {
  return status === 'done' || status === 'failed' || status === 'cancelled'
}
export type TaskRole = 'submitter' | 'observer'

export type HistoryType =
  | 'submitted' | 'bid' | 'bid-declined' | 'bid-refused' | 'late-bid' | 'deadline-extended' | 'auction-closed' | 'awarded' | 'claimed' | 'lease-lapsed'
  | 'winner-lost' | 'abandoned' | 'result-accepted' | 'late-result' | 'recorded' | 'failed' | 'cancelled'

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

/** How a node learnt a bid: its own, sent to it directly, or found in the DHT. */
export type BidSource = 'local' | 'stream' | 'dht'

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
  via: BidSource
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

/** The fields of a view that come from the task's announcement. */
export function announceFields (a: Announce): Pick<TaskView, 'agent' | 'input' | 'inputSize' | 'requirements' | 'permissions' | 'contextId'> {
  return {
    agent: a.agent,
    input: a.input,
    inputSize: a.inputSize,
    requirements: a.requirements,
    permissions: a.permissions,
    ...(a.context != null ? { contextId: a.context } : {})
  }
}

/** One ranked bid as `explain` shows it. */
export function explainedBid (r: Ranked, payload: Pick<BidPayload, 'reasons' | 'holdsAgent'>, via: BidSource, name: string | undefined): ExplainedBid {
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
