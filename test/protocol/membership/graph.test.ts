// The member-list rule on its own: signatures, the chain of adds back to the founder, removal,
// re-adding, concurrent edits, and convergence whatever order entries arrive in.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MemberGraph, createEntry, hiveIdOf, openEntry, toWire } from '../../../protocol/membership/index.ts'
import type { Entry, EntryBody, EntryId, MembershipSigner } from '../../../protocol/membership/index.ts'

interface Device extends MembershipSigner { label: string }

async function device (label: string): Promise<Device> {
  const key = await generateKeyPair('Ed25519')
  return { label, peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
}

let clock = 1_700_000_000_000
const tick = (): number => ++clock

async function found (founder: Device): Promise<MemberGraph> {
  const genesis = await createEntry({ type: 'found', peer: founder.peerId, at: tick(), deps: [], name: founder.label, nonce: new Uint8Array(16).fill(7) }, founder)
  return new MemberGraph(genesis)
}

async function add (graph: MemberGraph, by: Device, who: Device, deps = graph.heads()): Promise<Entry> {
  return createEntry({ type: 'add', hive: graph.hiveId, peer: who.peerId, at: tick(), deps, name: who.label }, by)
}

async function remove (graph: MemberGraph, by: Device, who: Device, deps = graph.heads()): Promise<Entry> {
  return createEntry({ type: 'remove', hive: graph.hiveId, peer: who.peerId, at: tick(), deps }, by)
}

function copy (graph: MemberGraph): MemberGraph {
  const [genesis, ...rest] = graph.all()
  const out = new MemberGraph(genesis as Entry)
  out.merge(rest)
  return out
}

function memberNames (graph: MemberGraph, devices: Device[]): string[] {
  return devices.filter(d => graph.isMember(d.peerId)).map(d => d.label).sort()
}

describe('membership graph', () => {
  it('a new hive has its founder as the only member, and a hive id derived from the genesis', async () => {
    const a = await device('a')
    const graph = await found(a)
    assert.match(graph.hiveId, /^[a-z2-7]{26}$/)
    assert.equal(graph.hiveId, hiveIdOf(graph.genesis))
    assert.deepEqual([...graph.view().members.keys()], [a.peerId])
    assert.equal(graph.view().members.get(a.peerId)?.founder, true)
  })

  it('records who added whom, and each member can walk the chain back to the founder', async () => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    const graph = await found(a)
    graph.merge([await add(graph, a, b)])
    graph.merge([await add(graph, b, c)])
    assert.deepEqual(memberNames(graph, [a, b, c]), ['a', 'b', 'c'])
    assert.equal(graph.view().members.get(c.peerId)?.addedBy, b.peerId)
    assert.deepEqual(graph.chain(c.peerId).map(l => [l.peerId, l.addedBy]), [[a.peerId, a.peerId], [b.peerId, a.peerId], [c.peerId, b.peerId]])
  })

  it('refuses a bad signature, another hive, a missing dependency and a signer who is not a member, leaving the list unchanged', async () => {
    const [a, b, stranger] = await Promise.all([device('a'), device('b'), device('stranger')])
    const graph = await found(a)
    const good = await add(graph, a, b)

    const forged = toWire(good)
    const sig = new Uint8Array(forged.s)
    sig[0] = (sig[0] ?? 0) ^ 1
    await assert.rejects(openEntry({ b: forged.b, s: sig }), { name: 'InvalidEntry' })

    const other = await found(stranger)
    await assert.rejects(async () => graph.merge([await add(other, stranger, b)]), { name: 'HiveMismatch' })
    await assert.rejects(async () => graph.merge([other.genesis]), { name: 'HiveMismatch' })

    const dangling = await add(graph, a, b, ['0'.repeat(64) as EntryId])
    assert.throws(() => graph.merge([dangling]), { name: 'InvalidEntry' })

    const byStranger = await add(graph, stranger, b)
    assert.throws(() => graph.merge([byStranger]), { name: 'UnauthorizedEntry' })

    // all or nothing: a good entry in a batch with a bad one is not kept
    assert.throws(() => graph.merge([good, byStranger]), { name: 'UnauthorizedEntry' })
    assert.equal(graph.size, 1)
    assert.deepEqual(memberNames(graph, [a, b, stranger]), ['a'])
  })

  it('a removed member stays out: its old entry does not bring it back, and what it signs afterwards is refused or void', async () => {
    const [a, b, c, d] = await Promise.all([device('a'), device('b'), device('c'), device('d')])
    const graph = await found(a)
    const addB = await add(graph, a, b)
    graph.merge([addB])
    const addC = await add(graph, a, c)
    graph.merge([addC])
    const headsBeforeRemoval = graph.heads()
    graph.merge([await remove(graph, a, c)])
    assert.deepEqual(memberNames(graph, [a, b, c]), ['a', 'b'])
    assert.equal(graph.view().removed.get(c.peerId)?.removedBy, a.peerId)

    // replaying its old add changes nothing
    assert.deepEqual(graph.merge([addC]), [])
    assert.equal(graph.isMember(c.peerId), false)

    // signing on top of its own removal: refused outright
    await assert.rejects(async () => graph.merge([await add(graph, c, d)]), { name: 'UnauthorizedEntry' })

    // backdating (building only on what it held before the removal): stored, but void
    const backdated = await add(graph, c, d, headsBeforeRemoval)
    graph.merge([backdated])
    assert.equal(graph.isMember(d.peerId), false)
    assert.deepEqual(memberNames(graph, [a, b, c, d]), ['a', 'b'])
  })

  it('re-adding works only through a new add made after the removal; a re-add concurrent with a removal loses', async () => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    const graph = await found(a)
    graph.merge([await add(graph, a, b)])
    graph.merge([await add(graph, a, c)])
    graph.merge([await remove(graph, a, c)])
    graph.merge([await add(graph, b, c)])
    assert.equal(graph.isMember(c.peerId), true, 'a fresh add that knows the removal brings the device back')

    // now a removes c again while b, not having seen it, adds c once more
    const atB = copy(graph)
    const removal = await remove(graph, a, c)
    const concurrentAdd = await add(atB, b, c)
    graph.merge([removal, concurrentAdd])
    atB.merge([concurrentAdd, removal])
    assert.equal(graph.isMember(c.peerId), false)
    assert.equal(atB.isMember(c.peerId), false)
  })

  it('adds signed by a member concurrently with its removal are void, with everything built on them', async () => {
    const [a, b, c, d] = await Promise.all([device('a'), device('b'), device('c'), device('d')])
    const atA = await found(a)
    atA.merge([await add(atA, a, b)])
    const atB = copy(atA)
    atA.merge([await remove(atA, a, b)])
    const addC = await add(atB, b, c)
    atB.merge([addC])
    const addD = await add(atB, c, d)
    atB.merge([addD])
    assert.deepEqual(memberNames(atB, [a, b, c, d]), ['a', 'b', 'c', 'd'], 'before hearing of the removal b sees its additions')
    atA.merge(atB.all())
    atB.merge(atA.all())
    assert.deepEqual(memberNames(atA, [a, b, c, d]), ['a'])
    assert.deepEqual(memberNames(atB, [a, b, c, d]), ['a'])
  })

  it('two members removing each other at once are both out (remove wins)', async () => {
    const [a, b, c] = await Promise.all([device('a'), device('b'), device('c')])
    const atA = await found(a)
    atA.merge([await add(atA, a, b)])
    atA.merge([await add(atA, a, c)])
    const atB = copy(atA)
    atA.merge([await remove(atA, a, b)])
    atB.merge([await remove(atB, b, a)])
    atA.merge(atB.all())
    atB.merge(atA.all())
    assert.deepEqual(memberNames(atA, [a, b, c]), ['c'])
    assert.deepEqual(memberNames(atB, [a, b, c]), ['c'])
  })

  it('replicas converge whatever the order of edits and deliveries (seeded)', async () => {
    const pool = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map(device))
    for (let seed = 1; seed <= 8; seed++) {
      const random = mulberry32(seed)
      const pick = <T>(list: T[]): T => list[Math.floor(random() * list.length)] as T
      const founder = pool[0] as Device
      const origin = await found(founder)
      const replicas = new Map<Device, MemberGraph>([[founder, origin]])
      try {
        for (let step = 0; step < 30; step++) {
          const [actor, graph] = pick([...replicas.entries()])
          if (!graph.isMember(actor.peerId)) continue
          const roll = random()
          if (roll < 0.45) {
            const who = pick(pool)
            const entry = await add(graph, actor, who)
            graph.merge([entry])
            if (!replicas.has(who)) replicas.set(who, copy(graph))
          } else if (roll < 0.65) {
            const others = [...graph.view().members.keys()].filter(p => p !== actor.peerId)
            if (others.length === 0) continue
            const target = pick(others)
            const who = pool.find(d => d.peerId === target) as Device
            graph.merge([await remove(graph, actor, who)])
          } else {
            const [, other] = pick([...replicas.entries()])
            other.merge(graph.all())
          }
        }
        // heal: everyone receives everything, in shuffled order
        const everything = new Map<string, Entry>()
        for (const graph of replicas.values()) for (const e of graph.all()) everything.set(e.id, e)
        const views = []
        for (const graph of replicas.values()) {
          const shuffled = shuffle([...everything.values()].filter(e => e.body.type !== 'found'), random)
          graph.merge(shuffled)
          views.push(JSON.stringify(summary(graph)))
        }
        const fresh = new MemberGraph(origin.genesis)
        fresh.merge(shuffle([...everything.values()].filter(e => e.body.type !== 'found'), random))
        views.push(JSON.stringify(summary(fresh)))
        assert.equal(new Set(views).size, 1, `replicas disagree for seed ${seed}`)
      } catch (err) {
        (err as Error).message += ` (replay with seed ${seed})`
        throw err
      }
    }
  })

  it('an entry with a field it must not have is refused when created', async () => {
    const a = await device('a')
    const graph = await found(a)
    const body: Omit<EntryBody, 'v' | 'by'> = { type: 'remove', hive: graph.hiveId, peer: a.peerId, at: 1, deps: graph.heads(), name: 'x' }
    await assert.rejects(createEntry(body, a), { name: 'InvalidEntry' })
  })
})

function summary (graph: MemberGraph): unknown {
  const view = graph.view()
  return {
    members: [...view.members.values()].map(m => [m.peerId, m.grant]).sort(),
    removed: [...view.removed.keys()].sort(),
    heads: graph.heads()
  }
}

function shuffle<T> (list: T[], random: () => number): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[list[i], list[j]] = [list[j] as T, list[i] as T]
  }
  return list
}

function mulberry32 (seed: number): () => number {
  let a = seed
  return () => {
    a |= 0
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
