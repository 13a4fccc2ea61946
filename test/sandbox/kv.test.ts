// The hive:agent/kv host interface through a tiny WAT agent: get, set, delete, list (prefix,
// bounded), the store keyed by the agent's name (not its context), and each denial.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { KV_LIMITS, createMemoryKv, createSandbox } from '../../sandbox/index.ts'
import { KV_AGENT, tempDir, watAgent } from './fixtures.ts'
import type { Sandbox } from '../../sandbox/index.ts'

describe('kv host interface', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox
  const kv = createMemoryKv()

  before(async () => {
    dir = await tempDir()
    sandbox = createSandbox({ cacheDir: dir.path, warmWorkers: 1 }, { kv })
    await sandbox.start()
  })

  after(async () => {
    await sandbox.stop()
    await dir.remove()
  })

  const run = async (agent: Uint8Array, input: string, contextId?: string): Promise<string> =>
    (await sandbox.run(agent, { input, ...(contextId !== undefined ? { contextId } : {}) })).output

  it('sets, gets, deletes and lists by prefix, bounded by the limit asked', async () => {
    const agent = await watAgent(KV_AGENT, { name: 'notes', permissions: ['kv:read', 'kv:write'] })
    for (const k of ['page/b', 'page/a', 'page/c', 'other']) assert.equal(await run(agent, `s ${k} v-${k}`), '')
    assert.equal(await run(agent, 'g page/a'), 'v-page/a')
    assert.equal(await run(agent, 'g missing'), '<none>')
    assert.equal(await run(agent, 'l page/ xxx'), 'page/a,page/b,page/c')
    assert.equal(await run(agent, 'l page/ xx'), 'page/a,page/b', 'the limit is the value\'s length here: 2')
    assert.equal(await run(agent, 'l nothing xx'), '')
    assert.equal(await run(agent, 'd page/b'), '1')
    assert.equal(await run(agent, 'd page/b'), '0')
    assert.equal(await run(agent, 'l page/ xxx'), 'page/a,page/c')
  })

  it('one store per agent name, whatever the context; another agent has its own', async () => {
    const writer = await watAgent(KV_AGENT, { name: 'shared-name', version: '1.0.0', permissions: ['kv:read', 'kv:write'] })
    const reader = await watAgent(KV_AGENT, { name: 'shared-name', version: '2.0.0', permissions: ['kv:read', 'kv:write'] })
    const stranger = await watAgent(KV_AGENT, { name: 'stranger', permissions: ['kv:read', 'kv:write'] })
    await run(writer, 's seen yes', 'ctx-1')
    assert.equal(await run(reader, 'g seen', 'ctx-2'), 'yes', 'a new version of the agent reads what the old one wrote')
    assert.equal(await run(stranger, 'g seen'), '<none>')
    assert.deepEqual([...kv.stores.keys()].filter(k => k.startsWith('s')).sort(), ['shared-name', 'stranger'])
  })

  it('refuses, before running, an agent importing kv without kv:read / kv:write', async () => {
    for (const permissions of [[], ['kv:read']] as const) {
      await assert.rejects(sandbox.load(await watAgent(KV_AGENT, { permissions: [...permissions] })), (err: Error & { importName?: string }) => {
        assert.equal(err.name, 'ImportNotGranted')
        assert.match(err.message, permissions.length === 0 ? /needs permission "kv:read"/ : /needs permission "kv:write"/)
        return true
      })
    }
  })

  it('a sandbox without a kv store grants no kv', async () => {
    const d = await tempDir()
    const bare = createSandbox({ cacheDir: d.path, prestartWorkers: false })
    await bare.start()
    try {
      assert.ok(!bare.runtime().permissions.includes('kv:read'))
      await assert.rejects(bare.load(await watAgent(KV_AGENT, { permissions: ['kv:read', 'kv:write'] })), /this node does not grant "kv:read"/)
    } finally {
      await bare.stop()
      await d.remove()
    }
  })

  it('bounds keys and values, and refuses an empty key', async () => {
    const agent = await watAgent(KV_AGENT, { name: 'bounded', permissions: ['kv:read', 'kv:write'], limits: { timeoutMs: 5000, memoryMiB: 8 } })
    await assert.rejects(sandbox.run(agent, { input: `s ${'k'.repeat(KV_LIMITS.maxKeyChars + 1)} v` }), /kv keys are limited to 1024 characters/)
    await assert.rejects(sandbox.run(agent, { input: `s k ${'v'.repeat(KV_LIMITS.maxValueChars + 1)}` }), /kv values are limited to/)
    await assert.rejects(sandbox.run(agent, { input: 's  v' }), /must not be empty/)
    assert.equal(kv.stores.get('bounded')?.size ?? 0, 0)
  })
})
