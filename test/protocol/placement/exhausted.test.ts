// When every bidder gives a task up, the task fails saying why each one did: the reason they
// share is what the person submitting it has to change.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startMesh } from '../../helpers/mesh.ts'
import { waitFor } from '../../helpers/wait.ts'
import { echoAgent } from './fixture.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { Mesh } from '../../helpers/mesh.ts'

describe('a task every bidder gives up', () => {
  let mesh: Mesh

  before(async () => {
    // the second device takes agents of at most 100 bytes: it bids, wins, and cannot fetch it
    mesh = await startMesh(2, {
      label: 'exhausted',
      init: (i) => ({
        capabilities: { intervalMs: 2_000, expireMs: 7_000, ollamaUrl: null },
        placement: { bidWindowMs: 10_000, leaseMs: 5_000, ...(i === 1 ? { maxAgentBytes: 100 } : {}) }
      })
    })
    const all = mesh.nodes.map(n => n.peerId.toString()).sort().join()
    for (const node of mesh.nodes) {
      await waitFor(() => node.capabilities.view().map(e => e.peerId).join() === all, { message: `${node.name} sees both devices`, timeoutMs: 60_000 })
    }
  })

  after(async () => {
    await mesh?.stop()
  })

  it('fails BiddersExhausted with each bidder\'s reason', async () => {
    const [submitter, small] = mesh.nodes as [HiveNode, HiveNode]
    const task = await submitter.placement.submit({ agent: await echoAgent('too-big-for-one'), input: 'x', requirements: { peer: small.peerId.toString() } })
    const ended = await submitter.placement.wait(task.id)
    assert.equal(ended.status, 'failed')
    assert.equal(ended.error?.code, 'BiddersExhausted')
    assert.ok(ended.history.some(h => h.type === 'abandoned' && h.peer === small.peerId.toString()), JSON.stringify(ended.history.map(h => h.type)))
    assert.match(ended.error?.message ?? '', new RegExp(`${small.peerId.toString()} gave the task up: .*100`), 'the error carries the bidder\'s own reason')
  })
})
