// The winner's role on its own: a Runner with a stub submitter, executor and ledger. What it
// claims, runs, delivers and records, and what passes from the executor's outcome into the
// ledger record.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LIVE_LOG_LIMITS, PlacementRefusedError, Runner, newTaskId, placementSettings, sha256Hex } from '../../../protocol/placement/index.ts'
import { createAgentStore } from '../../../protocol/agents/index.ts'
import type { AwardPayload, ExecutionOutcome, ExecutionRecord, LogsRequest, PlacementInit, ResultRequest, SubmitterClient } from '../../../protocol/placement/index.ts'
import type { LlmUsage } from '../../../protocol/llm/types.ts'

const SELF = '12D3KooWRunnerSelf'
const SUBMITTER = '12D3KooWRunnerSubmitter'

type Append = NonNullable<ConstructorParameters<typeof Runner>[1]['ledger']>['append']

async function runOnce (outcome: ExecutionOutcome, init: PlacementInit = {}, deliver?: SubmitterClient['deliver'], append?: Append): Promise<{ record: ExecutionRecord, delivered: ResultRequest, ended: unknown, appends: number }> {
  const agents = createAgentStore({ maxBytes: 1024 * 1024 })
  const agent = agents.put(new Uint8Array([0, 97, 115, 109, 1]))
  const task = newTaskId()
  const appended = Promise.withResolvers<ExecutionRecord>()
  let delivered: ResultRequest | undefined
  let appends = 0
  const client: SubmitterClient = {
    bid: async () => ({ ok: true }),
    claim: async () => ({ input: 'the input', leaseMs: 5_000 }),
    renew: async () => ({ leaseMs: 5_000 }),
    abandon: async () => {},
    deliver: deliver != null
      ? async (request, record, options) => { delivered = request; return deliver(request, record, options) }
      : async (request, record) => {
        delivered = request
        await record(true)
        return true
      }
  }
  const runner = new Runner(placementSettings(init), {
    self: SELF,
    agents,
    fetchAgent: async () => { throw new Error('the agent is held here') },
    executor: { run: async (_agent, input) => { assert.equal(input, 'the input'); return outcome } },
    ledger: {
      append: async (record, options) => {
        appends++
        appended.resolve(record)
        return append != null ? append(record, options) : { seq: 3, hash: 'ab' }
      }
    },
    submitterFor: (peer) => { assert.equal(peer, SUBMITTER); return client },
    log: { debug: () => {}, warn: () => {} }
  })
  runner.start()
  const ended = new Promise(resolve => { runner.on('run-end', resolve) })
  const award: AwardPayload = {
    v: 1, task, submitter: SUBMITTER, round: 1, winner: SELF, cost: 1, rule: 'r', bids: [{ bidder: SELF, cost: 1, hash: sha256Hex('b') }],
    excluded: [], agent, input: sha256Hex('the input'), leaseMs: 5_000
  }
  runner.onAward(award, undefined)
  const record = await appended.promise
  const end = await ended
  runner.stop(new Error('done'))
  return { record, delivered: delivered!, ended: end, appends }
}

