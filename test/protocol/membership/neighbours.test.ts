// The neighbour rule on its own: symmetric, bounded, connected with a small diameter, and
// all-to-all in a small hive, for any member list.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ALL_TO_ALL_MAX, MAX_NEIGHBOURS, isAllToAll, isTransientLink, neighbourOffsets, neighboursOf } from '../../../protocol/membership/neighbours.ts'

/** Seeded PeerId-like strings: what matters to the rule is their order, so any strings do. */
function members (count: number, seed: number): string[] {
  let x = seed >>> 0 || 1
  const next = (): number => { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; return x }
  const out = new Set<string>()
  while (out.size < count) out.add(`12D3KooW${next().toString(36)}${next().toString(36)}`)
  return [...out]
}

function graph (ids: string[]): Map<string, Set<string>> {
  return new Map(ids.map(p => [p, neighboursOf(p, ids)]))
}

/** Longest shortest path, or Infinity when some member cannot reach another. */
function diameter (adj: Map<string, Set<string>>): number {
  let worst = 0
  for (const start of adj.keys()) {
    const dist = new Map([[start, 0]])
    const queue = [start]
    for (let i = 0; i < queue.length; i++) {
      const at = queue[i]!
      for (const next of adj.get(at) ?? []) {
        if (!dist.has(next)) { dist.set(next, dist.get(at)! + 1); queue.push(next) }
      }
    }
    if (dist.size < adj.size) return Infinity
    worst = Math.max(worst, ...dist.values())
  }
  return worst
}

describe('neighbours', () => {
  it('in a hive of at most nine, every member is every other member\'s neighbour', () => {
    for (let n = 1; n <= ALL_TO_ALL_MAX; n++) {
      const ids = members(n, n)
      assert.equal(isAllToAll(n), true)
      for (const p of ids) assert.deepEqual([...neighboursOf(p, ids)].sort(), ids.filter(q => q !== p).sort(), `hive of ${n}`)
    }
    assert.equal(isAllToAll(ALL_TO_ALL_MAX + 1), false)
  })

  it('is symmetric, bounded at eight and never includes the member itself, for 2 to 200 members', () => {
    for (let n = 2; n <= 200; n++) {
      const adj = graph(members(n, 1000 + n))
      for (const [p, set] of adj) {
        assert.ok(set.size <= MAX_NEIGHBOURS, `hive of ${n}: ${set.size} neighbours`)
        assert.ok(set.size >= Math.min(n - 1, 2), `hive of ${n}: only ${set.size} neighbours`)
        assert.equal(set.has(p), false)
        for (const q of set) assert.ok(adj.get(q)?.has(p), `hive of ${n}: ${q} does not count ${p} back`)
      }
    }
  })

  it('is connected with a small diameter, whatever the PeerIds', () => {
    for (let n = 2; n <= 200; n++) {
      const d = diameter(graph(members(n, 7 * n)))
      const bound = n <= ALL_TO_ALL_MAX ? 1 : Math.ceil(2 * Math.pow(n, 1 / 4))
      assert.ok(d <= bound, `hive of ${n}: diameter ${d} over ${bound}`)
    }
    assert.ok(diameter(graph(members(50, 3))) <= 3)
    assert.ok(diameter(graph(members(200, 3))) <= 5)
  })

  it('every member computes the same graph from the list in any order, with or without itself', () => {
    const ids = members(30, 99)
    const reversed = [...ids].reverse()
    for (const p of ids) {
      assert.deepEqual([...neighboursOf(p, ids)].sort(), [...neighboursOf(p, reversed)].sort())
      assert.deepEqual([...neighboursOf(p, [...ids, p, ids[0]!])].sort(), [...neighboursOf(p, ids)].sort())
    }
    assert.equal(neighboursOf('not-a-member', ids).size, 0)
  })

  it('takes offsets 1, then round(n^(k/4)), folded to the near side of the ring', () => {
    assert.deepEqual(neighbourOffsets(50), [1, 3, 7, 19])
    assert.deepEqual(neighbourOffsets(200), [1, 4, 14, 53])
    for (let n = 10; n <= 500; n++) for (const o of neighbourOffsets(n)) assert.ok(o >= 1 && o <= n / 2)
  })

  it('a link is transient only beyond all-to-all, to a member that is not a neighbour', () => {
    const small = members(ALL_TO_ALL_MAX, 7)
    for (const a of small) for (const b of small) assert.equal(isTransientLink(a, small, b), false, 'an all-to-all hive keeps every link')
    const ids = members(50, 11)
    const self = ids[0]!
    const near = neighboursOf(self, ids)
    let transient = 0
    for (const peer of ids) {
      const expected = peer !== self && !near.has(peer)
      assert.equal(isTransientLink(self, ids, peer), expected, peer)
      // symmetric, as the neighbour rule is: both ends agree on which links run no exchange
      assert.equal(isTransientLink(peer, ids, self), expected)
      if (expected) transient++
    }
    assert.equal(transient, 50 - 1 - near.size)
    assert.equal(isTransientLink(self, ids, '12D3KooWnotamember'), false, 'a non-member is not a member link at all')
    assert.equal(isTransientLink(self, ids, self), false)
  })

  it('works on real PeerIds', async () => {
    const ids = await Promise.all(Array.from({ length: 14 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
    const adj = graph(ids)
    assert.ok(diameter(adj) <= 2)
    for (const set of adj.values()) assert.ok(set.size <= MAX_NEIGHBOURS)
  })
})
