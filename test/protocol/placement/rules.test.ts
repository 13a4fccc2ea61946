// The pure parts of placement: who may bid, what a bid costs, the election, the record checks,
// and the agent store and fetch (over in-memory streams).

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import { encode as cborEncode } from 'cborg'
import { CONTEXT_ID_MAX_LENGTH as CRDT_CONTEXT_ID_MAX_LENGTH, CONTEXT_ID_PATTERN as CRDT_CONTEXT_ID_PATTERN } from '../../../crdt/ids.ts'
import { FramedStream, HiveRecords, createRecord } from '../../../protocol/index.ts'
import { AgentFetchRequest, createAgentStore, fetchAgent } from '../../../protocol/agents/index.ts'
import {
  CONTEXT_ID_MAX_LENGTH, CONTEXT_ID_PATTERN, Requirements, SubmitTask, awardKey, bidKey, canRun, computeCost, RELAYED_POINTS, RELAYED_POINTS_PER_MIB, createAwardRecord, createBidRecord,
  MODEL_MISSING_POINTS, elect, explainText, makeBid, newTaskId, registerPlacementRecords, sha256Hex, tieBreak
} from '../../../protocol/placement/index.ts'
import { MAX_PERMISSIONS, PERMISSION_NAME_MAX } from '../../../protocol/placement/messages.ts'
import type { CapabilityReport } from '../../../protocol/capabilities/index.ts'
import type { ProtocolHost, RecordSigner } from '../../../protocol/index.ts'
import type { AwardPayload } from '../../../protocol/placement/index.ts'

const MiB = 1024 * 1024

function caps (over: Partial<CapabilityReport> = {}): CapabilityReport {
  return {
    name: 'laptop',
    version: '0.1.0',
    cores: 4,
    load: 0,
    running: 0,
    freeMemory: 8192 * MiB,
    totalMemory: 16384 * MiB,
    power: { state: 'ac' },
    runtimes: ['wasm-component'],
    models: [],
    overridden: [],
    ...over
  }
}

async function signer (): Promise<RecordSigner> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => key.sign(message) }
}

/** A small deterministic shuffle (mulberry32), replayable by seed. */
function shuffle<T> (items: T[], seed: number): T[] {
  let a = seed >>> 0
  const random = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = [...items]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}

describe('who may bid', () => {
  const req = (input: object = {}): Requirements => Requirements.parse(input)

  it('refuses only for what cannot change: pin, runtime, models, cores, total memory', () => {
    assert.deepEqual(canRun(req(), caps(), 'me'), { ok: true })
    assert.match((canRun(req({ peer: 'QmSomewhere' }), caps(), 'me') as { reason: string }).reason, /pinned to QmSomewhere/)
    assert.match((canRun(req({ runtime: 'python' }), caps(), 'me') as { reason: string }).reason, /runtime python is not offered/)
    assert.match((canRun(req({ models: ['llama3'] }), caps(), 'me') as { reason: string }).reason, /model llama3 not available/)
    assert.deepEqual(canRun(req({ models: ['llama3'] }), caps({ models: ['llama3'] }), 'me'), { ok: true })
    assert.match((canRun(req({ minCores: 8 }), caps(), 'me') as { reason: string }).reason, /needs 8 cores/)
    assert.match((canRun(req({ minMemoryMiB: 32768 }), caps(), 'me') as { reason: string }).reason, /32768 MiB/)
  })

  it('never refuses for load, busy memory or battery: those cost more instead', () => {
    const busy = caps({ load: 400, running: 30, freeMemory: 10 * MiB, power: { state: 'battery', percent: 3 } })
    assert.deepEqual(canRun(req({ minMemoryMiB: 1024 }), busy, 'me'), { ok: true })
    const { cost, reasons } = computeCost(req({ minMemoryMiB: 1024 }), busy, { holdsAgent: false, agentSize: 2 * MiB })
    assert.deepEqual(reasons.map(r => r.factor), ['load', 'tasks', 'memory', 'power', 'agent'])
    assert.equal(reasons.find(r => r.factor === 'load')!.points, 5000)
    assert.equal(reasons.find(r => r.factor === 'tasks')!.points, 375)
    assert.equal(reasons.find(r => r.factor === 'memory')!.points, 500)
    assert.match(reasons.find(r => r.factor === 'power')!.detail, /on battery \(3%, low\)/)
    assert.equal(reasons.find(r => r.factor === 'power')!.points, 300)
    assert.equal(reasons.find(r => r.factor === 'agent')!.points, 7)
    assert.equal(cost, 5000 + 375 + 500 + 300 + 7)
  })

  it('an idle device on AC that holds the agent costs least', () => {
    const r = req()
    const idle = computeCost(r, caps(), { holdsAgent: true, agentSize: MiB }).cost
    assert.equal(idle, 10) // half the memory in use
    assert.ok(computeCost(r, caps(), { holdsAgent: false, agentSize: MiB }).cost > idle)
    assert.ok(computeCost(r, caps({ power: { state: 'unknown' } }), { holdsAgent: true, agentSize: MiB }).cost > idle)
    assert.ok(computeCost(r, caps({ load: 1 }), { holdsAgent: true, agentSize: MiB }).cost > idle)
    assert.match(computeCost(r, caps({ load: 3, overridden: ['load'] }), { holdsAgent: true, agentSize: 0 }).reasons[0]!.detail, /load 3\.00 on 4 cores \(0\.75 per core\) \(set in configuration\)/)
  })
})

