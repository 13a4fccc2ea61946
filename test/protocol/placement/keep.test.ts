// The submitter keeps an accepted result before the winner hears "accepted" (and so before the
// winner appends its `ok` ledger record): what a workflow relies on to never run a step twice.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { localSubmitter } from '../../../protocol/placement/index.ts'
import type { ResultRequest, SubmitterHandlers, TaskId } from '../../../protocol/placement/index.ts'

const TASK = 'a'.repeat(32) as TaskId

function handlers (accepted: boolean, kept: () => Promise<void>): SubmitterHandlers {
  const unused = (): never => { throw new Error('not used here') }
  return {
    bid: unused,
    claim: unused,
    renew: unused,
    abandon: unused,
    logs: unused,
    decline: unused,
    result: () => ({ ok: true, accepted }),
    kept: async () => { await kept() },
    recorded: () => {}
  }
}

const request: ResultRequest = { t: 'result', task: TASK, round: 1, ok: true, output: 'out', durationMs: 1 }

describe('keeping an accepted result', () => {
  it('the winner records its run only once the submitter has kept the result', async () => {
    const order: string[] = []
    const { promise: keptLater, resolve } = Promise.withResolvers<void>()
    const client = localSubmitter(handlers(true, async () => { order.push('keeping'); await keptLater; order.push('kept') }), 'self')
    const delivered = client.deliver(request, async (accepted) => { order.push(`recorded ${accepted ? 'ok' : 'discarded'}`); return { t: 'recorded', seq: 1 } }, {})
    await new Promise(setImmediate)
    assert.deepEqual(order, ['keeping'], 'nothing is recorded while the result is being kept')
    resolve()
    assert.equal(await delivered, true)
    assert.deepEqual(order, ['keeping', 'kept', 'recorded ok'])
  })

  it('a result for a task not held here is accepted when it was kept before a restart, and refused otherwise', async () => {
    const unknown = { ok: false as const, reason: 'UnknownTask', message: 'not submitted here' }
    const asked: string[] = []
    const submitter = (keptBefore: boolean): SubmitterHandlers => ({
      ...handlers(false, async () => { throw new Error('nothing is kept again') }),
      result: () => unknown,
      keptBefore: async (from, r) => { asked.push(`${from} ${r.task} ${r.output ?? ''}`); return keptBefore }
    })
    const recorded: string[] = []
    const record = async (accepted: boolean): Promise<{ t: 'recorded', seq: number }> => { recorded.push(accepted ? 'ok' : 'discarded'); return { t: 'recorded', seq: 1 } }
    assert.equal(await localSubmitter(submitter(true), 'winner').deliver(request, record, {}), true)
    assert.equal(await localSubmitter(submitter(false), 'winner').deliver(request, record, {}), false)
    assert.deepEqual(recorded, ['ok', 'discarded'])
    assert.deepEqual(asked, [`winner ${TASK} out`, `winner ${TASK} out`])
  })

  it('only a task not held here is looked up among results kept before a restart', async () => {
    let asked = 0
    for (const verdict of [{ ok: true as const, accepted: true }, { ok: true as const, accepted: false }, { ok: false as const, reason: 'Lapsed', message: 'lapsed' }]) {
      const client = localSubmitter({ ...handlers(true, async () => {}), result: () => verdict, keptBefore: async () => { asked++; return true } }, 'self')
      assert.equal(await client.deliver(request, async () => ({ t: 'recorded', seq: 1 }), {}), verdict.ok && verdict.accepted)
    }
    assert.equal(asked, 0)
  })

  it('a discarded result is not kept', async () => {
    let kept = 0
    const client = localSubmitter(handlers(false, async () => { kept++ }), 'self')
    assert.equal(await client.deliver(request, async () => ({ t: 'recorded', seq: 1 }), {}), false)
    assert.equal(kept, 0)
  })
})
