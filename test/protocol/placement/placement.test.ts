// Placement across a hive of real nodes: real libp2p on loopback, agents run in each node's
// sandbox, executions recorded in each node's ledger, contexts replicated by the CRDT store.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { createRecord, dialFramed } from '../../../protocol/index.ts'
import { Ack, PLACEMENT_PROTOCOL, PLACEMENT_SESSION_PROTOCOL, Requirements, bidKey, createBidRecord, explainText, makeBid } from '../../../protocol/placement/index.ts'
import { CONTEXT_READER, CONTEXT_ROUNDTRIP, watAgent } from '../../sandbox/fixtures.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import { echoAgent, slowAgent, slowInput, spinAgent, startHive } from './fixture.ts'
import type { RecordSigner } from '../../../protocol/index.ts'
import type { TaskView } from '../../../protocol/placement/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { PeerId } from '@libp2p/interface'
import type { TestHive } from './fixture.ts'

const id = (node: HiveNode): string => node.peerId.toString()

/** Every record a node's own ledger chain holds for a task. */
async function recordsFor (nodes: HiveNode[], task: string): Promise<Array<{ signer: string, status: string, seq: number }>> {
  const out: Array<{ signer: string, status: string, seq: number }> = []
  for (const node of nodes) {
    for (const listed of await node.ledger.list()) {
      if (listed.record?.task === task) out.push({ signer: listed.record.signer, status: listed.record.status, seq: listed.seq })
    }
  }
  return out
}

