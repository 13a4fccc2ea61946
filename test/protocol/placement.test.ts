import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { createRecord, dialFramed } from '../../protocol/index.ts'
import {
  Ack, PLACEMENT_PROTOCOL, bidKey, createBidRecord, explainText, makeBid, Requirements
} from '../../protocol/placement/index.ts'
import { eventPromise, waitFor } from '../helpers/wait.ts'
import { squareAgent, startHive } from './placement-fixture.ts'
import type { TaskView } from '../../protocol/placement/index.ts'
import type { Member, TestHive } from './placement-fixture.ts'
import type { HiveNode } from '../../node/hive-node.ts'

const id = (m: Member | HiveNode): string => ('node' in m ? m.node : m).peerId.toString()

describe('placement on a hive of real nodes', () => {
  let hive: TestHive
  let members: Member[]
  let silent: HiveNode
  let outsider: HiveNode

  before(async () => {
    // six nodes with placement (one is killed on the way, five remain); one member that gossips
    // capabilities but never bids; one connected node that is not a member of the hive
    hive = await startHive({ size: 6, silent: [{ runtimes: ['forge-test'] }], outsiders: 1 })
    members = hive.members
    silent = hive.mesh.nodes[6]!
    outsider = hive.mesh.nodes[7]!
  })

  after(async () => { await hive.stop() })

  it('every member computes the same winner from the bids in the DHT', async () => {
    const submitter = members[1]!
    const submitted = await submitter.placement.submit({ agent: squareAgent('same'), input: '{"n":4}' })
    const task = await submitter.placement.wait(submitted.id)
    assert.equal(task.result?.output, '16')
    // bids and the award reach the DHT once the task is decided
    await Promise.all(members.map(async m => { await m.placement.settled() }))
    const results = await Promise.all(members.map(async m => m.placement.recompute(task.id)))
    for (const [i, r] of results.entries()) {
      assert.equal(r.awarded, task.winner, `member ${i} found the award`)
      assert.equal(r.winner, task.winner, `member ${i} elects the awarded winner`)
      assert.deepEqual(r.mismatched, [], `member ${i} holds the same bid bytes the award lists`)
      assert.equal(r.agrees, true)
      assert.equal(r.bids.length, members.length, 'every member bid')
    }
    const bidSet = (r: (typeof results)[number]): string[] => r.bids.map(b => `${b.bidder}:${b.cost}:${b.hash}`).sort()
    for (const r of results) assert.deepEqual(bidSet(r), bidSet(results[0]!))
  })

  it('a node loaded with work or on battery loses to an idle one on AC, and explain says why', async () => {
    const [submitter, loaded, battery, idle, ...others] = members as [Member, Member, Member, Member, ...Member[]]
    submitter.capabilities.setOverrides({ load: 1, power: 'ac' })
    loaded.capabilities.setOverrides({ load: 64, power: 'ac' })
    battery.capabilities.setOverrides({ load: 0, power: { state: 'battery', percent: 55 } })
    idle.capabilities.setOverrides({ load: 0, power: 'ac' })
    for (const other of others) other.capabilities.setOverrides({ load: 1, power: 'ac' })
    try {
      const task = await submitter.placement.submit({ agent: squareAgent('fresh'), input: '{"n":12}' })
      const done = await submitter.placement.wait(task.id)
      assert.equal(done.result?.output, '144')
      assert.equal(done.result?.executor, id(idle))
      const explanation = await submitter.placement.explain(task.id)
      assert.equal(explanation.bids[0]!.bidder, id(idle))
      const bidOf = (m: Member): (typeof explanation.bids)[number] => explanation.bids.find(b => b.bidder === id(m))!
      const reason = (m: Member, factor: string): { points: number, detail: string } => bidOf(m).reasons.find(r => r.factor === factor)!
      assert.ok(bidOf(loaded).cost > bidOf(idle).cost && bidOf(battery).cost > bidOf(idle).cost)
      assert.equal(reason(loaded, 'load').points, 1600)
      assert.match(reason(loaded, 'load').detail, /load 64\.00 on \d+ cores?.*set in configuration/)
      assert.equal(reason(battery, 'power').points, 200)
      assert.match(reason(battery, 'power').detail, /on battery \(55%\)/)
      assert.equal(reason(idle, 'power').detail, 'on AC power (set in configuration)')
      const text = explainText(explanation)
      assert.match(text, /Rule: lowest cost wins/)
      assert.match(text, /\+1600 load: load 64\.00/)
      assert.match(text, /\+200 power: on battery \(55%\)/)
      assert.match(text, new RegExp(`Round 1: \\S+ \\(…${id(idle).slice(-8)}\\)`))
    } finally {
      for (const m of members) m.capabilities.setOverrides(null)
    }
  })

  it('forged bids are ignored by the election', async () => {
    const [submitter, able, , , forger] = members as [Member, Member, Member, Member, Member]
    // only `able` and the silent member offer this runtime, so the auction waits for the silent
    // member until its deadline while the forged bids arrive
    able.capabilities.setOverrides({ runtimes: ['wasm-component', 'forge-test'] })
    await waitFor(() => submitter.capabilities.view().find(e => e.peerId === id(able))?.caps.runtimes.includes('forge-test'), { message: 'the new runtime is gossiped' })
    try {
      const task = await submitter.placement.submit({ agent: squareAgent('forged'), input: '{"n":5}', requirements: { runtime: 'forge-test' }, bidWindowMs: 4_000 })
      const spec = { task: task.id, submitter: id(submitter), requirements: Requirements.parse({ runtime: 'forge-test' }), agentSize: 100 }
      const caps = await forger.capabilities.local()
      const cheap = { ...makeBid(spec, { ...caps, load: 0 }, true) }
      const send = async (from: HiveNode, bidder: string, record: Uint8Array): Promise<unknown> => {
        const stream = await dialFramed(from.libp2p, submitter.node.peerId, PLACEMENT_PROTOCOL)
        await stream.write({ t: 'bid', task: task.id, bidder, record })
        const answer = await stream.read(Ack)
        await stream.close()
        return answer
      }
      // 1. a non-member's own, correctly signed bid
      const outsiderBid = await createBidRecord(cheap, outsider.signer)
      // 2. a member's key signing a bid in another member's name
      const impersonation = await createRecord(bidKey(task.id, id(able)), cborEncode(cheap), forger.node.signer)
      // 3. a bid whose signature does not verify
      const tampered = cborDecode(await createBidRecord(cheap, forger.node.signer)) as { sig: Uint8Array }
      tampered.sig[10]! ^= 0x01
      const answers = [
        await send(outsider, id(outsider), outsiderBid),
        await send(forger.node, id(able), impersonation),
        await send(forger.node, id(forger), cborEncode(tampered))
      ]
      for (const answer of answers) assert.deepEqual({ ...(answer as object), message: undefined }, { ok: false, reason: 'InvalidBid', message: undefined })
      // the same forgeries put straight into the DHT under the silent member's key
      for await (const _ of forger.node.libp2p.services.dht.put(bidKey(task.id, id(silent)), await createRecord(bidKey(task.id, id(silent)), cborEncode(cheap), forger.node.signer))) { /* drain */ }

      const done = await submitter.placement.wait(task.id)
      assert.equal(done.result?.executor, id(able))
      assert.equal(done.result?.output, '25')
      const explanation = await submitter.placement.explain(task.id)
      assert.deepEqual(explanation.bids.map(b => b.bidder), [id(able)], 'only the genuine bid was counted')
      assert.deepEqual(explanation.missing, [id(silent)])
      assert.equal(done.history.filter(h => h.type === 'bid-refused').length, 3)
      assert.ok(done.history.some(h => h.type === 'bid-refused' && /not a member/.test(h.detail)))
      assert.ok(done.history.some(h => h.type === 'bid-refused' && /must be published by/.test(h.detail)))
      assert.ok(done.history.some(h => h.type === 'bid-refused' && /signature does not verify/.test(h.detail)))
      assert.ok(done.history.some(h => h.type === 'auction-closed' && /deadline/.test(h.detail)))
    } finally {
      able.capabilities.setOverrides(null)
    }
  })

  it('a late result from a winner whose lease lapsed is discarded and noted in the history', async () => {
    const submitter = members[0]!
    submitter.capabilities.setOverrides({ load: 500 })
    try {
      const task = await submitter.placement.submit({ agent: squareAgent('late'), input: '{"n":6,"hold":"late"}', leaseMs: 2_000 })
      const first = await hive.hold.started('late')
      const winner = members.find(m => id(m) === first)!
      assert.notEqual(winner, submitter)
      // the submitter stops hearing from the winner: its renewals fail and its lease lapses
      submitter.node.setGate((peer, protocol) => !(peer.toString() === first && protocol === PLACEMENT_PROTOCOL))
      const done = await submitter.placement.wait(task.id)
      assert.equal(done.status, 'done')
      assert.notEqual(done.result?.executor, first)
      // the first winner finishes; it cannot deliver until the submitter hears from it again
      const failed = eventPromise(winner.placement, 'result-send-failed', { message: 'the late result could not be sent' })
      hive.hold.release('late')
      await failed
      submitter.node.setGate(() => true)
      const late = await waitFor(() => submitter.placement.get(task.id)?.history.find(h => h.type === 'late-result'), { message: 'the late result is noted' })
      assert.equal(late.peer, first)
      assert.match(late.detail, /discarded/)
      const view = submitter.placement.get(task.id)!
      assert.equal(view.result?.executor, done.result?.executor, 'the accepted result stands')
      assert.equal(view.history.filter(h => h.type === 'result-accepted').length, 1)
      await waitFor(() => winner.records.some(r => r.task === task.id), { message: 'the late run is recorded' })
      const records = hive.ledger().filter(r => r.task === task.id)
      assert.deepEqual(records.map(r => `${r.executor}:${r.status}`).sort(), [`${done.result!.executor}:ok`, `${first}:discarded`].sort())
    } finally {
      submitter.node.setGate(() => true)
      submitter.capabilities.setOverrides(null)
    }
  })

  it('when the winner dies mid-task, the task completes on another node with one accepted result', async () => {
    const submitter = members[0]!
    submitter.capabilities.setOverrides({ load: 500 })
    const task = await submitter.placement.submit({ agent: squareAgent('kill'), input: '{"n":9,"hold":"kill"}', leaseMs: 2_000 })
    const first = await hive.hold.started('kill')
    const victim = members.find(m => id(m) === first)!
    assert.notEqual(victim, submitter)
    await hive.kill(victim)
    const done = await submitter.placement.wait(task.id)
    assert.equal(done.status, 'done')
    assert.equal(done.result?.output, '81')
    assert.notEqual(done.result?.executor, first)
    assert.ok(done.round >= 2, 'the task was re-awarded')
    const lapse = done.history.find(h => h.type === 'lease-lapsed')
    assert.equal(lapse?.peer, first, 'the first lapse is the dead winner\'s')
    assert.equal(lapse?.round, 1)
    assert.equal(done.history.filter(h => h.type === 'result-accepted').length, 1)
    const explanation = await submitter.placement.explain(task.id)
    assert.equal(explanation.rounds[0]!.winner, first)
    assert.equal(explanation.rounds.at(-1)!.winner, done.result!.executor)
    assert.match(explanation.rounds[1]!.why, /re-election/)
    assert.match(explainText(explanation), /lease-lapsed: .*re-electing/)
    const records = hive.ledger().filter(r => r.task === task.id)
    assert.deepEqual(records.map(r => `${r.executor}:${r.status}`), [`${done.result!.executor}:ok`])
  })
  it('50 tasks submitted from different nodes all complete, each executed exactly once', async () => {
    const bulk: TaskView[] = []
    // the node killed above is gone: five remain
    const live = members.filter(m => !m.stopped)
    assert.equal(live.length, 5)
    const agent = squareAgent('bulk')
    const queue = Array.from({ length: 50 }, (_, n) => n)
    const inFlight = 10
    await Promise.all(Array.from({ length: inFlight }, async () => {
      for (let n = queue.shift(); n != null; n = queue.shift()) {
        const submitter = live[n % live.length]!
        const task = await submitter.placement.submit({ agent, input: JSON.stringify({ n }) })
        const done = await submitter.placement.wait(task.id)
        assert.equal(done.status, 'done', `task ${n}: ${JSON.stringify(done.error)}`)
        assert.equal(done.result?.output, String(n * n))
        assert.equal(done.submitter, id(submitter))
        bulk.push(done)
      }
    }))
    assert.equal(bulk.length, 50)
    const ledger = hive.ledger()
    for (const task of bulk) {
      const records = ledger.filter(r => r.task === task.id)
      assert.equal(records.length, 1, `task ${task.id} has exactly one ledger record`)
      assert.equal(records[0]!.status, 'ok')
      assert.equal(records[0]!.executor, task.result?.executor)
      assert.equal(records[0]!.seq, task.result?.ledger?.seq)
      assert.equal(records[0]!.agent, task.agent)
      assert.equal(hive.runs.filter(r => r.task === task.id).length, 1, `task ${task.id} ran once`)
      assert.equal(task.history.filter(h => h.type === 'result-accepted').length, 1)
    }
    const ids = new Set<string>(bulk.map(t => t.id))
    assert.equal(ledger.filter(r => ids.has(r.task)).length, 50, 'no execution beyond one per task')
    assert.equal(hive.runs.filter(r => ids.has(r.task)).length, 50)
  })

})
