// The submitter's state machine on its own: an Auctioneer with stub ports (capabilities, the
// connections it sees, gossip, the DHT) and real signed bid and award records, driven through
// the requests bidders and winners make, with node:test's mock clock standing in for time.
// Lease lapse, the grace after a disconnection, giving a task up, a late result, never more
// than one accepted result, and the bounds of the log lines a winner streams.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { HiveRecords } from '../../../protocol/index.ts'
import { Auctioneer, LIVE_LOG_LIMITS, LogsRequest, Requirements, createBidRecord, makeBid, placementSettings, registerPlacementRecords, sha256Hex } from '../../../protocol/placement/index.ts'
import { createAgentStore } from '../../../protocol/agents/index.ts'
import type { CapabilityEntry, CapabilityReport } from '../../../protocol/capabilities/index.ts'
import type { RecordSigner } from '../../../protocol/index.ts'
import type { AuctioneerComponents, AuctioneerEvents, AwardPayload, PlacementGossip, ResultRequest, TaskId, TaskView } from '../../../protocol/placement/index.ts'

const MiB = 1024 * 1024
const LEASE_MS = 1_000
const GRACE_MS = 300
const WINDOW_MS = 500

function caps (load: number): CapabilityReport {
  return {
    name: `load-${load}`,
    version: '0.1.0',
    cores: 4,
    load,
    running: 0,
    freeMemory: 8192 * MiB,
    totalMemory: 16384 * MiB,
    power: { state: 'ac' },
    runtimes: ['wasm-component'],
    models: [],
    overridden: []
  }
}

async function signer (): Promise<RecordSigner> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => key.sign(message) }
}

interface Bench {
  auctioneer: Auctioneer
  components: AuctioneerComponents
  submitter: RecordSigner
  /** The cheaper bidder (wins round 1) and the dearer one. */
  cheap: RecordSigner
  dear: RecordSigner
  connected: Set<string>
  gossip: PlacementGossip[]
  /** Resolves with the next award the auctioneer makes. */
  nextAward: () => Promise<AwardPayload>
  submit: () => Promise<TaskView>
  bid: (task: TaskId, who: RecordSigner, load: number) => Promise<unknown>
  result: (task: TaskId, from: RecordSigner, round: number, output: string) => { accepted: boolean }
  history: (task: TaskId) => string[]
}

async function bench (): Promise<Bench> {
  const [submitter, cheap, dear] = await Promise.all([signer(), signer(), signer()])
  const records = new HiveRecords()
  registerPlacementRecords(records)
  const connected = new Set([submitter.peerId, cheap.peerId, dear.peerId])
  const view: CapabilityEntry[] = [cheap, dear].map((s, i) => ({ peerId: s.peerId, self: false, caps: caps(i), seq: 1, time: 0, receivedAt: 0 }))
  const gossip: PlacementGossip[] = []
  const awards: AwardPayload[] = []
  const waiting: Array<(award: AwardPayload) => void> = []
  const components: AuctioneerComponents = {
    self: submitter.peerId,
    signer: submitter,
    records,
    capabilities: { view: () => view },
    connected: () => new Set(connected),
    publish: async (message) => { gossip.push(message) },
    bidHere: () => {},
    onAwarded: (award) => {
      const next = waiting.shift()
      if (next != null) next(award)
      else awards.push(award)
    },
    lookupBid: async () => undefined,
    agents: createAgentStore({ maxBytes: MiB }),
    log: { debug: () => {}, warn: () => {} }
  }
  const auctioneer = new Auctioneer(placementSettings({ leaseMs: LEASE_MS, winnerGraceMs: GRACE_MS, bidWindowMs: WINDOW_MS }), components)
  auctioneer.start()
  const nextAward = async (): Promise<AwardPayload> => {
    const ready = awards.shift()
    if (ready != null) return ready
    return new Promise(resolve => { waiting.push(resolve) })
  }
  return {
    auctioneer,
    components,
    submitter,
    cheap,
    dear,
    connected,
    gossip,
    nextAward,
    submit: async () => auctioneer.submit({ agent: new Uint8Array([0, 97, 115, 109, 1]), input: 'the input', requirements: Requirements.parse({}) }),
    bid: async (task, who, load) => {
      const payload = makeBid({ task, submitter: submitter.peerId, requirements: Requirements.parse({}), agentSize: 5 }, caps(load), false)
      return auctioneer.bid(who.peerId, task, who.peerId, await createBidRecord(payload, who), 'stream')
    },
    result: (task, from, round, output) => {
      const request: ResultRequest = { t: 'result', task, round, ok: true, output, durationMs: 1 }
      const answer = auctioneer.result(from.peerId, request)
      assert.equal(answer.ok, true)
      const accepted = answer.ok && answer.accepted
      auctioneer.recorded(from.peerId, request, { t: 'recorded', seq: 7 }, accepted)
      return { accepted }
    },
    history: (task) => auctioneer.get(task)!.history.map(h => h.type)
  }
}

