// Neighbours: which members a device keeps a connection to. Every member computes the same
// graph from the same member list, with nothing exchanged.
//
// Rule. Sort the n members' PeerIds (as strings) on a ring. In a hive of at most
// ALL_TO_ALL_MAX members every member is every other's neighbour (all-to-all, as a home hive
// always was). In a larger hive, the members at ring offsets ±o for each o in
// `neighbourOffsets(n)` are a member's neighbours: o₀ = 1 and oₖ = round(n^(k/4)) for k = 1..3,
// duplicates dropped, so at most MAX_NEIGHBOURS of them.
//
// Consequences.
// - Symmetric: j = i + o (mod n) exactly when i = j − o, so if A counts B as a neighbour, B
//   counts A; both ends dial the same link, and neither closes it as idle.
// - Connected: offset 1 alone is a ring through every member.
// - Small diameter: any ring distance d < n/2 is a sum of at most about b/2 steps of each offset
//   (b = n^(1/4)), so a message crosses the hive in at most about 2·n^(1/4) hops whatever the
//   PeerIds are: 2 at 14 members, 3 at 50, 5 at 200 (test/protocol/membership/neighbours.test.ts).
// - Stable under growth only locally: a member joining shifts the ring positions after it, so
//   some links move; the ones kept are found again at once and the rest close when idle.

/** A hive of at most this many members is all-to-all: every member a neighbour of every other. */
export const ALL_TO_ALL_MAX = 9

/** Neighbours a member has at most in a larger hive (two per offset, four offsets). */
export const MAX_NEIGHBOURS = 8

/** Whether a hive of `count` members connects every member to every other. */
export function isAllToAll (count: number): boolean {
  return count <= ALL_TO_ALL_MAX
}

/** The ring offsets (each taken both ways) of a hive of `count` members beyond all-to-all. */
export function neighbourOffsets (count: number): number[] {
  const out = new Set<number>()
  const base = Math.pow(count, 1 / 4)
  for (let k = 0; k < 4; k++) {
    const o = Math.max(1, Math.round(Math.pow(base, k)))
    // an offset past half the ring is the same link as its complement the other way
    const folded = Math.min(o % count, count - (o % count))
    if (folded > 0) out.add(folded)
  }
  return [...out].sort((a, b) => a - b)
}

/**
 * The neighbours of `self` among `members` (PeerId strings; `self` may or may not be listed,
 * duplicates are ignored). A device that is not a member has none.
 */
export function neighboursOf (self: string, members: Iterable<string>): Set<string> {
  const ring = [...new Set([...members])].sort()
  const at = ring.indexOf(self)
  if (at < 0) return new Set()
  if (isAllToAll(ring.length)) return new Set(ring.filter(p => p !== self))
  const n = ring.length
  const out = new Set<string>()
  for (const o of neighbourOffsets(n)) {
    out.add(ring[(at + o) % n]!)
    out.add(ring[(at - o + n) % n]!)
  }
  out.delete(self)
  return out
}

/**
 * Whether `self`'s connection to `peer` is transient: beyond an all-to-all hive, one to a member
 * that is not a neighbour, opened for a request of its own (a bid, a claim, a DHT put, a fetch)
 * and closed once idle. Such a connection runs none of the exchanges a connection runs when it
 * opens (member list, control entries, ledger heads, context links): what they would bring
 * reaches this device through its neighbours. False for a non-member and for `self`.
 */
export function isTransientLink (self: string, members: readonly string[], peer: string): boolean {
  if (peer === self || isAllToAll(new Set(members).size) || !members.includes(peer)) return false
  return !neighboursOf(self, members).has(peer)
}