describe('the runner', () => {
  it('a result delivered again after its answer was lost is recorded once, as accepted', async () => {
    let attempts = 0
    const { record, ended, appends } = await runOnce({ ok: true, output: 'out' }, {}, async (_request, recordIt) => {
      attempts++
      // the first attempt records, then its last leg is lost on the way; the submitter answers
      // the same delivery "accepted" again
      await recordIt(true)
      if (attempts === 1) throw new Error('the stream was reset')
      return true
    })
    assert.equal(attempts, 2)
    assert.equal(appends, 1, 'one ledger record for one run')
    assert.equal(record.status, 'ok')
    assert.equal((ended as { sent: boolean, accepted: boolean }).accepted, true)
  })

  it('a record whose append outlasts the delivery attempt is appended all the same, once', { timeout: 20_000 }, async () => {
    let attempts = 0
    let attempt: AbortSignal | undefined
    const { record, ended, appends } = await runOnce({ ok: true, output: 'out' }, { recordConfirmMs: 50 }, async (_request, recordIt, { signal }) => {
      attempts++
      attempt = signal
      await recordIt(true)
      // the attempt's time ran out while the record was appended: the submitter no longer
      // listens, so it is tried again, and answered "accepted" again
      signal?.throwIfAborted()
      return true
    }, async (_record, options) => {
      // a busy device's append: still waiting for its chain when the attempt's time is up
      if (attempt?.aborted !== true) await new Promise(resolve => attempt?.addEventListener('abort', resolve, { once: true }))
      // the store drops an append whose signal ended before its batch began
      options?.signal?.throwIfAborted()
      return { seq: 3, hash: 'ab' }
    })
    assert.equal(attempts, 2)
    assert.equal(appends, 1, 'one ledger record for one run')
    assert.equal(record.status, 'ok')
    assert.deepEqual(ended, { task: record.task, round: 1, sent: true, accepted: true })
  })

  it('a cancelled run whose record waits long for its chain is recorded all the same', { timeout: 30_000 }, async () => {
    const agents = createAgentStore({ maxBytes: 1024 * 1024 })
    const agent = agents.put(new Uint8Array([0, 97, 115, 109, 1]))
    const task = newTaskId()
    const running = Promise.withResolvers<void>()
    const client: SubmitterClient = {
      bid: async () => ({ ok: true }),
      claim: async () => ({ input: 'the input', leaseMs: 60_000 }),
      renew: async () => ({ leaseMs: 60_000 }),
      abandon: async () => {},
      deliver: async () => { throw new Error('a cancelled run sends no result') }
    }
    const runner = new Runner(placementSettings({ recordConfirmMs: 50 }), {
      self: SELF,
      agents,
      fetchAgent: async () => { throw new Error('the agent is held here') },
      executor: {
        run: async (_agent, _input, { signal }) => {
          running.resolve()
          await new Promise(resolve => signal?.addEventListener('abort', resolve, { once: true }))
          return { ok: false, error: 'stopped' }
        }
      },
      ledger: {
        append: async (_record, options) => {
          // a busy device's append: its turn on the chain comes past the record confirm time
          // and 10 s, the bound a cancelled run's record had
          await new Promise(resolve => setTimeout(resolve, 10_300))
          options?.signal?.throwIfAborted()
          return { seq: 7, hash: 'cd' }
        }
      },
      submitterFor: () => client,
      log: { debug: () => {}, warn: () => {} }
    })
    runner.start()
    const ended = new Promise(resolve => { runner.on('run-end', resolve) })
    runner.onAward({
      v: 1, task, submitter: SUBMITTER, round: 1, winner: SELF, cost: 1, rule: 'r', bids: [{ bidder: SELF, cost: 1, hash: sha256Hex('b') }],
      excluded: [], agent, input: sha256Hex('the input'), leaseMs: 60_000
    }, undefined)
    await running.promise
    assert.deepEqual(runner.cancel(SUBMITTER, task, 1, 'no longer needed'), { ok: true })
    await ended
    runner.stop(new Error('done'))
    assert.deepEqual(runner.cancelledRuns.get(task)?.ledger, { seq: 7, hash: 'cd' })
  })

  it('passes the model calls an agent made into its ledger record, and nothing when it made none', async () => {
    const llm: LlmUsage[] = [{ route: 'local', calls: 2, tokensIn: 40, tokensOut: 12 }]
    const withCalls = await runOnce({ ok: true, output: 'answer', llm })
    assert.deepEqual(withCalls.record.llm, llm)
    assert.equal(withCalls.record.status, 'ok')
    assert.equal(withCalls.record.output, sha256Hex('answer'))
    assert.equal(withCalls.delivered.output, 'answer')
    assert.deepEqual(withCalls.ended, { task: withCalls.record.task, round: 1, sent: true, accepted: true })

    const without = await runOnce({ ok: true, output: 'plain' })
    assert.equal('llm' in without.record, false)
    const failed = await runOnce({ ok: false, error: 'boom', llm })
    assert.equal(failed.record.status, 'error')
    assert.deepEqual(failed.record.llm, llm)
  })
})

