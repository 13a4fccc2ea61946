// Running components: outputs, permission denials, bad components, limits. Uses tiny WAT-built
// components; the real JS builds are exercised in agents.test.ts.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { parse } from '@bytecodealliance/jco'
import { createMemoryContext, createSandbox } from '../../sandbox/index.ts'
import {
  AGENT_ERROR, CONTEXT_READER, CONTEXT_ROUNDTRIP, ECHO, ENDLESS_LOOP, LOG_THEN_LOOP, LOGGER, MEMORY_BOMB, OTHER_WORLD_WAT,
  OTHER_WORLD_WIT, TRAP, WASI_PROBE_WIT, agentWat, tempDir, watAgent, watComponent
} from './fixtures.ts'
import type { AgentLogEntry, Sandbox } from '../../sandbox/index.ts'

describe('sandbox', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox

  before(async () => {
    dir = await tempDir()
    sandbox = createSandbox({ cacheDir: dir.path, warmWorkers: 1, maxConcurrentRuns: 2 })
    await sandbox.start()
  })

  after(async () => {
    await sandbox.stop()
    await dir.remove()
  })

  it('runs an agent and returns its output', async () => {
    const agent = await watAgent(ECHO)
    const result = await sandbox.run(agent, { input: 'hello, hive ✓' })
    assert.equal(result.output, 'hello, hive ✓')
    const again = await sandbox.run(agent, { input: 'twice' })
    assert.equal(again.output, 'twice')
  })

  it("returns an agent's own error as AgentFailed with its text", async () => {
    const agent = await watAgent(AGENT_ERROR)
    await assert.rejects(sandbox.run(agent, { input: 'x' }), (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed')
      assert.equal(err.agentError, 'no thanks')
      return true
    })
  })

  it('passes granted log lines through, tagged with the run', async () => {
    const agent = await watAgent(LOGGER, { permissions: ['log'] })
    const lines: AgentLogEntry[] = []
    const result = await sandbox.run(agent, { input: 'a log line', onLog: e => lines.push(e) })
    assert.equal(result.output, 'a log line')
    assert.deepEqual(lines.map(l => [l.level, l.message, l.agent, l.runId]), [['info', 'a log line', 'test-agent', result.runId]])
  })

  it('reads and writes the context it is given', async () => {
    const agent = await watAgent(CONTEXT_ROUNDTRIP, { permissions: ['context:read', 'context:write'] })
    const context = createMemoryContext()
    const result = await sandbox.run(agent, { input: 'remember me', context })
    assert.equal(result.output, 'remember me')
    assert.equal(context.state.get('k'), 'remember me')
    assert.deepEqual(context.conversation, ['remember me'])
  })

  it('hands a failing context store back to the agent as an error', async () => {
    const agent = await watAgent(CONTEXT_ROUNDTRIP, { permissions: ['context:read', 'context:write'] })
    const context = { get: () => undefined, set: async () => { throw new Error('disk full') }, append: () => {} }
    await assert.rejects(sandbox.run(agent, { input: 'x', context }), (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed')
      assert.match(err.agentError ?? '', /disk full/)
      return true
    })
  })

  describe('denials', () => {
    it('refuses, before running, a component importing a log function not granted, naming it', async () => {
      const agent = await watAgent(LOGGER, { permissions: [] })
      const runsBefore = sandbox.stats().runs
      const lines: AgentLogEntry[] = []
      await assert.rejects(sandbox.run(agent, { input: 'x', onLog: e => lines.push(e) }), (err: Error & { importName?: string }) => {
        assert.equal(err.name, 'ImportNotGranted')
        assert.equal(err.importName, 'hive:agent/log@0.1.0#log')
        assert.match(err.message, /hive:agent\/log@0\.1\.0#log/)
        assert.match(err.message, /"log"/)
        return true
      })
      assert.equal(sandbox.stats().runs, runsBefore, 'no run was started')
      assert.equal(lines.length, 0)
    })

    it('refuses a context writer whose manifest grants only context:read, naming the functions', async () => {
      const agent = await watAgent(CONTEXT_ROUNDTRIP, { permissions: ['context:read'] })
      const context = createMemoryContext()
      await assert.rejects(sandbox.run(agent, { input: 'x', context }), (err: Error & { importName?: string }) => {
        assert.equal(err.name, 'ImportNotGranted')
        assert.equal(err.importName, 'hive:agent/context@0.1.0#set, #append')
        return true
      })
      // Refused before running: the agent's first act would have been a write.
      assert.equal(context.state.size, 0)
      assert.equal(context.conversation.length, 0)
    })

    it('lets a reader with context:read read and nothing else', async () => {
      const agent = await watAgent(CONTEXT_READER, { permissions: ['context:read'] })
      const context = createMemoryContext()
      await context.set('k', 'stored')
      assert.equal((await sandbox.run(agent, { input: '', context })).output, 'stored')
    })

    it('withholds a permission the node does not allow even when the manifest asks', async () => {
      const d = await tempDir()
      const strict = createSandbox({ cacheDir: d.path, allow: ['log'] })
      await strict.start()
      try {
        const agent = await watAgent(CONTEXT_READER, { permissions: ['context:read'] })
        await assert.rejects(strict.load(agent), (err: Error) => {
          assert.equal(err.name, 'ImportNotGranted')
          assert.match(err.message, /this node does not grant "context:read"/)
          return true
        })
        assert.deepEqual(strict.runtime().permissions, ['log'])
      } finally {
        await strict.stop()
        await d.remove()
      }
    })

    for (const [what, wat, importName] of [
      ['reading a host file', '(import "wasi:filesystem/preopens@0.2.0" "get-directories" (func $f (param i32)))', 'wasi:filesystem/preopens@0.2.0'],
      ['reading an environment variable', '(import "wasi:cli/environment@0.2.0" "get-environment" (func $f (param i32)))', 'wasi:cli/environment@0.2.0'],
      ['opening a socket', '(import "wasi:sockets/tcp-create-socket@0.2.0" "create-tcp-socket" (func $f (param i32 i32)))', 'wasi:sockets/tcp-create-socket@0.2.0']
    ] as const) {
      it(`refuses a component ${what} through WASI, naming the import`, async () => {
        const call = importName.startsWith('wasi:sockets') ? '(call $f (i32.const 2) (i32.const 64))' : '(call $f (i32.const 64))'
        const component = await watAgent(agentWat(`${call} unreachable`, { imports: wat }), {}, { wit: WASI_PROBE_WIT, world: 'probe' })
        await assert.rejects(sandbox.run(component, { input: 'x' }), (err: Error & { importName?: string }) => {
          assert.equal(err.name, 'ImportNotGranted')
          assert.equal(err.importName, importName)
          assert.match(err.message, /can never be granted/)
          return true
        })
      })
    }
  })

  describe('bad components', () => {
    it('refuses bytes that are not WebAssembly', async () => {
      await assert.rejects(sandbox.run(new TextEncoder().encode('#!/bin/sh\nrm -rf /\n'), { input: 'x' }), { name: 'NotWebAssembly' })
    })

    it('refuses a core module', async () => {
      const core = await parse(ECHO)
      await assert.rejects(sandbox.run(core, { input: 'x' }), (err: Error) => {
        assert.equal(err.name, 'NotAComponent')
        assert.match(err.message, /core WebAssembly module/)
        return true
      })
    })

    it('refuses a component of another world', async () => {
      const other = await watAgent(OTHER_WORLD_WAT, {}, { wit: OTHER_WORLD_WIT, world: 'counter' })
      await assert.rejects(sandbox.run(other, { input: 'x' }), (err: Error) => {
        assert.equal(err.name, 'WrongWorld')
        assert.match(err.message, /run: func\(input: string\) -> result<string, string>/)
        return true
      })
    })

    it('refuses a component without a manifest', async () => {
      await assert.rejects(sandbox.run(await watComponent(ECHO), { input: 'x' }), { name: 'ManifestMissing' })
    })

    it('reports a trap as AgentTrapped, and the next run succeeds', async () => {
      await assert.rejects(sandbox.run(await watAgent(TRAP), { input: 'x' }), (err: Error) => {
        assert.equal(err.name, 'AgentTrapped')
        assert.match(err.message, /unreachable/)
        return true
      })
      assert.equal((await sandbox.run(await watAgent(ECHO), { input: 'after a trap' })).output, 'after a trap')
    })
  })

  describe('limits', () => {
    it('stops an endless loop at its deadline while the event loop stays free, then runs the next agent', async () => {
      const loop = await watAgent(ENDLESS_LOOP, { limits: { timeoutMs: 300, memoryMiB: 1 } })
      let ticks = 0
      const ticker = setInterval(() => { ticks++ }, 20)
      try {
        await assert.rejects(sandbox.run(loop, { input: 'x' }), (err: Error) => {
          assert.equal(err.name, 'AgentTimedOut')
          assert.match(err.message, /300 ms/)
          return true
        })
      } finally {
        clearInterval(ticker)
      }
      assert.ok(ticks > 0, 'the main thread kept running while the agent looped')
      assert.equal((await sandbox.run(await watAgent(ECHO), { input: 'still here' })).output, 'still here')
    })

    it('stops a memory.grow bomb at its cap, then runs the next agent', async () => {
      const bomb = await watAgent(MEMORY_BOMB, { limits: { timeoutMs: 5000, memoryMiB: 2 } })
      await assert.rejects(sandbox.run(bomb, { input: 'x' }), (err: Error & { memoryBytes?: number }) => {
        assert.equal(err.name, 'MemoryLimitExceeded')
        assert.match(err.message, /memory cap of 2 MiB/)
        assert.ok(err.memoryBytes !== undefined && err.memoryBytes > 1.5 * 2 ** 20 && err.memoryBytes <= 2 * 2 ** 20, `grew to ${err.memoryBytes} bytes`)
        return true
      })
      const echo = await sandbox.run(await watAgent(ECHO), { input: 'after the bomb' })
      assert.equal(echo.output, 'after the bomb')
    })

    it('refuses a module whose initial memory exceeds the cap', async () => {
      const big = await watAgent(agentWat('unreachable', { pages: 40 }), { limits: { timeoutMs: 1000, memoryMiB: 1 } })
      await assert.rejects(sandbox.load(big), { name: 'MemoryLimitTooLow' })
    })

    it('refuses a manifest asking for more than the node allows', async () => {
      const greedy = await watAgent(ECHO, { limits: { timeoutMs: 1000, memoryMiB: 4096 } })
      await assert.rejects(sandbox.load(greedy), (err: Error) => {
        assert.equal(err.name, 'LimitNotAllowed')
        assert.match(err.message, /4096 MiB/)
        return true
      })
    })

    it('honours an abort signal mid-run', async () => {
      const loop = await sandbox.load(await watAgent(LOG_THEN_LOOP, { permissions: ['log'], limits: { timeoutMs: 60_000, memoryMiB: 1 } }))
      const controller = new AbortController()
      // The agent logs once it is running; abort then.
      const run = sandbox.run(loop, { input: 'started', signal: controller.signal, onLog: () => { controller.abort() } })
      await assert.rejects(run, { name: 'AbortError' })
    })

    it('runs several agents at once', async () => {
      const agent = await watAgent(ECHO)
      const outputs = await Promise.all(['a', 'b', 'c', 'd'].map(async input => (await sandbox.run(agent, { input })).output))
      assert.deepEqual(outputs, ['a', 'b', 'c', 'd'])
    })
  })
})