/** Opens an auction and has both members bid: round 1 goes to the cheaper one. */
async function awarded (b: Bench): Promise<{ task: TaskId, award: AwardPayload }> {
  const { id } = await b.submit()
  await b.bid(id, b.cheap, 0)
  await b.bid(id, b.dear, 3)
  const award = await b.nextAward()
  assert.equal(award.winner, b.cheap.peerId)
  assert.equal(award.round, 1)
  return { task: id, award }
}

describe('the auction state machine (stub ports, mock clock)', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setTimeout', 'Date'] }) })
  afterEach(() => { mock.timers.reset() })

  it('closes as soon as every live capable member bid, and the award carries the signed bids', async () => {
    const b = await bench()
    const { task, award } = await awarded(b)
    assert.equal(award.bids.length, 2)
    assert.equal(award.bidRecords?.length, 2, 'both signed bids travel in the award')
    assert.deepEqual(b.history(task), ['submitted', 'bid', 'bid', 'auction-closed', 'awarded'])
    assert.ok(b.gossip.some(g => g.t === 'award' && g.task === task))
    b.auctioneer.stop()
  })

  it('a winner that never claims loses the task when its lease lapses; a claimed lease is kept by renewing', async () => {
    const b = await bench()
    const { task } = await awarded(b)
    // claimed and renewed: the lease does not lapse however long the run
    assert.equal(b.auctioneer.claim(b.cheap.peerId, task, 1).ok, true)
    for (let i = 0; i < 5; i++) {
      mock.timers.tick(LEASE_MS * 0.6)
      assert.equal(b.auctioneer.renew(b.cheap.peerId, task, 1).ok, true)
    }
    assert.equal(b.auctioneer.get(task)!.round, 1)
    // silent for a whole lease: re-elected to the other bidder
    mock.timers.tick(LEASE_MS + 10)
    const second = await b.nextAward()
    assert.equal(second.round, 2)
    assert.equal(second.winner, b.dear.peerId)
    assert.deepEqual(second.excluded, [b.cheap.peerId])
    assert.ok(b.history(task).includes('lease-lapsed'))
    // the old winner's renewal is refused: its round is over
    const late = b.auctioneer.renew(b.cheap.peerId, task, 1)
    assert.equal(late.ok, false)
    assert.equal(!late.ok && late.reason, 'Lapsed')
    b.auctioneer.stop()
  })

  it('a winner that disconnects is replaced after the grace, not the whole lease; one that comes back keeps the task', async () => {
    const b = await bench()
    const events: string[] = []
    for (const type of ['winner-disconnected', 'winner-reconnected'] as const) {
      b.auctioneer.on(type, (d: AuctioneerEvents[typeof type]) => { events.push(`${type}:${d.round}`) })
    }
    const { task } = await awarded(b)
    b.auctioneer.claim(b.cheap.peerId, task, 1)
    // disconnects and comes back within the grace: nothing happens
    b.connected.delete(b.cheap.peerId)
    b.auctioneer.peerDisconnected(b.cheap.peerId)
    mock.timers.tick(GRACE_MS - 50)
    b.connected.add(b.cheap.peerId)
    b.auctioneer.peerConnected(b.cheap.peerId)
    mock.timers.tick(GRACE_MS * 2)
    assert.equal(b.auctioneer.get(task)!.round, 1)
    assert.deepEqual(events, ['winner-disconnected:1', 'winner-reconnected:1'])
    // disconnects for good: lost after the grace, well before its lease would lapse
    b.auctioneer.renew(b.cheap.peerId, task, 1)
    b.connected.delete(b.cheap.peerId)
    b.auctioneer.peerDisconnected(b.cheap.peerId)
    mock.timers.tick(GRACE_MS + 1)
    const second = await b.nextAward()
    assert.equal(second.winner, b.dear.peerId)
    assert.ok(b.history(task).includes('winner-lost'))
    assert.ok(!b.history(task).includes('lease-lapsed'))
    b.auctioneer.stop()
  })

  it('a winner that gives the task up is passed over, and when every bidder did, the task fails saying why', async () => {
    const b = await bench()
    const { task } = await awarded(b)
    b.auctioneer.claim(b.cheap.peerId, task, 1)
    assert.equal(b.auctioneer.abandon(b.cheap.peerId, task, 1, 'could not run it here: no sandbox').ok, true)
    const second = await b.nextAward()
    assert.equal(second.winner, b.dear.peerId)
    // only the current winner may give a round up
    assert.equal(b.auctioneer.abandon(b.cheap.peerId, task, 2, 'again').ok, false)
    b.auctioneer.claim(b.dear.peerId, task, 2)
    b.auctioneer.abandon(b.dear.peerId, task, 2, 'PermissionNotOffered: the agent needs net')
    const failed = await b.auctioneer.wait(task)
    assert.equal(failed.status, 'failed')
    assert.equal(failed.error?.code, 'BiddersExhausted')
    assert.match(failed.error?.message ?? '', /no sandbox.*PermissionNotOffered/)
    assert.ok(b.gossip.some(g => g.t === 'closed' && g.task === task && g.status === 'failed'))
  })

  it('a late result from a replaced winner is discarded; the current winner\'s is accepted, and no second one', async () => {
    const b = await bench()
    const { task } = await awarded(b)
    mock.timers.tick(LEASE_MS + 10)
    const second = await b.nextAward()
    assert.equal(second.winner, b.dear.peerId)
    b.auctioneer.claim(b.dear.peerId, task, 2)
    // the first winner was slow, not dead: its result for round 1 arrives now
    assert.deepEqual(b.result(task, b.cheap, 1, 'stale'), { accepted: false })
    assert.ok(b.history(task).includes('late-result'))
    // accepted, and while its executor is still recording it, another copy is not
    const fresh: ResultRequest = { t: 'result', task, round: 2, ok: true, output: 'fresh', durationMs: 1 }
    assert.deepEqual(b.auctioneer.result(b.dear.peerId, fresh), { ok: true, accepted: true })
    const twice = b.auctioneer.result(b.dear.peerId, { ...fresh, output: 'twice' })
    assert.equal(twice.ok && twice.accepted, false)
    b.auctioneer.recorded(b.dear.peerId, fresh, { t: 'recorded', seq: 7 }, true)
    // once accepted, no other result is, not even the same winner's again
    assert.deepEqual(b.result(task, b.dear, 2, 'again'), { accepted: false })
    assert.deepEqual(b.result(task, b.cheap, 1, 'stale again'), { accepted: false })
    const done = await b.auctioneer.wait(task)
    assert.equal(done.status, 'done')
    assert.equal(done.result?.output, 'fresh')
    assert.equal(done.result?.executor, b.dear.peerId)
    assert.equal(done.result?.ledger?.seq, 7)
    assert.equal(done.history.filter(h => h.type === 'result-accepted').length, 1)
    // a task with its result takes no more claims, and its lease no longer runs
    assert.equal(b.auctioneer.claim(b.dear.peerId, task, 2).ok, false)
    mock.timers.tick(LEASE_MS * 10)
    assert.equal(b.auctioneer.get(task)!.round, 2)
  })

  it('the accepted result delivered again by its executor (its answer lost) is accepted again; another executor\'s is not', async () => {
    const b = await bench()
    const { task } = await awarded(b)
    assert.equal(b.result(task, b.cheap, 1, 'first').accepted, true)
    assert.equal(b.result(task, b.cheap, 1, 'first').accepted, true, 'the same delivery again')
    assert.equal(b.result(task, b.cheap, 1, 'changed').accepted, false, 'not another result of the same executor')
    assert.equal(b.result(task, b.dear, 1, 'other').accepted, false)
    assert.equal(b.result(task, b.cheap, 2, 'other round').accepted, false)
    const done = await b.auctioneer.wait(task)
    assert.equal(done.result?.output, 'first')
    assert.equal(b.history(task).filter(h => h === 'result-accepted').length, 1)
  })

  it('a task pinned to this node is bid on here and never gossiped', async () => {
    const b = await bench()
    const bidHere: string[] = []
    const pinned = new Auctioneer(placementSettings({ bidWindowMs: WINDOW_MS }), {
      ...b.components,
      bidHere: (announce) => { bidHere.push(announce.task) }
    })
    pinned.start()
    const { id } = await pinned.submit({ agent: new Uint8Array([0, 97, 115, 109, 1]), input: 'x', requirements: Requirements.parse({ peer: b.submitter.peerId }) })
    assert.deepEqual(bidHere, [id])
    const payload = makeBid({ task: id, submitter: b.submitter.peerId, requirements: Requirements.parse({ peer: b.submitter.peerId }), agentSize: 5 }, caps(0), true)
    await pinned.bid(b.submitter.peerId, id, b.submitter.peerId, await createBidRecord(payload, b.submitter), 'local')
    const award = await b.nextAward()
    assert.equal(award.winner, b.submitter.peerId)
    const request: ResultRequest = { t: 'result', task: id, round: 1, ok: true, output: 'x', durationMs: 1 }
    pinned.claim(b.submitter.peerId, id, 1)
    pinned.result(b.submitter.peerId, request)
    pinned.recorded(b.submitter.peerId, request, { t: 'recorded', seq: 1 }, true)
    assert.equal((await pinned.wait(id)).status, 'done')
    assert.deepEqual(b.gossip, [], 'nothing about it was gossiped')
  })

  it('remembers at most maxTasks tasks (1000), dropping the oldest ended one first', async () => {
    const b = await bench()
    const MAX = placementSettings({}).maxTasks
    assert.equal(MAX, 1000)
    const ids: TaskId[] = []
    for (let i = 0; i <= MAX; i++) {
      const { id } = await b.submit()
      ids.push(id)
      // no bid: the deadline, then the one more window a live member asked is given
      mock.timers.tick(WINDOW_MS)
      mock.timers.tick(WINDOW_MS)
      await b.auctioneer.wait(id)
    }
    assert.equal([...b.auctioneer.all()].length, MAX)
    assert.equal(b.auctioneer.get(ids[0]!), undefined, 'the oldest is forgotten')
    assert.notEqual(b.auctioneer.get(ids.at(-1)!), undefined)
  })

  it('with no bid by the deadline the task fails with NoBids', async () => {
    const b = await bench()
    const { id } = await b.submit()
    mock.timers.tick(WINDOW_MS)
    // the members asked are live: one more window first
    assert.equal(b.auctioneer.get(id)?.status, 'bidding')
    assert.deepEqual(b.history(id).slice(-1), ['deadline-extended'])
    mock.timers.tick(WINDOW_MS)
    const failed = await b.auctioneer.wait(id)
    assert.equal(failed.error?.code, 'NoBids')
  })

  it('a deadline with no bid while the members asked are live waits one more window, once; a bid then is elected', async () => {
    const b = await bench()
    const { id } = await b.submit()
    mock.timers.tick(WINDOW_MS)
    assert.deepEqual(b.history(id).filter(h => h === 'deadline-extended'), ['deadline-extended'])
    await b.bid(id, b.dear, 3)
    assert.equal(b.auctioneer.get(id)?.status, 'bidding', 'the cheap member may still bid')
    mock.timers.tick(WINDOW_MS)
    const award = await b.nextAward()
    assert.equal(award.winner, b.dear.peerId)
    assert.equal(b.history(id).filter(h => h === 'deadline-extended').length, 1, 'extended once')
    // with nobody live to wait for, the deadline closes at once
    const c = await bench()
    const { id: lone } = await c.submit()
    c.connected.clear()
    mock.timers.tick(WINDOW_MS)
    assert.equal((await c.auctioneer.wait(lone)).error?.code, 'NoBids')
    assert.equal(c.history(lone).includes('deadline-extended'), false)
  })

  it('at the deadline looks up a missing bid in the DHT, except beyond an all-to-all hive (bidsThroughDht false)', async () => {
    for (const throughDht of [true, false]) {
      const b = await bench()
      const asked: string[] = []
      const { id } = await b.submit()
      // the dear member's bid reached only the DHT
      const payload = makeBid({ task: id, submitter: b.submitter.peerId, requirements: Requirements.parse({}), agentSize: 5 }, caps(3), false)
      const record = await createBidRecord(payload, b.dear)
      b.components.lookupBid = async (_task, bidder) => {
        asked.push(bidder)
        return bidder === b.dear.peerId ? { bidder, payload, record, hash: sha256Hex(record) } : undefined
      }
      b.components.bidsThroughDht = () => throughDht
      await b.bid(id, b.cheap, 5)
      mock.timers.tick(WINDOW_MS)
      const award = await b.nextAward()
      if (throughDht) {
        assert.deepEqual(asked, [b.dear.peerId], 'the missing bid is looked up')
        assert.equal(award.winner, b.dear.peerId, 'and counts')
      } else {
        assert.deepEqual(asked, [], 'nothing is looked up')
        assert.equal(award.winner, b.cheap.peerId, 'the bids that arrived decide')
      }
    }
  })

  it(`takes live log lines only from the current winner, in order, at most ${LIVE_LOG_LIMITS.linesPerTask} lines and ${LIVE_LOG_LIMITS.bytesPerTask} bytes a task`, async () => {
    const b = await bench()
    const { task } = await awarded(b)
    b.auctioneer.claim(b.cheap.peerId, task, 1)
    const heard: Array<AuctioneerEvents['logs']> = []
    b.auctioneer.on('logs', (d) => { heard.push(d) })
    const line = (message: string): { level: string, message: string } => ({ level: 'info', message })
    const send = (from: string, n: number, lines: Array<{ level: string, message: string }>, round = 1): string => {
      const answer = b.auctioneer.logs(from, LogsRequest.parse({ t: 'logs', task, round, from: n, lines }))
      return answer.ok ? 'ok' : answer.reason
    }
    assert.equal(send(b.cheap.peerId, 1, [line('one'), line('two')]), 'ok')
    assert.deepEqual(heard, [{ task, round: 1, executor: b.cheap.peerId, from: 1, lines: [line('one'), line('two')] }])
    // not the winner, not its round, a line sent twice
    assert.equal(send(b.dear.peerId, 3, [line('forged')]), 'Lapsed')
    assert.equal(send(b.cheap.peerId, 3, [line('old round')], 2), 'Lapsed')
    assert.equal(send(b.cheap.peerId, 2, [line('again')]), 'OutOfOrder')
    // a message is bounded by its schema; a task by lines, then by bytes
    assert.equal(LogsRequest.safeParse({ t: 'logs', task, round: 1, from: 3, lines: Array.from({ length: LIVE_LOG_LIMITS.linesPerMessage + 1 }, () => line('x')) }).success, false)
    assert.equal(LogsRequest.safeParse({ t: 'logs', task, round: 1, from: LIVE_LOG_LIMITS.linesPerTask + 1, lines: [line('x')] }).success, false)
    assert.equal(send(b.cheap.peerId, LIVE_LOG_LIMITS.linesPerTask, [line('last'), line('one too many')]), 'TooManyLines')
    const big = line('x'.repeat(4096))
    let n = 3
    let answer = 'ok'
    while (answer === 'ok' && n < LIVE_LOG_LIMITS.linesPerTask) answer = send(b.cheap.peerId, n++, [big])
    assert.equal(answer, 'TooManyLines')
    assert.equal(n - 4, Math.floor((LIVE_LOG_LIMITS.bytesPerTask - 14) / (4096 + 4)), 'refused at the byte bound')
    // once the result is in, no more lines
    b.result(task, b.cheap, 1, 'out')
    assert.equal(send(b.cheap.peerId, n, [line('after')]), 'Closed')
  })
})
