// The tasks a device submitted outlive its node: after a restart `GET /task/:id`, `/tasks` and
// `/task/:id/explain` still answer, and a task cut off by the stop is reported as interrupted.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { echoAgent, spinAgent } from '../protocol/placement/fixture.ts'
import type { Explanation, TaskView } from '../../protocol/placement/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'

const INIT = {
  capabilities: { intervalMs: 2_000, expireMs: 7_000, ollamaUrl: null },
  placement: { bidWindowMs: 10_000, leaseMs: 5_000 }
}

async function api<T> (node: HiveNode, path: string): Promise<{ status: number, body: T }> {
  const response = await fetch(node.apiUrl + path)
  return { status: response.status, body: await response.json() as T }
}

describe('tasks archive: what a device submitted survives its node', () => {
  let dir: string
  let node: HiveNode | undefined
  const open = async (): Promise<HiveNode> => {
    node = await startNode('archive', INIT, dir)
    return node
  }

  before(async () => {
    dir = await makeTempDir()
  })

  after(async () => {
    await node?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('a finished task keeps its result, place in the list and explanation across a restart', async () => {
    const first = await open()
    const submitted = await first.placement.submit({ agent: await echoAgent('archived'), input: 'kept on disk' })
    const done = await first.placement.wait(submitted.id)
    assert.equal(done.status, 'done', JSON.stringify(done.error))
    const explained = await first.placement.explain(done.id)
    await first.stop()

    const again = await open()
    assert.equal(again.placement.get(done.id), undefined, 'placement itself starts empty')
    const { status, body } = await api<{ task: TaskView }>(again, `/task/${done.id}`)
    assert.equal(status, 200)
    assert.equal(body.task.status, 'done')
    assert.equal(body.task.result?.output, 'kept on disk')
    assert.equal(body.task.result?.executor, again.peerId.toString())
    assert.deepEqual(body.task.history.map(h => h.type), done.history.map(h => h.type))
    const listed = await api<{ tasks: TaskView[] }>(again, '/tasks')
    assert.ok(listed.body.tasks.some(t => t.id === done.id && t.status === 'done'), '/tasks lists it')
    const why = await api<{ explanation: Explanation, text: string }>(again, `/task/${done.id}/explain`)
    assert.equal(why.status, 200)
    assert.equal(why.body.explanation.winner, explained.winner)
    assert.deepEqual(why.body.explanation.bids.map(b => b.bidder), explained.bids.map(b => b.bidder))
    await again.stop()
  })

  it('a task under way when the node stops is reported interrupted at the next start', async () => {
    const first = await open()
    const submitted = await first.placement.submit({ agent: await spinAgent('cut-off', 0x7fffffff), input: 'never finishes here' })
    await waitFor(() => first.placement.get(submitted.id)?.status === 'running', { message: 'the task runs', timeoutMs: 60_000 })
    const stopping = first.placement.wait(submitted.id).catch((err: Error) => err)
    await first.stop()
    assert.equal((await stopping as Error).name, 'PlacementNotRunning')

    const again = await open()
    const { body } = await api<{ task: TaskView }>(again, `/task/${submitted.id}`)
    assert.equal(body.task.status, 'failed')
    assert.equal(body.task.error?.code, 'Interrupted')
    assert.equal(body.task.history.at(-1)?.type, 'failed')
    // an unknown id is still a 404 with its own code
    const missing = await api<{ error: { code: string } }>(again, `/task/${'0'.repeat(32)}`)
    assert.deepEqual([missing.status, missing.body.error.code], [404, 'TaskNotFound'])
  })
})
