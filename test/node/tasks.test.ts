// The node's executor for placed tasks: what it runs and what it gives up to another node.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { sandboxExecutor } from '../../node/executor.ts'
import { createMemoryContexts, createSandbox } from '../../sandbox/index.ts'
import { CONTEXT_ROUNDTRIP, ECHO, watAgent } from '../sandbox/fixtures.ts'
import type { TaskId } from '../../protocol/placement/index.ts'
import type { Sandbox } from '../../sandbox/index.ts'

const TASK = '0123456789abcdef0123456789abcdef' as TaskId

describe('sandbox executor on a node that grants agents only "log"', () => {
  let dir: string
  let sandbox: Sandbox

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hive-executor-'))
    sandbox = createSandbox({ cacheDir: dir, allow: ['log'], warmWorkers: 1, maxConcurrentRuns: 1 }, { contexts: createMemoryContexts() })
    await sandbox.start()
  })

  after(async () => {
    await sandbox.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('gives up, for another node, a task whose agent needs a permission this node withholds', async () => {
    const agent = await watAgent(CONTEXT_ROUNDTRIP, { permissions: ['context:read', 'context:write'] })
    const outcome = await sandboxExecutor(sandbox).run(agent, 'x', { taskId: TASK, contextId: 'c', permissions: ['context:read', 'context:write'], signal: AbortSignal.timeout(30_000) })
    assert.equal(outcome.ok, false)
    assert.equal(!outcome.ok && outcome.retry, true, 'the node gives the task up rather than failing it')
    assert.match(!outcome.ok ? outcome.error : '', /^PermissionNotOffered: .*context:read, context:write.*grants log/)
  })

  it('still fails, as the agent\'s fault, one whose manifest asks for more than the task grants', async () => {
    const agent = await watAgent(CONTEXT_ROUNDTRIP, { permissions: ['context:read', 'context:write'] })
    const outcome = await sandboxExecutor(sandbox).run(agent, 'x', { taskId: TASK, contextId: 'c', permissions: [], signal: AbortSignal.timeout(30_000) })
    assert.equal(outcome.ok, false)
    assert.notEqual(!outcome.ok && outcome.retry, true)
    assert.match(!outcome.ok ? outcome.error : '', /^PermissionNotGranted: /)
  })

  it('runs an agent that needs nothing it withholds', async () => {
    const outcome = await sandboxExecutor(sandbox).run(await watAgent(ECHO), 'hello', { taskId: TASK, permissions: ['context:read'], signal: AbortSignal.timeout(30_000) })
    assert.deepEqual(outcome.ok ? outcome.output : outcome, 'hello')
  })
})