describe('what a result carries back', () => {
  it('the first 200 of the agent\'s log lines, each trimmed to 4096 characters', async () => {
    const logs = Array.from({ length: 300 }, (_, i) => ({ level: 'info', message: i === 0 ? 'x'.repeat(5000) : `line ${i}` }))
    const { delivered } = await runOnce({ ok: true, output: 'out', logs })
    assert.equal(delivered.logs?.length, 200)
    assert.equal(delivered.logs?.[0]?.message.length, 4096)
    assert.equal(delivered.logs?.[199]?.message, 'line 199')
  })

  it('an output over maxOutputBytes fails the task saying so, instead of sending it', async () => {
    assert.equal(placementSettings({}).maxOutputBytes, 4 * 1024 * 1024)
    const { delivered, record } = await runOnce({ ok: true, output: 'y'.repeat(65) }, { maxOutputBytes: 64 })
    assert.equal(delivered.ok, false)
    assert.equal(delivered.output, undefined)
    assert.equal(delivered.error, 'the agent\'s output exceeds 64 bytes')
    assert.equal(record.status, 'error')
    const fits = await runOnce({ ok: true, output: 'y'.repeat(64) }, { maxOutputBytes: 64 })
    assert.equal(fits.delivered.output, 'y'.repeat(64))
  })
})

describe('a runner whose ledger cannot take a record', () => {
  it('gives an award up with the ledger\'s reason, before claiming or running anything', async () => {
    const agents = createAgentStore({ maxBytes: 1024 * 1024 })
    const agent = agents.put(new Uint8Array([0, 97, 115, 109, 1]))
    const task = newTaskId()
    const calls: string[] = []
    const abandoned = Promise.withResolvers<string>()
    const client: SubmitterClient = {
      bid: async () => ({ ok: true }),
      claim: async () => { calls.push('claim'); return { input: 'x', leaseMs: 5_000 } },
      renew: async () => ({ leaseMs: 5_000 }),
      abandon: async (_task, _round, reason) => { abandoned.resolve(reason) },
      deliver: async () => { calls.push('deliver'); return true }
    }
    const damaged = Object.assign(new Error('this device\'s ledger chain is damaged (bad-signature at seq 1: …)'), { name: 'LedgerDamaged' })
    const runner = new Runner(placementSettings({}), {
      self: SELF,
      agents,
      fetchAgent: async () => { throw new Error('the agent is held here') },
      executor: { run: async () => { calls.push('run'); return { ok: true, output: 'ran' } } },
      ledger: { append: async () => { calls.push('append'); return { seq: 0 } }, unwritable: () => damaged },
      submitterFor: () => client,
      log: { debug: () => {}, warn: () => {} }
    })
    runner.start()
    const ended = new Promise<unknown>(resolve => { runner.on('run-end', resolve) })
    try {
      runner.onAward({
        v: 1, task, submitter: SUBMITTER, round: 1, winner: SELF, cost: 1, rule: 'r', bids: [{ bidder: SELF, cost: 1, hash: sha256Hex('b') }],
        excluded: [], agent, input: sha256Hex('x'), leaseMs: 5_000
      }, undefined)
      const end = await ended as { sent: boolean, reason?: string }
      assert.equal(end.sent, false, 'no result was sent')
      assert.match(end.reason ?? '', /damaged/)
      assert.match(await abandoned.promise, /^LedgerDamaged: .*damaged/)
      assert.deepEqual(calls, [], 'nothing claimed, run, delivered or appended')
    } finally {
      runner.stop(new Error('done'))
    }
  })
})

