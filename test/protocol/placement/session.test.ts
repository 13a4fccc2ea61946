// Placement sessions (session.ts) between two real nodes: the one-shot requests to a submitter go
// on one long-lived stream, answers find their requests by id, a failed handler fails its request
// only, a session nothing is asked on for a while closes, and a peer that serves no sessions is
// asked one stream per request. A small result and its ledger confirmation go on the session too,
// a large one on a stream of its own; a confirmation that never comes is noted as such.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { MAX_AWAITED_CONFIRMATIONS, PlacementRefusedError, SESSION_RESULT_MAX_CHARS, SessionPool, newTaskId, refusal, remoteSubmitter, serveSubmitter, serveSubmitterSessions } from '../../../protocol/placement/index.ts'
import { startMesh } from '../../helpers/mesh.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { ResultRequest, SubmitterHandlers } from '../../../protocol/placement/index.ts'
import type { ServedProtocol } from '../../../protocol/wire/serve.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { Mesh } from '../../helpers/mesh.ts'

const PROTOCOL = '/hive/test-placement/1.0.0'
const SESSION = '/hive/test-placement-session/1.0.0'
const NO_SESSION = '/hive/test-placement-session-nobody-serves/1.0.0'
const LOG = { debug: () => {}, warn: () => {} }

/** A submitter that answers claims with the round it was asked for, refuses renewals and fails bids. */
function handlers (asked: string[]): SubmitterHandlers {
  return {
    bid: async () => { throw new Error('the bid handler broke') },
    claim: (from, task, round) => { asked.push(`claim ${round} from ${from}`); return { ok: true, input: `input of round ${round}`, leaseMs: 1000 + round } },
    renew: (_from, task) => refusal('UnknownTask', `task ${task} is not known here`),
    abandon: () => ({ ok: true }),
    result: () => ({ ok: true, accepted: true }),
    logs: () => ({ ok: true }),
    decline: () => ({ ok: true }),
    recorded: () => {}
  }
}

/** Counts the streams a node opens per protocol from now on. */
function countDials (node: HiveNode): { of: (protocol: string) => number, restore: () => void } {
  const libp2p = node.libp2p
  const original = libp2p.dialProtocol.bind(libp2p)
  const counts = new Map<string, number>()
  libp2p.dialProtocol = (async (peer: Parameters<typeof original>[0], protocols: Parameters<typeof original>[1], options?: Parameters<typeof original>[2]) => {
    for (const p of [protocols].flat()) counts.set(p, (counts.get(p) ?? 0) + 1)
    return original(peer, protocols, options)
  }) as typeof libp2p.dialProtocol
  return { of: (p) => counts.get(p) ?? 0, restore: () => { libp2p.dialProtocol = original } }
}

