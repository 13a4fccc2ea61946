// Explaining an election and recomputing it: read-only over what this node holds of a task (the
// auction it ran, or what it observed) and what the DHT holds. A member recomputes from the
// submitter's published award, which carries the signed bids: it checks every bid's signature
// and that the bytes are the ones the award lists, then runs the same election.

import { ELECTION_RULE, elect, rank } from './election.ts'
import { errorText } from './components.ts'
import { bidsOfAward } from './records.ts'
import { explainedBid } from './views.ts'
import type { Auction } from './auction.ts'
import type { Observed } from './bidder.ts'
import type { PlacementRecords } from './components.ts'
import type { TaskId } from './ids.ts'
import type { Announce, AwardPayload } from './messages.ts'
import type { HeldBid } from './records.ts'
import type { Explanation, Recomputation, TaskView } from './views.ts'
import type { ProtocolLog } from '../wire/serve.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface ExplanationSources {
  records: PlacementRecords
  lookupBid: (task: TaskId, bidder: string, options: AbortOptions) => Promise<Omit<HeldBid, 'via'> | undefined>
  lookupAward: (task: TaskId, submitter: string, options: AbortOptions) => Promise<{ award: AwardPayload } | undefined>
  /** Members to ask for their bids when no award names the bidders. */
  members: () => string[]
  names: () => Map<string, string>
  log: ProtocolLog
  /** Stops lookups when placement stops. */
  signal: AbortSignal
  dhtLookupMs: number
}

/** Time limit of one DHT lookup when a member recomputes an election. */
const RECOMPUTE_LOOKUP_MS = 15_000

/** Why a round was re-elected, from what the history says happened to the round before it. */
export function reelectionWhy (auction: Pick<Auction, 'history'>, previous: AwardPayload): string {
  const lost = auction.history.find(h => h.round === previous.round && h.peer === previous.winner &&
    (h.type === 'lease-lapsed' || h.type === 'winner-lost' || h.type === 'abandoned'))
  const what = lost?.type === 'winner-lost'
    ? 'disconnected and did not come back'
    : lost?.type === 'lease-lapsed' ? 'let its lease lapse' : lost?.type === 'abandoned' ? 'gave the task up' : 'lost the task'
  return `re-election: ${previous.winner} ${what}`
}

/** The explanation of a task this node submitted: everything is in memory. */
export function explainAuction (auction: Auction, self: string, names: Map<string, string>): Explanation {
  const last = auction.awards.at(-1)
  const ranking = rank(auction.id, [...auction.bids.values()].map(b => ({ bidder: b.bidder, cost: b.payload.cost })), auction.excluded)
  return {
    task: auction.id,
    submitter: self,
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
      why: (i === 0 ? firstRoundWhy(ranking, award) : reelectionWhy(auction, auction.awards[i - 1]!)) + candidatesWhy(auction.announce)
    })),
    ...(last != null ? { winner: auction.result?.executor ?? last.winner } : {}),
    ...(auction.result != null ? { result: structuredClone(auction.result) } : {}),
    history: auction.history.map(h => ({ ...h }))
  }
}

/** In a hive larger than the submitter's bound on bidders, only the members it named bid (candidates.ts). */
export function candidatesWhy (announce: Pick<Announce, 'candidates'>): string {
  const n = announce.candidates?.length
  return n == null ? '' : `; only the ${n} members the submitter named as candidates were asked to bid, the others were not candidates`
}

/**
 * Why the first round's winner won: the lowest cost, or, when other bids cost the same, the
 * tie-break of the election rule (which is what decided then).
 */
export function firstRoundWhy (ranking: ReadonlyArray<{ bidder: string, cost: number }>, award: { winner: string, cost: number, excluded: readonly string[] }): string {
  const tied = ranking.filter(r => r.bidder !== award.winner && r.cost === award.cost && !award.excluded.includes(r.bidder)).length
  if (tied === 0) return 'lowest cost among the bids'
  return `a tie at cost ${award.cost} with ${tied} other bid${tied === 1 ? '' : 's'}, broken by the lowest SHA-256(task id, 0x00, bidder PeerId)`
}