describe('a device reached only through a relay', () => {
  const req = (input: object = {}): Requirements => Requirements.parse(input)
  it('costs more by what crosses the relay (the input, and the agent unless held), and still bids', () => {
    const r = req()
    const direct = computeCost(r, caps(), { holdsAgent: true, agentSize: 4 * MiB, inputSize: 2 * MiB })
    const small = computeCost(r, caps(), { holdsAgent: true, agentSize: 4 * MiB, inputSize: 1024, relayed: true })
    const large = computeCost(r, caps(), { holdsAgent: true, agentSize: 4 * MiB, inputSize: 2 * MiB, relayed: true })
    const fetched = computeCost(r, caps(), { holdsAgent: false, agentSize: 4 * MiB, inputSize: 2 * MiB, relayed: true })
    assert.deepEqual(canRun(r, caps(), 'me'), { ok: true }, 'a relayed device may still run it')
    const relayReason = (c: typeof small): { points: number, detail: string } => c.reasons.find(x => x.detail.startsWith('reached only through a relay'))!
    assert.equal(relayReason(small).points, RELAYED_POINTS + Math.round(RELAYED_POINTS_PER_MIB / 1024 * 10) / 10)
    assert.equal(relayReason(large).points, RELAYED_POINTS + 2 * RELAYED_POINTS_PER_MIB)
    assert.equal(relayReason(fetched).points, RELAYED_POINTS + 6 * RELAYED_POINTS_PER_MIB)
    assert.match(relayReason(fetched).detail, /6144 KiB of agent and input cross it/)
    assert.equal(relayReason(large).detail.length <= 200, true)
    // the reason is of a kind every version reads
    assert.equal(large.reasons.filter(x => x.detail.startsWith('reached')).every(x => x.factor === 'agent'), true)
    assert.ok(small.cost < large.cost && large.cost < fetched.cost)
    assert.equal(direct.reasons.some(x => x.detail.startsWith('reached only through a relay')), false)
  })
})

describe('the election', () => {
  const task = 'a'.repeat(32)
  const bidders = ['peer-a', 'peer-b', 'peer-c', 'peer-d', 'peer-e']

  it('picks the lowest cost and breaks ties by the hash of task and bidder', () => {
    const result = elect(task, [{ bidder: 'peer-a', cost: 20 }, { bidder: 'peer-b', cost: 10 }, { bidder: 'peer-c', cost: 10 }])!
    const tied = ['peer-b', 'peer-c'].sort((x, y) => tieBreak(task, x) < tieBreak(task, y) ? -1 : 1)
    assert.equal(result.winner, tied[0])
    assert.deepEqual(result.ranking.map(r => r.bidder), [...tied, 'peer-a'])
    assert.match(result.rule, /lowest cost wins/)
    // a different task orders the same tie its own way, so no device always wins ties
    const winners = new Set(Array.from({ length: 16 }, (_, i) => elect(String(i).padStart(32, '0'), [{ bidder: 'peer-b', cost: 1 }, { bidder: 'peer-c', cost: 1 }])!.winner))
    assert.equal(winners.size, 2)
  })

  it('is the same whatever order the bids arrive in (20 seeds)', () => {
    const bids = bidders.map((bidder, i) => ({ bidder, cost: [5, 3, 3, 9, 3][i]! }))
    const expected = elect(task, bids)!
    for (let seed = 1; seed <= 20; seed++) {
      const got = elect(task, shuffle(bids, seed))!
      assert.equal(got.winner, expected.winner, `seed ${seed}`)
      assert.deepEqual(got.ranking, expected.ranking, `seed ${seed}`)
    }
  })

  it('passes over excluded bidders, keeps the first bid of each, and has no winner when none is left', () => {
    const bids = [{ bidder: 'peer-a', cost: 1 }, { bidder: 'peer-b', cost: 2 }, { bidder: 'peer-a', cost: 0 }]
    assert.equal(elect(task, bids)!.winner, 'peer-a')
    assert.equal(elect(task, bids)!.cost, 1)
    assert.equal(elect(task, bids, ['peer-a'])!.winner, 'peer-b')
    assert.equal(elect(task, bids, ['peer-a', 'peer-b']), undefined)
    assert.equal(elect(task, []), undefined)
    assert.equal(elect(task, [{ bidder: 'x', cost: Number.NaN }, { bidder: 'y', cost: -1 }]), undefined)
  })
})

