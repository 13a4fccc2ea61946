// Who is asked to bid. In a hive of at most `maxBidders` live capable members every one of them
// is (the announcement names nobody, and all bid, as they always have). In a larger one the
// submitter names `maxBidders` candidates in the announcement and only those bid, so a burst of
// T tasks costs T × maxBidders bids rather than T × N.
//
// The choice is a pure function of what the submitter holds when it announces:
//   - half (rounded up) are the cheapest by the cost each device's gossiped report gives
//     (computeCost, as its bid would, but without the agent held or the relay known), plus the
//     tasks this submitter has awarded it that are still under way, which the report does not
//     show yet: the best devices are always asked;
//   - the rest are the lowest SHA-256(task id, 0x00, PeerId) among the others (the election's
//     tie-breaker): a draw no device can steer, which spreads a burst over the whole hive even
//     when every report is a few seconds old. The draw is among the members the submitter is
//     connected to first (`linked`), and among the rest only when those are too few: beyond an
//     all-to-all hive a member that is not a neighbour has to dial the submitter to bid, and a
//     burst asking members at random would open a connection for most bids (at 50 devices, more
//     of them than the event loops could finish: dials then failed in their handshakes). The
//     submitters are spread over the hive, and so are their neighbours.
// The bids of the candidates then decide, by the election's rule, on their fresh state.

import { computeCost, LOAD_POINTS_PER_CORE } from './cost.ts'
import { tieBreak } from './election.ts'
import type { CapabilityReport } from '../capabilities/index.ts'
import type { Requirements } from './messages.ts'

/** Bidders a submitter asks by default. */
export const DEFAULT_MAX_BIDDERS = 8

export interface CandidateChoice {
  /** Undefined when every capable member is asked (the announcement names nobody). */
  named?: string[]
  /** How many cheapest-by-report and drawn. */
  cheapest: number
  drawn: number
}

export function chooseCandidates (
  task: string,
  requirements: Requirements,
  agentSize: number,
  capable: ReadonlyArray<{ peerId: string, caps: CapabilityReport }>,
  maxBidders: number,
  awardedHere: (peer: string) => number,
  linked: (peer: string) => boolean = () => true
): CandidateChoice {
  if (capable.length <= maxBidders) return { cheapest: 0, drawn: 0 }
  const estimated = capable.map(({ peerId, caps }) => ({
    peerId,
    cost: computeCost(requirements, caps, { holdsAgent: false, agentSize }).cost + LOAD_POINTS_PER_CORE * awardedHere(peerId) / caps.cores,
    draw: tieBreak(task, peerId)
  }))
  const byDraw = (a: { draw: string }, b: { draw: string }): number => a.draw < b.draw ? -1 : a.draw > b.draw ? 1 : 0
  const cheapestCount = Math.ceil(maxBidders / 2)
  const cheapest = [...estimated].sort((a, b) => a.cost - b.cost || byDraw(a, b)).slice(0, cheapestCount)
  const taken = new Set(cheapest.map(c => c.peerId))
  const rest = estimated.filter(e => !taken.has(e.peerId))
  const near = rest.filter(e => linked(e.peerId)).sort(byDraw)
  const far = rest.filter(e => !linked(e.peerId)).sort(byDraw)
  const drawn = [...near, ...far].slice(0, maxBidders - cheapest.length)
  return { named: [...cheapest, ...drawn].map(c => c.peerId), cheapest: cheapest.length, drawn: drawn.length }
}
