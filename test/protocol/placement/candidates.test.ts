// Bounded bidders: in a hive larger than the submitter's bound, the announcement names the
// members asked to bid (the cheapest by their reports, and some drawn by the task id), and only
// those bid; the announcement's list is bounded and names members only; explain says so.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DEFAULT_MAX_BIDDERS, chooseCandidates } from '../../../protocol/placement/candidates.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Announce, MAX_CANDIDATES, encodeGossip, newTaskId, sha256Hex } from '../../../protocol/placement/index.ts'
import { waitFor } from '../../helpers/wait.ts'
import { echoAgent, startHive } from './fixture.ts'
import type { CapabilityReport } from '../../../protocol/capabilities/index.ts'
import type { TestHive } from './fixture.ts'
import type { HiveNode } from '../../../node/hive-node.ts'

const MiB = 1024 * 1024
const PEER = (i: number): string => `12D3KooW${String(i).padStart(44, 'A').replace(/0/g, 'a')}`

function report (over: Partial<CapabilityReport> = {}): CapabilityReport {
  return { name: 'd', version: '0.1.0', cores: 4, load: 0, running: 0, freeMemory: 8192 * MiB, totalMemory: 16384 * MiB, power: { state: 'ac' }, runtimes: ['wasm-component'], models: [], overridden: [], ...over }
}

const requirements = { runtime: 'wasm-component', models: [] }

describe('bounded bidders: the choice of candidates', () => {
  it('names nobody while every capable member fits the bound: all bid, as before', () => {
    const capable = Array.from({ length: DEFAULT_MAX_BIDDERS }, (_, i) => ({ peerId: PEER(i), caps: report() }))
    assert.equal(chooseCandidates(newTaskId(), requirements, 1024, capable, DEFAULT_MAX_BIDDERS, () => 0).named, undefined)
  })

  it('in a larger hive names the bound: the cheapest by report always, the rest drawn by the task id', () => {
    // two idle servers on AC, eighteen laptops on battery
    const capable = Array.from({ length: 20 }, (_, i) => ({ peerId: PEER(i), caps: i < 2 ? report({ cores: 16 }) : report({ power: { state: 'battery', percent: 80 } }) }))
    const task = newTaskId()
    const choice = chooseCandidates(task, requirements, 1024, capable, 8, () => 0)
    assert.equal(choice.named?.length, 8)
    assert.equal(new Set(choice.named).size, 8, 'each once')
    assert.deepEqual([choice.cheapest, choice.drawn], [4, 4])
    for (const server of [PEER(0), PEER(1)]) assert.ok(choice.named?.includes(server), 'the cheapest devices are always asked')
    assert.deepEqual(chooseCandidates(task, requirements, 1024, capable, 8, () => 0), choice, 'the same inputs name the same candidates')
    // over many tasks the drawn half reaches most of the hive
    const asked = new Set<string>()
    for (let i = 0; i < 50; i++) for (const p of chooseCandidates(newTaskId(), requirements, 1024, capable, 8, () => 0).named ?? []) asked.add(p)
    assert.ok(asked.size >= 16, `${asked.size} of 20 devices asked over 50 tasks`)
  })

  it('counts the tasks this submitter has under way on a device, which its report does not show yet', () => {
    const capable = Array.from({ length: 12 }, (_, i) => ({ peerId: PEER(i), caps: report({ load: i === 0 ? 0 : 1 }) }))
    const idle = chooseCandidates(newTaskId(), requirements, 1024, capable, 2, () => 0)
    assert.equal(idle.named?.[0], PEER(0), 'the idle device is the cheapest')
    const busy = chooseCandidates(newTaskId(), requirements, 1024, capable, 2, (p) => p === PEER(0) ? 4 : 0)
    assert.notEqual(busy.named?.[0], PEER(0), 'not once this submitter gave it four tasks')
  })

  it('draws among the members the submitter is connected to first, and beyond them only when they are too few', () => {
    const capable = Array.from({ length: 30 }, (_, i) => ({ peerId: PEER(i), caps: i < 2 ? report({ cores: 16 }) : report({ power: { state: 'battery', percent: 80 } }) }))
    const linked = new Set([PEER(10), PEER(11), PEER(12), PEER(13), PEER(14), PEER(15)])
    for (let i = 0; i < 20; i++) {
      const task = newTaskId()
      const choice = chooseCandidates(task, requirements, 1024, capable, 8, () => 0, (p) => linked.has(p))
      const drawn = choice.named?.slice(choice.cheapest) ?? []
      assert.equal(drawn.length, 4)
      for (const p of drawn) assert.ok(linked.has(p), `${p} is drawn from the linked members`)
      for (const server of [PEER(0), PEER(1)]) assert.ok(choice.named?.includes(server), 'the cheapest are asked whether linked or not')
      // with every member linked the draw is the plain draw by the task id
      assert.deepEqual(chooseCandidates(task, requirements, 1024, capable, 8, () => 0, () => true), chooseCandidates(task, requirements, 1024, capable, 8, () => 0))
    }
    // two linked: each drawn unless already among the cheapest, the rest drawn from the others
    const two = new Set([PEER(20), PEER(21)])
    for (let i = 0; i < 20; i++) {
      const choice = chooseCandidates(newTaskId(), requirements, 1024, capable, 8, () => 0, (p) => two.has(p))
      const cheapest = choice.named?.slice(0, choice.cheapest) ?? []
      const drawn = choice.named?.slice(choice.cheapest) ?? []
      const near = [...two].filter(p => !cheapest.includes(p)).sort()
      assert.deepEqual(drawn.slice(0, near.length).sort(), near, 'the linked ones first')
      for (const p of drawn.slice(near.length)) assert.equal(two.has(p), false)
      assert.equal(new Set(choice.named).size, 8)
    }
  })

  it('an announcement names at most MAX_CANDIDATES distinct PeerIds', () => {
    const base = { v: 1, t: 'announce', task: newTaskId(), submitter: PEER(0), agent: sha256Hex('a'), agentSize: 1, input: sha256Hex(''), inputSize: 0, requirements, permissions: [], bidWindowMs: 1000 }
    assert.equal(Announce.safeParse({ ...base, candidates: [PEER(1), PEER(2)] }).success, true)
    assert.equal(Announce.safeParse({ ...base, candidates: Array.from({ length: MAX_CANDIDATES + 1 }, (_, i) => PEER(i)) }).success, false, 'too many')
    assert.equal(Announce.safeParse({ ...base, candidates: [PEER(1), PEER(1)] }).success, false, 'a duplicate')
    assert.equal(Announce.safeParse({ ...base, candidates: ['not a peer id!'] }).success, false, 'not a PeerId')
    assert.equal(Announce.safeParse({ ...base, candidates: [] }).success, false, 'an empty list')
  })
})