describe('placement across a hive of five real nodes', () => {
  let hive: TestHive
  let nodes: HiveNode[]

  before(async () => {
    hive = await startHive(5)
    nodes = hive.nodes
  })

  after(async () => { await hive.stop() })

  it('every member computes the same winner from the bids in the DHT', async () => {
    const submitter = nodes[1]!
    const submitted = await submitter.placement.submit({ agent: await echoAgent('same'), input: 'same bids' })
    const task = await submitter.placement.wait(submitted.id)
    assert.equal(task.result?.output, 'same bids')
    // bids and the award reach the DHT once the task is decided
    await Promise.all(nodes.map(async n => { await n.placement.settled() }))
    const results = await Promise.all(nodes.map(async n => n.placement.recompute(task.id)))
    for (const [i, r] of results.entries()) {
      assert.equal(r.awarded, task.winner, `node ${i} found the award`)
      assert.equal(r.winner, task.winner, `node ${i} elects the awarded winner`)
      assert.deepEqual(r.mismatched, [], `node ${i} holds the same bid bytes the award lists`)
      assert.equal(r.agrees, true)
      assert.equal(r.bids.length, nodes.length, 'every member bid')
    }
    const bidSet = (r: (typeof results)[number]): string[] => r.bids.map(b => `${b.bidder}:${b.cost}:${b.hash}`).sort()
    for (const r of results) assert.deepEqual(bidSet(r), bidSet(results[0]!))
  })

  it('a node loaded with work or on battery loses to an idle one on AC, and explain says why', async () => {
    const [submitter, loaded, battery, idle, ...others] = nodes as [HiveNode, HiveNode, HiveNode, HiveNode, ...HiveNode[]]
    submitter.capabilities.setOverrides({ load: 1, power: 'ac' })
    loaded.capabilities.setOverrides({ load: 64, power: 'ac' })
    battery.capabilities.setOverrides({ load: 0, power: { state: 'battery', percent: 55 } })
    idle.capabilities.setOverrides({ load: 0, power: 'ac' })
    for (const other of others) other.capabilities.setOverrides({ load: 1, power: 'ac' })
    try {
      const task = await submitter.placement.submit({ agent: await echoAgent('fresh'), input: 'who runs me' })
      const done = await submitter.placement.wait(task.id)
      assert.equal(done.result?.output, 'who runs me')
      assert.equal(done.result?.executor, id(idle))
      const explanation = await submitter.placement.explain(task.id)
      assert.equal(explanation.bids[0]!.bidder, id(idle))
      const bidOf = (n: HiveNode): (typeof explanation.bids)[number] => explanation.bids.find(b => b.bidder === id(n))!
      const reason = (n: HiveNode, factor: string): { points: number, detail: string } => bidOf(n).reasons.find(r => r.factor === factor)!
      assert.ok(bidOf(loaded).cost > bidOf(idle).cost && bidOf(battery).cost > bidOf(idle).cost)
      const cores = Number(/on (\d+) cores?/.exec(reason(loaded, 'load').detail)?.[1])
      assert.equal(reason(loaded, 'load').points, Math.round(50 * 64 / cores * 10) / 10)
      assert.match(reason(loaded, 'load').detail, /load 64\.00 on \d+ cores?.*set in configuration/)
      assert.equal(reason(battery, 'power').points, 200)
      assert.match(reason(battery, 'power').detail, /on battery \(55%\)/)
      assert.equal(reason(idle, 'power').detail, 'on AC power (set in configuration)')
      const text = explainText(explanation)
      assert.match(text, /Rule: lowest cost wins/)
      assert.match(text, /load: load 64\.00/)
      assert.match(text, /\+200 power: on battery \(55%\)/)
      assert.match(text, new RegExp(`Round 1: hive-3 \\(…${id(idle).slice(-8)}\\)`))
    } finally {
      for (const n of nodes) n.capabilities.setOverrides(null)
    }
  })

  it('forged bids are ignored by the election', async () => {
    const [submitter, able, , forger, silent] = nodes as [HiveNode, HiveNode, HiveNode, HiveNode, HiveNode]
    // only `able` and `silent` offer this runtime; `silent` runs no placement, so the auction
    // stays open until its deadline while the forged bids arrive
    await silent.placement.stop()
    silent.capabilities.setOverrides({ runtimes: ['forge-test'] })
    able.capabilities.setOverrides({ runtimes: ['wasm-component', 'forge-test'] })
    const offers = (n: HiveNode): boolean => submitter.capabilities.get(id(n))?.caps.runtimes.includes('forge-test') === true
    await waitFor(() => offers(able) && offers(silent), { message: 'the new runtimes are gossiped' })
    try {
      const task = await submitter.placement.submit({ agent: await echoAgent('forged'), input: 'genuine', requirements: { runtime: 'forge-test' }, bidWindowMs: 4_000 })
      const spec = { task: task.id, submitter: id(submitter), requirements: Requirements.parse({ runtime: 'forge-test' }), agentSize: 100 }
      const cheap = makeBid(spec, { ...await forger.capabilities.local(), load: 0 }, true)
      const send = async (bidder: string, record: Uint8Array): Promise<unknown> => {
        const stream = await dialFramed(forger.libp2p, submitter.peerId, PLACEMENT_PROTOCOL)
        await stream.write({ t: 'bid', task: task.id, bidder, record })
        const answer = await stream.read(Ack)
        await stream.close()
        return answer
      }
      // 1. a correctly signed bid from a device that is not a member, relayed by a member
      const outsiderKey = await generateKeyPair('Ed25519')
      const outsider: RecordSigner = { peerId: peerIdFromPrivateKey(outsiderKey).toString(), sign: async (m) => outsiderKey.sign(m) }
      // 2. a member's key signing a bid in another member's name
      const impersonation = await createRecord(bidKey(task.id, id(able)), cborEncode(cheap), forger.signer)
      // 3. a bid whose signature does not verify
      const tampered = cborDecode(await createBidRecord(cheap, forger.signer)) as { sig: Uint8Array }
      tampered.sig[10]! ^= 0x01
      const answers = [
        await send(outsider.peerId, await createBidRecord(cheap, outsider)),
        await send(id(able), impersonation),
        await send(id(forger), cborEncode(tampered))
      ]
      for (const answer of answers) assert.equal((answer as { reason?: string }).reason, 'InvalidBid')
      // a forgery put straight into the DHT under the silent member's key
      for await (const _ of forger.libp2p.services.dht.put(bidKey(task.id, id(silent)), await createRecord(bidKey(task.id, id(silent)), cborEncode(cheap), forger.signer))) { /* drain */ }

      const done = await submitter.placement.wait(task.id)
      assert.equal(done.result?.executor, id(able))
      assert.equal(done.result?.output, 'genuine')
      const explanation = await submitter.placement.explain(task.id)
      assert.deepEqual(explanation.bids.map(b => b.bidder), [id(able)], 'only the genuine bid was counted')
      assert.deepEqual(explanation.missing, [id(silent)])
      const refused = done.history.filter(h => h.type === 'bid-refused')
      assert.equal(refused.length, 3)
      assert.ok(refused.some(h => /not a member/.test(h.detail)))
      assert.ok(refused.some(h => /must be published by/.test(h.detail)))
      assert.ok(refused.some(h => /signature does not verify/.test(h.detail)))
      assert.ok(done.history.some(h => h.type === 'auction-closed' && /deadline/.test(h.detail)))
    } finally {
      able.capabilities.setOverrides(null)
      silent.capabilities.setOverrides(null)
      await silent.placement.start()
    }
  })

  it('a second task in the same context, placed on another node, reads what the first wrote', async () => {
    const [submitter, writerNode, readerNode] = nodes as [HiveNode, HiveNode, HiveNode]
    const context = 'placement-shared'
    const writer = await watAgent(CONTEXT_ROUNDTRIP, { name: 'ctx-writer', permissions: ['context:read', 'context:write'] })
    const reader = await watAgent(CONTEXT_READER, { name: 'ctx-reader', permissions: ['context:read'] })
    const first = await submitter.placement.submit({ agent: writer, input: 'written on one node', contextId: context, permissions: ['context:read', 'context:write'], requirements: { peer: id(writerNode) } })
    const wrote = await submitter.placement.wait(first.id)
    assert.equal(wrote.status, 'done', JSON.stringify(wrote.error ?? wrote.result))
    assert.equal(wrote.result?.executor, id(writerNode))
    // the context replicates to every member
    await waitFor(async () => (await readerNode.contexts.store.open(context)).get('k') === 'written on one node', { message: 'the write reaches the other node' })
    const second = await submitter.placement.submit({ agent: reader, input: '', contextId: context, permissions: ['context:read'], requirements: { peer: id(readerNode) } })
    const read = await submitter.placement.wait(second.id)
    assert.equal(read.result?.executor, id(readerNode))
    assert.equal(read.result?.output, 'written on one node')

    // a task that does not grant what its agent's manifest asks for fails, on any node
    const refused = await submitter.placement.wait((await submitter.placement.submit({ agent: writer, input: 'x', contextId: context, permissions: ['context:read'] })).id)
    assert.equal(refused.status, 'failed')
    assert.match(refused.result?.error ?? '', /PermissionNotGranted: .*context:write/)
  })

  it('50 tasks submitted from different nodes all complete, each executed exactly once, and verify is clean', async () => {
    const live = hive.live()
    assert.equal(live.length, 5)
    const agent = await echoAgent('bulk')
    const queue = Array.from({ length: 50 }, (_, n) => n)
    const bulk: TaskView[] = []
    await Promise.all(Array.from({ length: 10 }, async () => {
      for (let n = queue.shift(); n != null; n = queue.shift()) {
        const submitter = live[n % live.length]!
        const task = await submitter.placement.submit({ agent, input: `task ${n}` })
        const done = await submitter.placement.wait(task.id)
        assert.equal(done.status, 'done', `task ${n}: ${JSON.stringify(done.error ?? done.result)}`)
        assert.equal(done.result?.output, `task ${n}`)
        bulk.push(done)
      }
    }))
    assert.equal(bulk.length, 50)
    const ids = new Set<string>(bulk.map(t => t.id))
    const all: Array<{ signer: string, status: string, seq: number, task: string }> = []
    for (const node of live) {
      for (const listed of await node.ledger.list()) {
        if (listed.record != null && ids.has(listed.record.task)) all.push({ signer: listed.record.signer, status: listed.record.status, seq: listed.seq, task: listed.record.task })
      }
    }
    assert.equal(all.length, 50, 'one ledger record per task, no more')
    for (const task of bulk) {
      const records = all.filter(r => r.task === task.id)
      assert.equal(records.length, 1, `task ${task.id} has exactly one ledger record`)
      assert.equal(records[0]!.status, 'ok')
      assert.equal(records[0]!.signer, task.result?.executor)
      assert.equal(records[0]!.seq, task.result?.ledger?.seq)
      assert.equal(task.history.filter(h => h.type === 'result-accepted').length, 1)
    }
    for (const node of live) {
      const report = await node.ledger.verify()
      assert.equal(report.ok, true, `${node.name}: ${JSON.stringify(report.chains.filter(c => !c.ok))}`)
    }
  })
})

