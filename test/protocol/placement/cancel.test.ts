// Cancelling a task on real nodes: the submitter tells the winner, whose worker is terminated at
// once; the winner records `cancelled` in its ledger; a result that comes afterwards is
// discarded and the history says so. Only the submitter cancels; an ended task cannot be.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { PLACEMENT_PROTOCOL, ResultResponse } from '../../../protocol/placement/index.ts'
import { dialFramed } from '../../../protocol/wire/serve.ts'
import { ENDLESS_LOOP, watAgent } from '../../sandbox/fixtures.ts'
import { waitFor } from '../../helpers/wait.ts'
import { startHive } from './fixture.ts'
import type { PlacementEvents, TaskView } from '../../../protocol/placement/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { TestHive } from './fixture.ts'

const id = (node: HiveNode): string => node.peerId.toString()

/** Resolves with the first `event` of a node's placement that passes `filter`. */
async function placementEvent<K extends keyof PlacementEvents & string> (node: HiveNode, type: K, filter: (detail: PlacementEvents[K]) => boolean, timeoutMs = 30_000): Promise<PlacementEvents[K]> {
  const { promise, resolve, reject } = Promise.withResolvers<PlacementEvents[K]>()
  const off = node.placement.on(type, (detail) => { if (filter(detail)) resolve(detail) })
  const timer = setTimeout(() => { reject(new Error(`no ${type} on ${node.name} within ${timeoutMs} ms`)) }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
    off()
  }
}

describe('cancelling a task', () => {
  let hive: TestHive
  let a: HiveNode
  let b: HiveNode
  let c: HiveNode
  let endless: Uint8Array

  before(async () => {
    hive = await startHive(3)
    ;[a, b, c] = hive.nodes as [HiveNode, HiveNode, HiveNode]
    endless = await watAgent(ENDLESS_LOOP, { name: 'endless', limits: { timeoutMs: 600_000, memoryMiB: 1 } })
  })

  after(async () => { await hive.stop() })

  it('stops an endless agent running on another device, records it cancelled there, and discards a late result', async () => {
    const started = placementEvent(b, 'run-start', () => true)
    const task = await a.placement.submit({ agent: endless, input: 'forever', requirements: { peer: id(b) } })
    await started

    // only the submitter cancels: another member is told which device to ask
    await waitFor(() => c.placement.get(task.id), { message: 'the third device saw the task' })
    await assert.rejects(c.placement.cancel(task.id), (err: Error) => {
      assert.equal(err.name, 'NotSubmitter')
      assert.match(err.message, new RegExp(`submitted on ${a.name} \\(${id(a)}\\)`))
      assert.match(err.message, /hive-node cancel/)
      return true
    })

    const stopped = placementEvent(b, 'run-end', (e) => e.task === task.id)
    const cancelled = await a.placement.cancel(task.id)
    assert.equal(cancelled.status, 'cancelled')
    assert.equal(cancelled.error?.code, 'Cancelled')
    const end = await stopped
    assert.equal(end.cancelled, true)
    assert.equal(end.sent, false)
    assert.match(end.reason ?? '', /cancelled by its submitter/)
    assert.equal(b.placement.running(), 0)

    const records = (await b.ledger.list()).filter(l => l.record?.task === task.id)
    assert.equal(records.length, 1, 'one ledger record for the run')
    assert.equal(records[0]?.record?.status, 'cancelled')
    assert.equal((await a.ledger.list()).filter(l => l.record?.task === task.id).length, 0, 'nothing recorded on the submitter')

    await waitFor(() => a.placement.get(task.id)?.history.some(h => h.type === 'cancelled' && h.detail.includes('stopped its run')), { message: 'the submitter notes the winner stopped' })
    assert.equal(b.placement.get(task.id)?.status, 'cancelled', 'the device that ran it shows it cancelled')

    // a result after the cancel (as a winner that did not hear it would send) is discarded
    const stream = await dialFramed(b.libp2p, peerIdFromString(id(a)), PLACEMENT_PROTOCOL, { maxMessageBytes: 1 << 20 })
    await stream.write({ t: 'result', task: task.id, round: cancelled.round, ok: true, output: 'late', durationMs: 5 })
    const verdict = await stream.read(ResultResponse)
    stream.abort(new Error('done'))
    assert.deepEqual(verdict.ok && verdict.accepted, false)
    const after = a.placement.get(task.id) as TaskView
    assert.equal(after.status, 'cancelled')
    assert.equal(after.result, undefined)
    assert.ok(after.history.some(h => h.type === 'late-result' && /cancelled/.test(h.detail)), 'the history says the late result was discarded')

    await assert.rejects(a.placement.cancel(task.id), { name: 'TaskAlreadyEnded' })
    await assert.rejects(a.placement.cancel('0'.repeat(32)), { name: 'TaskNotFound' })
  })

  it('cancels a task still bidding before it is awarded', async () => {
    // no device holds this model: nobody bids, the auction waits for its deadline
    const task = await a.placement.submit({ agent: endless, input: 'never', requirements: { models: ['no-such-model'] }, bidWindowMs: 60_000 })
    assert.equal(task.status, 'bidding')
    const cancelled = await a.placement.cancel(task.id)
    assert.equal(cancelled.status, 'cancelled')
    assert.equal(cancelled.round, 0, 'never awarded')
    const waited = await a.placement.wait(task.id)
    assert.equal(waited.status, 'cancelled')
    assert.ok(waited.history.some(h => h.type === 'cancelled' && /while bidding/.test(h.detail)))
  })
})