describe('bounded bidders on a hive of four with a bound of two', () => {
  let hive: TestHive

  before(async () => { hive = await startHive(4, { placement: { maxBidders: 2 } }) })
  after(async () => { await hive?.stop() })

  it('only the two named candidates bid; the others say why they did not; explain says so', async () => {
    const [submitter] = hive.nodes
    const view = await submitter!.placement.submit({ agent: await echoAgent('candidates'), input: 'hello' })
    const ended = await submitter!.placement.wait(view.id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(ended.status, 'done')
    const explanation = await submitter!.placement.explain(view.id)
    assert.equal(explanation.expected.length, 2)
    assert.ok(explanation.bids.length <= 2, `${explanation.bids.length} bids`)
    assert.ok(explanation.bids.every(b => explanation.expected.includes(b.bidder)), 'every bid is a candidate\'s')
    assert.match(explanation.rounds[0]!.why, /only the 2 members the submitter named as candidates were asked to bid/)
    assert.match(ended.history.find(h => h.type === 'submitted')?.detail ?? '', /candidates of 4: .* the other 2 were not asked/)
    const others = hive.nodes.filter(n => !explanation.expected.includes(n.peerId.toString()))
    assert.equal(others.length, 2)
    // a member that was not asked shows why in its own view of the task (the submitter's view is the auction's)
    for (const node of others.filter(n => n !== submitter)) {
      const seen = await waitFor(() => node.placement.get(view.id), { message: `${node.name} heard the announcement` })
      assert.match(seen.history.find(h => h.type === 'bid-declined')?.detail ?? '', /this device did not bid: not a candidate/, node.name)
    }
  })

  it('an announcement naming a candidate that is not a member is dropped by every member', async () => {
    const [a, b] = hive.nodes as [HiveNode, HiveNode]
    const stranger = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const topic = a.hive.topic('placement')
    const announce = (candidates: string[]): Announce => ({
      v: 1, t: 'announce', task: newTaskId(), submitter: a.peerId.toString(), agent: sha256Hex('x'), agentSize: 1, input: sha256Hex(''), inputSize: 0,
      requirements: { runtime: 'wasm-component', models: [] }, permissions: [], bidWindowMs: 1_000, candidates
    })
    const forged = announce([b.peerId.toString(), stranger])
    const fair = announce([b.peerId.toString()])
    // published straight on the topic, as a member running other code could
    await a.libp2p.services.pubsub.publish(topic, encodeGossip(forged))
    await a.libp2p.services.pubsub.publish(topic, encodeGossip(fair))
    // what follows it from the same author arrives: the forged one, before it, did not
    await waitFor(() => b.placement.get(fair.task), { message: `${b.name} heard the fair announcement` })
    assert.equal(b.placement.get(forged.task), undefined, 'the announcement naming a stranger was dropped')
  })
})