describe('a runner streaming an agent\'s log lines to a submitter on another device', () => {
  async function stream (count: number, message: (i: number) => string, self = SELF, submitter = SUBMITTER, fail?: Error): Promise<{ sent: LogsRequest[], order: string[] }> {
    const agents = createAgentStore({ maxBytes: 1024 * 1024 })
    const agent = agents.put(new Uint8Array([0, 97, 115, 109, 1]))
    const task = newTaskId()
    const sent: LogsRequest[] = []
    const order: string[] = []
    const client: SubmitterClient = {
      bid: async () => ({ ok: true }),
      claim: async () => ({ input: 'x', leaseMs: 5_000 }),
      renew: async () => ({ leaseMs: 5_000 }),
      abandon: async () => {},
      deliver: async (_request, record) => { order.push('result'); await record(true); return true },
      // one message at a time: the lines logged while one is on its way go in the next
      logs: async (request) => {
        sent.push(request)
        order.push('logs')
        await new Promise(resolve => setImmediate(resolve))
        if (fail != null) throw fail
      }
    }
    const runner = new Runner(placementSettings({}), {
      self,
      agents,
      fetchAgent: async () => { throw new Error('the agent is held here') },
      executor: {
        run: async (_agent, _input, { onLog }) => {
          for (let i = 0; i < count; i++) onLog?.({ level: 'info', message: message(i) })
          return { ok: true, output: 'done' }
        }
      },
      submitterFor: () => client,
      log: { debug: () => {}, warn: () => {} }
    })
    runner.start()
    const ended = new Promise(resolve => { runner.on('run-end', resolve) })
    runner.onAward({
      v: 1, task, submitter, round: 1, winner: self, cost: 1, rule: 'r', bids: [{ bidder: self, cost: 1, hash: sha256Hex('b') }],
      excluded: [], agent, input: sha256Hex('x'), leaseMs: 5_000
    }, undefined)
    await ended
    runner.stop(new Error('done'))
    return { sent, order }
  }

  it(`sends the lines in order, batched, at most ${LIVE_LOG_LIMITS.linesPerMessage} a message and ${LIVE_LOG_LIMITS.linesPerTask} a task, all before the result`, async () => {
    const { sent, order } = await stream(LIVE_LOG_LIMITS.linesPerTask + 500, i => `line ${i + 1}`)
    assert.ok(sent.length > 1 && sent.length < LIVE_LOG_LIMITS.linesPerTask, `batched: ${sent.length} messages`)
    const lines = sent.flatMap(r => r.lines.map(l => l.message))
    assert.equal(lines.length, LIVE_LOG_LIMITS.linesPerTask)
    assert.deepEqual(lines, Array.from({ length: LIVE_LOG_LIMITS.linesPerTask }, (_, i) => `line ${i + 1}`))
    let next = 1
    for (const r of sent) {
      assert.ok(r.lines.length <= LIVE_LOG_LIMITS.linesPerMessage)
      assert.equal(r.from, next)
      next += r.lines.length
    }
    assert.equal(order.at(-1), 'result')
    assert.equal(order.indexOf('result'), sent.length)
  })

  it(`stops at ${LIVE_LOG_LIMITS.bytesPerTask} bytes a task`, async () => {
    const { sent } = await stream(200, () => 'y'.repeat(4096))
    const bytes = sent.flatMap(r => r.lines).reduce((n, l) => n + l.message.length + l.level.length, 0)
    assert.ok(bytes <= LIVE_LOG_LIMITS.bytesPerTask)
    assert.ok(bytes > LIVE_LOG_LIMITS.bytesPerTask - 4200, `it sent up to the bound: ${bytes}`)
  })

  it('stops streaming after a message fails (refused or out of reach), and the result still goes', async () => {
    for (const fail of [new PlacementRefusedError('Lapsed', 'round 1 is over'), new Error('the submitter is out of reach')]) {
      const { sent, order } = await stream(500, i => `line ${i}`, SELF, SUBMITTER, fail)
      assert.equal(sent.length, 1, fail.message)
      assert.deepEqual(order, ['logs', 'result'])
    }
  })

  it('sends nothing when it runs its own task (its lines reach its own event stream)', async () => {
    const { sent, order } = await stream(5, i => `line ${i}`, SELF, SELF)
    assert.deepEqual(sent, [])
    assert.deepEqual(order, ['result'])
  })
})