describe('bid and award records', () => {
  it('every node checks publisher, key, payload and cost before storing or believing one', async () => {
    const records = new HiveRecords()
    registerPlacementRecords(records)
    const alice = await signer()
    const mallory = await signer()
    const task = newTaskId()
    const bid = makeBid({ task, submitter: alice.peerId, requirements: Requirements.parse({}), agentSize: 1000 }, caps(), false)

    const good = await createBidRecord(bid, alice)
    const opened = await records.open(bidKey(task, alice.peerId), good)
    assert.equal(opened.publisher, alice.peerId)
    // someone else's key, signing in alice's name
    await assert.rejects(records.open(bidKey(task, alice.peerId), await createRecord(bidKey(task, alice.peerId), cborEncode(bid), mallory)), { name: 'InvalidRecord', message: /must be published by/ })
    // a cost that is not the sum of its reasons
    await assert.rejects(records.open(bidKey(task, mallory.peerId), await createRecord(bidKey(task, mallory.peerId), cborEncode({ ...bid, cost: 0 }), mallory)), { name: 'InvalidRecord', message: /not the sum/ })
    // a bid for another task under this task's key
    const other = newTaskId()
    await assert.rejects(records.open(bidKey(other, alice.peerId), await createRecord(bidKey(other, alice.peerId), cborEncode(bid), alice)), { name: 'InvalidRecord', message: /names task/ })
    // a payload that is not a bid
    await assert.rejects(records.open(bidKey(task, alice.peerId), await createRecord(bidKey(task, alice.peerId), cborEncode({ v: 1, hello: 1 }), alice)), { name: 'InvalidRecord' })

    const award: AwardPayload = {
      v: 1, task, submitter: alice.peerId, round: 1, winner: alice.peerId, cost: bid.cost, rule: 'r',
      bids: [{ bidder: alice.peerId, cost: bid.cost, hash: sha256Hex(good) }], excluded: [], agent: sha256Hex('a'), input: sha256Hex('i'), leaseMs: 1000
    }
    await records.open(awardKey(task, alice.peerId), await createAwardRecord(award, alice))
    await assert.rejects(records.open(awardKey(task, alice.peerId), await createRecord(awardKey(task, alice.peerId), cborEncode(award), mallory)), { name: 'InvalidRecord' })
    await assert.rejects(records.open(awardKey(task, alice.peerId), await createRecord(awardKey(task, alice.peerId), cborEncode({ ...award, winner: mallory.peerId }), alice)), { name: 'InvalidRecord', message: /winner must be one of its bids/ })
  })
})

describe('agents by digest', () => {
  it('the store evicts the least recently used agents beyond its size, never a pinned one', () => {
    const store = createAgentStore({ maxBytes: 250 })
    const a = store.put(new Uint8Array(100).fill(1))
    const b = store.put(new Uint8Array(100).fill(2))
    store.pin(a)
    store.get(b)
    const c = store.put(new Uint8Array(100).fill(3))
    assert.equal(store.has(a), true, 'pinned')
    assert.equal(store.has(b), false, 'least recently used and unpinned')
    assert.equal(store.has(c), true)
    store.unpin(a)
    store.put(new Uint8Array(100).fill(4))
    assert.equal(store.has(a), false)
    assert.equal(a, sha256Hex(new Uint8Array(100).fill(1)))
  })

  it('a fetched agent whose bytes do not match its digest is refused', async () => {
    const wanted = sha256Hex(new Uint8Array([1, 2, 3]))
    const serveWith = (reply: (stream: FramedStream) => Promise<void>): ProtocolHost => ({
      handle: async () => {},
      unhandle: async () => {},
      hangUp: async () => {},
      dialProtocol: async () => {
        const [local, remote] = await streamPair()
        void (async () => {
          const framed = new FramedStream(remote)
          await framed.read(AgentFetchRequest)
          await reply(framed)
          await framed.close()
        })()
        return local
      }
    })
    const peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
    const liar = serveWith(async (s) => { await s.write({ ok: true, size: 3 }); await s.write({ data: new Uint8Array([9, 9, 9]) }) })
    await assert.rejects(fetchAgent(liar, peer, wanted, { maxBytes: 1024 }), { name: 'AgentDigestMismatch' })
    const honest = serveWith(async (s) => { await s.write({ ok: true, size: 3 }); await s.write({ data: new Uint8Array([1, 2]) }); await s.write({ data: new Uint8Array([3]) }) })
    assert.deepEqual(await fetchAgent(honest, peer, wanted, { maxBytes: 1024 }), new Uint8Array([1, 2, 3]))
    const greedy = serveWith(async (s) => { await s.write({ ok: true, size: 1 << 30 }) })
    await assert.rejects(fetchAgent(greedy, peer, wanted, { maxBytes: 1024 }), { name: 'AgentFetch', message: /more than the 1024 accepted/ })
    const overlong = serveWith(async (s) => { await s.write({ ok: true, size: 2 }); await s.write({ data: new Uint8Array([1, 2, 3]) }) })
    await assert.rejects(fetchAgent(overlong, peer, wanted, { maxBytes: 1024 }), { name: 'AgentFetch', message: /do not add up/ })
  })
})