/** The explanation of a task another node submitted, from its award and bids. */
export async function explainObserved (id: TaskId, seen: Observed, view: TaskView, sources: ExplanationSources, options: AbortOptions): Promise<Explanation> {
  const re = await recomputeElection(id, { submitter: seen.announce.submitter, award: seen.awards.at(-1)?.award }, sources, options)
  const last = seen.awards.at(-1)?.award
  const names = sources.names()
  const ranking = rank(id, re.found.map(b => ({ bidder: b.bidder, cost: b.payload.cost })), last?.excluded ?? [])
  return {
    task: id,
    submitter: seen.announce.submitter,
    status: view.status,
    rule: ELECTION_RULE,
    requirements: seen.announce.requirements,
    expected: [],
    missing: re.recomputation.mismatched,
    bids: ranking.map(r => explainedBid(r, re.found.find(b => b.bidder === r.bidder)!.payload, 'dht', names.get(r.bidder))),
    rounds: seen.awards.map(({ award }, i) => ({
      round: award.round,
      winner: award.winner,
      cost: award.cost,
      excluded: award.excluded,
      why: (i === 0 ? firstRoundWhy(ranking, award) : `re-election: ${seen.awards[i - 1]!.award.winner} lost the task (its lease lapsed, it disconnected or gave the task up)`) + candidatesWhy(seen.announce)
    })),
    ...(last != null ? { winner: seen.closed?.executor ?? last.winner } : {}),
    history: view.history
  }
}

/**
 * Runs the election here: over the bids the submitter's published award carries (its signed
 * record in the DHT, else the copy this node holds), each checked; bids it lists but does not
 * carry are looked up under their bidders' keys.
 */
export async function recomputeElection (
  id: TaskId,
  held: { submitter: string, award: AwardPayload | undefined },
  sources: ExplanationSources,
  options: AbortOptions
): Promise<{ recomputation: Recomputation, found: Array<Omit<HeldBid, 'via'>> }> {
  const signals = [...(options.signal != null ? [options.signal] : []), sources.signal]
  const published = await sources.lookupAward(id, held.submitter, { signal: AbortSignal.any([...signals, AbortSignal.timeout(sources.dhtLookupMs * 2)]) })
    .catch((err: Error) => { sources.log.debug(`award of ${id} not found in the DHT: ${errorText(err)}`) })
  const award = published != null && (held.award == null || published.award.round >= held.award.round) ? published.award : held.award
  const found = await bidsOf(id, award, sources, signals)
  const listed = award?.bids ?? []
  const mismatched = listed.filter(l => !found.some(b => b.bidder === l.bidder && b.hash === l.hash)).map(l => l.bidder)
  // the election is over the bids the award lists, as found with the same bytes
  const considered = award != null ? found.filter(b => listed.some(l => l.bidder === b.bidder && l.hash === b.hash)) : found
  const result = elect(id, considered.map(b => ({ bidder: b.bidder, cost: b.payload.cost })), award?.excluded ?? [])
  return {
    found,
    recomputation: {
      task: id,
      ...(result != null ? { winner: result.winner } : {}),
      ...(award != null ? { awarded: award.winner } : {}),
      round: award?.round ?? 0,
      bids: considered.map(b => ({ bidder: b.bidder, cost: b.payload.cost, hash: b.hash })),
      mismatched,
      agrees: award != null && result?.winner === award.winner && mismatched.length === 0
    }
  }
}

async function bidsOf (id: TaskId, award: AwardPayload | undefined, sources: ExplanationSources, signals: AbortSignal[]): Promise<Array<Omit<HeldBid, 'via'>>> {
  const found: Array<Omit<HeldBid, 'via'>> = []
  if (award != null) {
    try {
      found.push(...await bidsOfAward(award, async (key, value) => sources.records.open(key, value)))
    } catch (err) {
      sources.log.debug(`the award of ${id} carries a bid that does not check: ${errorText(err)}`)
    }
  }
  // with an award, the bids it lists are the ones that decide; without one, ask every member
  const bidders = (award?.bids.map(b => b.bidder) ?? sources.members()).filter(b => !found.some(f => f.bidder === b))
  // each lookup is a whole Kademlia query: a few at a time, each with its own time limit
  const queue = [...new Set(bidders)]
  await Promise.all(Array.from({ length: Math.min(3, queue.length) }, async () => {
    for (let bidder = queue.shift(); bidder != null; bidder = queue.shift()) {
      const signal = AbortSignal.any([...signals, AbortSignal.timeout(RECOMPUTE_LOOKUP_MS)])
      const bid = await sources.lookupBid(id, bidder, { signal }).catch((err: Error) => { sources.log.debug(`bid of ${bidder} for ${id} not found: ${errorText(err)}`) })
      if (bid != null) found.push(bid)
    }
  }))
  return found
}
