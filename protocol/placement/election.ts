// The election: a pure function of the task id and the set of valid bids, so every member that
// holds the same bids computes the same winner.

import { createHash } from 'node:crypto'

export const ELECTION_RULE = 'lowest cost wins; a tie goes to the lowest SHA-256(task id, 0x00, bidder PeerId)'

export interface Candidate {
  bidder: string
  cost: number
}

export interface Ranked extends Candidate {
  rank: number
  tieBreak: string
  excluded: boolean
}

export interface ElectionResult {
  winner: string
  cost: number
  /** Every candidate in election order, excluded ones marked (and ranked after the rest). */
  ranking: Ranked[]
  rule: string
}

/** The tie-breaker of one bidder for one task: unpredictable before the task id exists. */
export function tieBreak (taskId: string, bidder: string): string {
  return createHash('sha256').update(taskId).update(Uint8Array.of(0)).update(bidder).digest('hex')
}

/**
 * Every candidate in election order: not excluded before excluded, then by cost, then by
 * tie-breaker. Duplicate bidders keep their first bid only; callers pass verified bids.
 */
export function rank (taskId: string, candidates: Iterable<Candidate>, excluded: Iterable<string> = []): Ranked[] {
  const out = new Set(excluded)
  const seen = new Set<string>()
  const ranked: Array<Omit<Ranked, 'rank'>> = []
  for (const c of candidates) {
    if (seen.has(c.bidder) || !Number.isFinite(c.cost) || c.cost < 0) continue
    seen.add(c.bidder)
    ranked.push({ bidder: c.bidder, cost: c.cost, tieBreak: tieBreak(taskId, c.bidder), excluded: out.has(c.bidder) })
  }
  ranked.sort((a, b) => Number(a.excluded) - Number(b.excluded) || a.cost - b.cost || (a.tieBreak < b.tieBreak ? -1 : a.tieBreak > b.tieBreak ? 1 : 0))
  return ranked.map((r, i) => ({ ...r, rank: i + 1 }))
}

/** The first candidate of `rank` that is not excluded, if any. */
export function elect (taskId: string, candidates: Iterable<Candidate>, excluded: Iterable<string> = []): ElectionResult | undefined {
  const ranking = rank(taskId, candidates, excluded)
  const first = ranking[0]
  if (first == null || first.excluded) return undefined
  return { winner: first.bidder, cost: first.cost, ranking, rule: ELECTION_RULE }
}