describe('models in a bid', () => {
  const req = (input: object = {}): Requirements => Requirements.parse(input)

  it('a device that lists a model the task names costs less, all else equal, and says so', () => {
    const requirements = req({ models: ['llama3.2'] })
    const context = { holdsAgent: true, agentSize: 0 }
    const holder = computeCost(requirements, caps({ models: ['llama3.2', 'phi4'] }), context)
    const other = computeCost(requirements, caps({ models: ['phi4'] }), context)
    assert.ok(holder.cost < other.cost)
    assert.equal(other.cost - holder.cost, MODEL_MISSING_POINTS)
    const reason = holder.reasons.find(r => r.factor === 'models')
    assert.deepEqual(reason, { factor: 'models', points: 0, detail: 'holds model llama3.2' })
    assert.match(other.reasons.find(r => r.factor === 'models')!.detail, /does not hold model llama3\.2/)
    // no models named: no models reason at all
    assert.equal(computeCost(req(), caps({ models: ['llama3.2'] }), context).reasons.some(r => r.factor === 'models'), false)
    // and explain prints it with the bid
    const bid = makeBid({ task: newTaskId(), submitter: 'me', requirements, agentSize: 0 }, caps({ models: ['llama3.2'] }), true)
    const text = explainText({
      task: bid.task, submitter: 'me', status: 'done', rule: 'r', requirements, expected: [], missing: [], rounds: [], history: [],
      bids: [{ bidder: 'peer-a', cost: bid.cost, reasons: bid.reasons, holdsAgent: true, rank: 1, tieBreak: 'x', excluded: false, via: 'stream' }]
    })
    assert.match(text, /\+0 models: holds model llama3\.2/)
  })
})

describe('the submission', () => {
  const agent = new Uint8Array([0, 97, 115, 109])

  it('is one schema, with the context-id rule of the store that holds contexts', () => {
    assert.equal(CONTEXT_ID_MAX_LENGTH, CRDT_CONTEXT_ID_MAX_LENGTH)
    assert.equal(CONTEXT_ID_PATTERN.source, CRDT_CONTEXT_ID_PATTERN.source)
    assert.equal(SubmitTask.safeParse({ agent, input: '', contextId: 'a'.repeat(128) }).success, true)
    for (const contextId of ['a'.repeat(129), 'no spaces allowed', '-leading', '']) {
      assert.equal(SubmitTask.safeParse({ agent, input: '', contextId }).success, false, contextId)
    }
    // every bound is stated once, in the schema
    assert.equal(SubmitTask.safeParse({ agent, input: '', permissions: Array.from({ length: MAX_PERMISSIONS + 1 }, (_, i) => `p${i}`) }).success, false)
    assert.equal(SubmitTask.safeParse({ agent, input: '', permissions: ['x'.repeat(PERMISSION_NAME_MAX + 1)] }).success, false)
    // room for a manifest's 32 origins beside every permission name
    assert.equal(SubmitTask.safeParse({ agent, input: '', permissions: Array.from({ length: 40 }, (_, i) => `net:https://${'h'.repeat(280)}.org:${1000 + i}`) }).success, true)
    assert.equal(SubmitTask.safeParse({ agent, input: '', bidWindowMs: 600_001 }).success, false)
    assert.equal(SubmitTask.safeParse({ agent, input: '', leaseMs: 99 }).success, false)
    assert.equal(SubmitTask.safeParse({ agent: new Uint8Array(), input: '' }).success, false)
    assert.equal(SubmitTask.safeParse({ agent, input: '', requirements: { models: ['m'], minCores: 2 } }).success, true)
    assert.equal(SubmitTask.safeParse({ agent, input: '', surprise: 1 }).success, false)
  })
})