type TaskEvent = CustomEvent<{ task: string, peer: string, round: number }>

/** Resolves on the placement event of `type` for one task. */
async function taskEvent (node: HiveNode, type: string, task: string, timeoutMs = 60_000): Promise<TaskEvent> {
  return eventPromise<TaskEvent>(node.placement, type, { filter: e => e.detail.task === task, timeoutMs, message: `${node.name}: ${type} for ${task}` })
}

/** Makes `a` refuse every connection with `b`, as a network partition would, until undone. */
function partition (a: HiveNode, b: HiveNode): () => void {
  // libp2p consults this very object on every dial and every inbound connection
  const gater = a.hive.gate.connectionGater
  const saved = { ...gater }
  const cut = (peer: PeerId): boolean => peer.equals(b.peerId)
  gater.denyDialPeer = async (peer) => cut(peer) || await saved.denyDialPeer?.(peer) === true
  gater.denyInboundEncryptedConnection = async (peer, conn) => cut(peer) || await saved.denyInboundEncryptedConnection?.(peer, conn) === true
  return () => { Object.assign(gater, saved) }
}

// Failover on a smaller hive: a submitter that is kept from winning, and two others.
describe('leases and failover on a hive of three real nodes', () => {
  let hive: TestHive
  let nodes: HiveNode[]

  before(async () => {
    hive = await startHive(3, { placement: { winnerGraceMs: 2_000 } })
    nodes = hive.nodes
  })

  after(async () => { await hive.stop() })

  it('a late result from a winner whose lease lapsed is discarded and noted in the history', async () => {
    const submitter = nodes[0]!
    submitter.capabilities.setOverrides({ load: 500 })
    try {
      const started = Promise.race(nodes.map(async n => eventPromise(n.placement, 'run-start').then(() => n)))
      const task = await submitter.placement.submit({ agent: await spinAgent('spin-late', 600_000_000), input: 'late', leaseMs: 2_000 })
      const winner = await started
      assert.notEqual(winner, submitter)
      // the submitter stops hearing from the winner (its streams and its session): its renewals
      // fail and its lease lapses, and its result cannot be sent
      submitter.setGate((peer, protocol) => !(peer.equals(winner.peerId) && (protocol === PLACEMENT_PROTOCOL || protocol === PLACEMENT_SESSION_PROTOCOL)))
      const failedSend = eventPromise(winner.placement, 'result-send-failed', { timeoutMs: 120_000, message: 'the late result could not be sent at first' })
      const done = await submitter.placement.wait(task.id)
      assert.equal(done.status, 'done')
      assert.notEqual(done.result?.executor, id(winner))
      await failedSend
      submitter.setGate((peer, protocol) => submitter.hive.gate.allows(peer, protocol))
      const late = await waitFor(() => submitter.placement.get(task.id)?.history.find(h => h.type === 'late-result'), { message: 'the late result is noted', timeoutMs: 60_000 })
      assert.equal(late.peer, id(winner))
      assert.match(late.detail, /discarded/)
      const view = submitter.placement.get(task.id)!
      assert.equal(view.result?.executor, done.result?.executor, 'the accepted result stands')
      assert.equal(view.history.filter(h => h.type === 'result-accepted').length, 1)
      // still connected, only silent: the lease is what caught it
      assert.equal(view.history.find(h => h.type === 'lease-lapsed')?.peer, id(winner))
      assert.equal(view.history.some(h => h.type === 'winner-lost'), false)
      await waitFor(async () => (await recordsFor([winner], task.id)).length > 0, { message: 'the late run is recorded' })
      const records = await recordsFor(hive.nodes, task.id)
      assert.deepEqual(records.map(r => `${r.signer}:${r.status}`).sort(), [`${done.result!.executor}:ok`, `${id(winner)}:discarded`].sort())
    } finally {
      submitter.setGate((peer, protocol) => submitter.hive.gate.allows(peer, protocol))
      submitter.capabilities.setOverrides(null)
    }
  })

  it('a winner that disconnects and reconnects within the grace keeps the task', async () => {
    const submitter = nodes[0]!
    submitter.capabilities.setOverrides({ load: 500 })
    try {
      const started = Promise.race(nodes.map(async n => eventPromise(n.placement, 'run-start').then(() => n)))
      // the run outlasts the grace by seconds: a reconnection that did not count would re-elect
      // a long lease: its regular renewals (every 10 s) come too late for the grace
      const task = await submitter.placement.submit({ agent: await slowAgent('slow-blip'), input: slowInput('blip', 6), leaseMs: 30_000 })
      const winner = await started
      assert.notEqual(winner, submitter)
      const gone = taskEvent(submitter, 'winner-disconnected', task.id)
      const back = taskEvent(submitter, 'winner-reconnected', task.id)
      await submitter.libp2p.hangUp(winner.peerId)
      assert.equal((await gone).detail.peer, id(winner))
      // the test dials nothing: the nodes reconnect by themselves (the winner dials back at once)
      assert.equal((await back).detail.round, 1)
      const done = await submitter.placement.wait(task.id, { signal: AbortSignal.timeout(120_000) })
      assert.equal(done.status, 'done')
      assert.equal(done.result?.executor, id(winner))
      assert.equal(done.round, 1, 'not re-elected')
      assert.deepEqual(done.history.filter(h => h.type === 'winner-lost' || h.type === 'lease-lapsed'), [])
    } finally {
      submitter.capabilities.setOverrides(null)
    }
  })

  it('a winner cut off beyond the grace loses the task, and its result for the old round is discarded', async () => {
    const submitter = nodes[0]!
    submitter.capabilities.setOverrides({ load: 500 })
    let heal = (): void => {}
    try {
      const started = Promise.race(nodes.map(async n => eventPromise(n.placement, 'run-start').then(() => n)))
      // a lease far longer than the test: only the disconnection can take the task away
      const task = await submitter.placement.submit({ agent: await slowAgent('slow-cut'), input: slowInput('cut off', 3), leaseMs: 600_000 })
      const winner = await started
      assert.notEqual(winner, submitter)
      heal = partition(submitter, winner)
      const failedSend = eventPromise(winner.placement, 'result-send-failed', { timeoutMs: 120_000, message: 'the cut-off winner could not send its result' })
      await submitter.libp2p.hangUp(winner.peerId)
      const done = await submitter.placement.wait(task.id, { signal: AbortSignal.timeout(120_000) })
      assert.equal(done.status, 'done')
      assert.notEqual(done.result?.executor, id(winner))
      const lost = done.history.find(h => h.type === 'winner-lost')
      assert.equal(lost?.peer, id(winner))
      assert.equal(lost?.round, 1)
      assert.match(lost?.detail ?? '', /disconnected from this device while running it and did not reconnect/)
      await failedSend
      heal()
      const late = await waitFor(() => submitter.placement.get(task.id)?.history.find(h => h.type === 'late-result'), { message: 'the late result is noted', timeoutMs: 60_000 })
      assert.equal(late.peer, id(winner))
      assert.match(late.detail, /round 1.*discarded/)
      const view = submitter.placement.get(task.id)!
      assert.equal(view.result?.executor, done.result?.executor, 'the accepted result stands')
      assert.equal(view.history.filter(h => h.type === 'result-accepted').length, 1)
      await waitFor(async () => (await recordsFor([winner], task.id)).length > 0, { message: 'the late run is recorded' })
      const records = await recordsFor(hive.nodes, task.id)
      assert.deepEqual(records.map(r => `${r.signer}:${r.status}`).sort(), [`${done.result!.executor}:ok`, `${id(winner)}:discarded`].sort())
    } finally {
      heal()
      submitter.capabilities.setOverrides(null)
    }
  })

  it('when the winner dies mid-task, its disconnection is noticed and the task completes on another node with one accepted result', async () => {
    const submitter = nodes[0]!
    submitter.capabilities.setOverrides({ load: 500 })
    try {
      const started = Promise.race(nodes.map(async n => eventPromise(n.placement, 'run-start').then(() => n)))
      // a lease far longer than the test: only the disconnection can take the task away
      const task = await submitter.placement.submit({ agent: await spinAgent('spin-kill', 600_000_000), input: 'survives', leaseMs: 600_000 })
      const victim = await started
      assert.notEqual(victim, submitter)
      await hive.kill(victim)
      const done = await submitter.placement.wait(task.id, { signal: AbortSignal.timeout(120_000) })
      assert.equal(done.status, 'done')
      assert.equal(done.result?.output, 'survives')
      assert.notEqual(done.result?.executor, id(victim))
      assert.ok(done.round >= 2, 'the task was re-awarded')
      const lost = done.history.find(h => h.type === 'winner-lost')
      assert.equal(lost?.peer, id(victim), 'the dead winner is the one lost')
      assert.equal(lost?.round, 1)
      assert.match(lost?.detail ?? '', /disconnected/)
      assert.equal(done.history.some(h => h.type === 'lease-lapsed'), false)
      assert.equal(done.history.filter(h => h.type === 'result-accepted').length, 1)
      const explanation = await submitter.placement.explain(task.id)
      assert.equal(explanation.rounds[0]!.winner, id(victim))
      assert.equal(explanation.rounds.at(-1)!.winner, done.result!.executor)
      assert.match(explanation.rounds[1]!.why, /re-election: .* disconnected and did not come back/)
      assert.match(explainText(explanation), /winner-lost: .*disconnected.*re-electing/)
      const records = await recordsFor(hive.live(), task.id)
      assert.deepEqual(records.map(r => `${r.signer}:${r.status}`), [`${done.result!.executor}:ok`])
    } finally {
      submitter.capabilities.setOverrides(null)
    }
  })
})
