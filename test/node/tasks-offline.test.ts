// `hive-node tasks` and `task` answer with the node stopped, from the data directory, as
// `ledger` and `verify` do; a task the stop cut off shows as interrupted, and nothing is written.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { main } from '../../node/cli.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { echoAgent } from '../protocol/placement/fixture.ts'
import type { TaskView } from '../../protocol/placement/index.ts'

async function cli (...args: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(args, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

describe('tasks with the node stopped', () => {
  let dir: string
  let taskId: string

  before(async () => {
    dir = await makeTempDir()
    const node = await startNode('offline', { capabilities: { intervalMs: 2_000, expireMs: 7_000, ollamaUrl: null } }, dir)
    try {
      const submitted = await node.placement.submit({ agent: await echoAgent('offline'), input: 'read me later' })
      const done = await node.placement.wait(submitted.id)
      assert.equal(done.status, 'done', JSON.stringify(done.error))
      taskId = done.id
    } finally {
      await node.stop()
    }
  })

  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('tasks lists what the device submitted, and says it read the data directory', async () => {
    const shown = await cli('--data', dir, 'tasks')
    assert.equal(shown.code, 0, shown.err)
    assert.match(shown.out, new RegExp(`${taskId} +done`))
    assert.match(shown.out, /the node is stopped: read from its data directory/)
    const json = JSON.parse((await cli('--data', dir, 'tasks', '--json')).out) as { tasks: TaskView[] }
    assert.ok(json.tasks.some(t => t.id === taskId && t.status === 'done'))
  })

  it('task ID shows the result; an unknown id is a clear error', async () => {
    const shown = JSON.parse((await cli('--data', dir, 'task', taskId, '--json')).out) as { task: TaskView }
    assert.equal(shown.task.result?.output, 'read me later')
    // devices by name, from the member list in the data directory
    const text = await cli('--data', dir, 'task', taskId)
    assert.match(text.out, /submitted .* by offline\n/)
    assert.match(text.out, /ran on +offline in /)
    assert.match((await cli('--data', dir, 'tasks')).out, new RegExp(`${taskId} +done +.+? ago +offline +offline `))
    const missing = await cli('--data', dir, 'task', 'f'.repeat(32))
    assert.equal(missing.code, 2)
    assert.match(missing.err, /no task f{32} in the tasks this device submitted/)
  })

  it('a data directory no node ever used says so', async () => {
    const empty = await makeTempDir()
    try {
      const result = await cli('--data', empty, 'tasks')
      assert.equal(result.code, 1)
      assert.match(result.err, /no tasks in .*: no node has run with this data directory/)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })
})