describe('placement sessions', () => {
  let mesh: Mesh
  let asker: HiveNode
  let submitter: HiveNode
  const asked: string[] = []
  const served: ServedProtocol[] = []

  before(async () => {
    mesh = await startMesh(2, { label: 'session' })
    ;[asker, submitter] = mesh.nodes as [HiveNode, HiveNode]
    served.push(await serveSubmitter(submitter.libp2p, handlers(asked), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, recordConfirmMs: 1000, log: LOG }))
    served.push(await serveSubmitterSessions(submitter.libp2p, handlers(asked), { protocol: SESSION, maxFrameBytes: 64 * 1024, log: LOG }))
  })

  after(async () => {
    for (const s of served) await s.stop()
    await mesh?.stop()
  })

  it('requests asked at once go on one stream and each gets its own answer', async () => {
    const pool = new SessionPool(asker.libp2p, { protocol: SESSION, maxFrameBytes: 64 * 1024, log: LOG })
    const dials = countDials(asker)
    try {
      const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
      const task = newTaskId()
      const answers = await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map(async round => client.claim(task, round, { signal: AbortSignal.timeout(10_000) })))
      assert.deepEqual(answers, [1, 2, 3, 4, 5, 6, 7, 8].map(round => ({ input: `input of round ${round}`, leaseMs: 1000 + round })))
      // a refusal comes back as one, on the same session
      await assert.rejects(client.renew(task, 1, { signal: AbortSignal.timeout(10_000) }), (err: Error) => err instanceof PlacementRefusedError && err.message.includes('not known'))
      assert.equal(dials.of(SESSION), 1, 'one session stream')
      assert.equal(dials.of(PROTOCOL), 0, 'no stream per request')
      assert.ok(asked.includes(`claim 8 from ${asker.peerId.toString()}`), 'the submitter knows who asked')
    } finally {
      dials.restore()
      await pool.stop()
    }
  })

  it('a request whose handler fails fails alone; the session carries the next one', async () => {
    const pool = new SessionPool(asker.libp2p, { protocol: SESSION, maxFrameBytes: 64 * 1024, log: LOG })
    const dials = countDials(asker)
    try {
      const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
      const task = newTaskId()
      await assert.rejects(client.bid(task, asker.peerId.toString(), new Uint8Array([1, 2, 3]), { signal: AbortSignal.timeout(10_000) }), /bid handler broke/)
      assert.deepEqual(await client.claim(task, 1, { signal: AbortSignal.timeout(10_000) }), { input: 'input of round 1', leaseMs: 1001 })
      assert.equal(dials.of(SESSION), 1)
    } finally {
      dials.restore()
      await pool.stop()
    }
  })

  it('a session the submitter ends fails the requests under way only; the next requests are answered without it', async () => {
    const ending = '/hive/test-placement-session-ending/1.0.0'
    const reached = Promise.withResolvers<void>()
    const neverAnswered = { ...handlers(asked), claim: () => { reached.resolve(); return new Promise<never>(() => {}) as never } }
    const ended = await serveSubmitterSessions(submitter.libp2p, neverAnswered, { protocol: ending, maxFrameBytes: 64 * 1024, log: LOG })
    const pool = new SessionPool(asker.libp2p, { protocol: ending, maxFrameBytes: 64 * 1024, log: LOG })
    const dials = countDials(asker)
    try {
      const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
      const task = newTaskId()
      // a claim the submitter never answers, then the submitter stops serving sessions
      const hanging = client.claim(task, 1, { signal: AbortSignal.timeout(30_000) })
      await reached.promise
      assert.equal(dials.of(ending), 1)
      await ended.stop()
      await assert.rejects(hanging)
      assert.deepEqual(await client.claim(task, 2, { signal: AbortSignal.timeout(10_000) }), { input: 'input of round 2', leaseMs: 1002 })
      assert.equal(dials.of(PROTOCOL), 1, 'the next request went on a stream of its own')
    } finally {
      dials.restore()
      await pool.stop()
    }
  })

  it('a session closes once idle, not while a request is under way; the next request opens another', async () => {
    const slow = '/hive/test-placement-session-idle/1.0.0'
    const IDLE_MS = 300
    const held = Promise.withResolvers<void>()
    const reached = Promise.withResolvers<void>()
    // a claim answered only when the test lets it (a handler may answer with a promise)
    const slowClaims = { ...handlers(asked), claim: (async (...args: Parameters<SubmitterHandlers['claim']>) => { reached.resolve(); await held.promise; return handlers(asked).claim(...args) }) as never }
    const servedSlow = await serveSubmitterSessions(submitter.libp2p, slowClaims, { protocol: slow, maxFrameBytes: 64 * 1024, log: LOG })
    const pool = new SessionPool(asker.libp2p, { protocol: slow, maxFrameBytes: 64 * 1024, log: LOG, idleMs: IDLE_MS })
    const dials = countDials(asker)
    const open = (node: HiveNode): number => node.libp2p.getConnections().flatMap(c => c.streams).filter(st => st.protocol === slow).length
    try {
      const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
      const task = newTaskId()
      const claim = client.claim(task, 1, { signal: AbortSignal.timeout(30_000) })
      await reached.promise
      // the request stays under way for several idle periods: the session stays
      await new Promise(resolve => setTimeout(resolve, IDLE_MS * 4))
      assert.equal(open(asker), 1, 'the session is open while its request is under way')
      held.resolve()
      assert.deepEqual(await claim, { input: 'input of round 1', leaseMs: 1001 })
      // then nothing is asked: the asker ends it, and so does the submitter
      await waitFor(() => open(asker) === 0 && open(submitter) === 0, { timeoutMs: 10_000, message: 'the idle session is closed at both ends' })
      assert.deepEqual(await client.claim(task, 2, { signal: AbortSignal.timeout(10_000) }), { input: 'input of round 2', leaseMs: 1002 })
      assert.equal(dials.of(slow), 2, 'a new session for the next request')
      assert.equal(dials.of(PROTOCOL), 0, 'no stream per request')
    } finally {
      dials.restore()
      await pool.stop()
      await servedSlow.stop()
    }
  })

  it('a peer that serves no sessions is asked one stream per request', async () => {
    const pool = new SessionPool(asker.libp2p, { protocol: NO_SESSION, maxFrameBytes: 64 * 1024, log: LOG })
    const dials = countDials(asker)
    try {
      const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
      const task = newTaskId()
      assert.deepEqual(await client.claim(task, 1, { signal: AbortSignal.timeout(10_000) }), { input: 'input of round 1', leaseMs: 1001 })
      assert.deepEqual(await client.claim(task, 2, { signal: AbortSignal.timeout(10_000) }), { input: 'input of round 2', leaseMs: 1002 })
      assert.equal(dials.of(NO_SESSION), 1, 'the session is tried once, not before every request')
      assert.equal(dials.of(PROTOCOL), 2)
    } finally {
      dials.restore()
      await pool.stop()
    }
  })

  describe('results on a session', () => {
    /** A submitter that accepts every result and tells of each confirmation it hears (null: none came in time). */
    function resultHandlers (confirmed: (entry: { from: string, task: string, seq: number | null, accepted: boolean }) => void): SubmitterHandlers {
      return {
        ...handlers(asked),
        result: (_from, request) => ({ ok: true, accepted: request.round === 1 }),
        recorded: (from, request, recorded, accepted) => { confirmed({ from, task: request.task, seq: recorded?.seq ?? null, accepted }) }
      }
    }
    const result = (task: ResultRequest['task'], output: string, round = 1): ResultRequest => ({ t: 'result', task, round, ok: true, output, durationMs: 3 })

    it('a small result and its confirmation go on the session: no stream is opened, and the submitter hears where it was recorded', async () => {
      const protocol = '/hive/test-placement-session-results/1.0.0'
      const confirmations: Array<{ from: string, task: string, seq: number | null, accepted: boolean }> = []
      const servedResults = await serveSubmitterSessions(submitter.libp2p, resultHandlers(c => confirmations.push(c)), { protocol, maxFrameBytes: 64 * 1024, log: LOG })
      const pool = new SessionPool(asker.libp2p, { protocol, maxFrameBytes: 64 * 1024, log: LOG })
      const dials = countDials(asker)
      try {
        const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
        const accepted = newTaskId()
        const discarded = newTaskId()
        const verdicts: boolean[] = []
        verdicts.push(await client.deliver(result(accepted, 'out'), async (ok) => { assert.equal(ok, true); return { t: 'recorded', seq: 41 } }, { signal: AbortSignal.timeout(10_000) }))
        // round 2 is discarded by these handlers: the executor records it so, and says so
        verdicts.push(await client.deliver(result(discarded, 'out', 2), async (ok) => { assert.equal(ok, false); return { t: 'recorded', seq: 42 } }, { signal: AbortSignal.timeout(10_000) }))
        assert.deepEqual(verdicts, [true, false])
        await waitFor(() => confirmations.length === 2, { timeoutMs: 10_000, message: 'both confirmations heard' })
        const me = asker.peerId.toString()
        assert.deepEqual(confirmations, [{ from: me, task: accepted, seq: 41, accepted: true }, { from: me, task: discarded, seq: 42, accepted: false }])
        assert.equal(dials.of(protocol), 1, 'one session')
        assert.equal(dials.of(PROTOCOL), 0, 'no stream for a result')
      } finally {
        dials.restore()
        await pool.stop()
        await servedResults.stop()
      }
    })

    it(`a result of more than ${SESSION_RESULT_MAX_CHARS} characters goes on a stream of its own`, async () => {
      const protocol = '/hive/test-placement-session-large/1.0.0'
      const servedLarge = await serveSubmitterSessions(submitter.libp2p, handlers(asked), { protocol, maxFrameBytes: 64 * 1024, log: LOG })
      const pool = new SessionPool(asker.libp2p, { protocol, maxFrameBytes: 64 * 1024, log: LOG })
      const dials = countDials(asker)
      try {
        const client = remoteSubmitter(asker.libp2p, submitter.peerId.toString(), { protocol: PROTOCOL, maxFrameBytes: 64 * 1024, sessions: pool })
        const task = newTaskId()
        // a claim opens the session; the large result still takes a stream
        await client.claim(task, 1, { signal: AbortSignal.timeout(10_000) })
        assert.equal(await client.deliver(result(task, 'x'.repeat(SESSION_RESULT_MAX_CHARS + 1)), async () => ({ t: 'recorded', seq: 7 }), { signal: AbortSignal.timeout(10_000) }), true)
        assert.equal(dials.of(protocol), 1)
        assert.equal(dials.of(PROTOCOL), 1, 'the large result went on a stream')
      } finally {
        dials.restore()
        await pool.stop()
        await servedLarge.stop()
      }
    })

    it('a result whose confirmation never comes is noted unconfirmed once its time is up; a confirmation of nothing awaited is refused', async () => {
      const protocol = '/hive/test-placement-session-unconfirmed/1.0.0'
      const confirmed = Promise.withResolvers<{ from: string, task: string, seq: number | null, accepted: boolean }>()
      const servedShort = await serveSubmitterSessions(submitter.libp2p, resultHandlers(c => { confirmed.resolve(c) }), { protocol, maxFrameBytes: 64 * 1024, log: LOG, recordConfirmMs: 200 })
      const pool = new SessionPool(asker.libp2p, { protocol, maxFrameBytes: 64 * 1024, log: LOG })
      try {
        const task = newTaskId()
        const peer = submitter.peerId.toString()
        // the result alone, as an executor that fails before it confirms would send it
        const verdict = await pool.ask(peer, result(task, 'out'), { signal: AbortSignal.timeout(10_000) })
        assert.deepEqual(verdict?.answer, { ok: true, accepted: true })
        assert.deepEqual(await confirmed.promise, { from: asker.peerId.toString(), task, seq: null, accepted: true })
        // too late, and for a result never sent: refused, and the session carries on
        const late = await pool.ask(peer, { t: 'recorded', task, round: 1, seq: 3 }, { signal: AbortSignal.timeout(10_000) })
        assert.equal((late?.answer as { reason?: string }).reason, 'UnknownTask')
        const other = await pool.ask(peer, { t: 'recorded', task: newTaskId(), round: 1, seq: 4 }, { signal: AbortSignal.timeout(10_000) })
        assert.equal((other?.answer as { reason?: string }).reason, 'UnknownTask')
      } finally {
        await pool.stop()
        await servedShort.stop()
      }
    })

    it(`at most ${MAX_AWAITED_CONFIRMATIONS} confirmations are awaited: past it, the oldest is noted unconfirmed and the rest still count`, async () => {
      const protocol = '/hive/test-placement-session-bound/1.0.0'
      const confirmations: Array<{ task: string, seq: number | null }> = []
      const servedBound = await serveSubmitterSessions(submitter.libp2p, resultHandlers(c => confirmations.push(c)), { protocol, maxFrameBytes: 64 * 1024, log: LOG, recordConfirmMs: 600_000 })
      const pool = new SessionPool(asker.libp2p, { protocol, maxFrameBytes: 64 * 1024, log: LOG })
      try {
        const peer = submitter.peerId.toString()
        const tasks = Array.from({ length: MAX_AWAITED_CONFIRMATIONS + 1 }, () => newTaskId())
        for (const task of tasks) await pool.ask(peer, result(task, 'out'), { signal: AbortSignal.timeout(10_000) })
        // one past the bound: the first result's confirmation is no longer awaited
        assert.deepEqual(confirmations.map(c => ({ task: c.task, seq: c.seq })), [{ task: tasks[0], seq: null }])
        const first = await pool.ask(peer, { t: 'recorded', task: tasks[0]!, round: 1, seq: 1 }, { signal: AbortSignal.timeout(10_000) })
        assert.equal((first?.answer as { reason?: string }).reason, 'UnknownTask')
        const second = await pool.ask(peer, { t: 'recorded', task: tasks[1]!, round: 1, seq: 2 }, { signal: AbortSignal.timeout(10_000) })
        assert.deepEqual(second?.answer, { ok: true })
        assert.deepEqual(confirmations.at(-1), { from: asker.peerId.toString(), task: tasks[1], seq: 2, accepted: true })
      } finally {
        await pool.stop()
        await servedBound.stop()
      }
    })
  })
})
