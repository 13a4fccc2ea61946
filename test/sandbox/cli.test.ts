// `hive-node agent new|build|inspect` and `hive-node run` against a real node: an agent made and
// built by the CLI runs on the node in a replicated context; bad components and failing agents
// exit 1 with a clear error; the node's API keeps answering while an agent runs away.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { parse } from '@bytecodealliance/jco'
import { main } from '../../node/cli.ts'
import { dataPaths } from '../../node/config.ts'
import { runCli } from '../helpers/cli.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { AGENT_ERROR, ECHO, ENDLESS_LOOP, MEMORY_BOMB, OTHER_WORLD_WAT, OTHER_WORLD_WIT, TRAP, tempDir, watAgent } from './fixtures.ts'
import type { HiveNode } from '../../node/hive-node.ts'

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

describe('hive-node agent and run', () => {
  let node: HiveNode
  let dataDir: string
  let files: Awaited<ReturnType<typeof tempDir>>

  before(async () => {
    dataDir = await makeTempDir()
    node = await startNode('agents', {}, dataDir)
    files = await tempDir()
  })
  after(async () => {
    await node?.stop()
    await files?.remove()
    await rm(dataDir, { recursive: true, force: true })
  })

  async function write (name: string, bytes: Uint8Array): Promise<string> {
    const file = join(files.path, name)
    await writeFile(file, bytes)
    return file
  }

  it('makes, builds (showing progress), inspects and runs an agent on the node, in its context', async () => {
    const src = join(files.path, 'counter')
    const made = await cli('--data', dataDir, 'agent', 'new', src)
    assert.equal(made.code, 0, made.err)

    const wasm = join(files.path, 'counter.wasm')
    const built = await runCli(['--data', dataDir, 'agent', 'build', src, '-o', wasm])
    assert.equal(built.code, 0, built.stderr)
    assert.match(built.stderr, /building: componentize/)
    assert.match(built.stdout, /built .*counter\.wasm: agent counter 0\.1\.0/)

    const inspected = await cli('--data', dataDir, 'agent', 'inspect', wasm, '--json')
    assert.equal(inspected.code, 0, inspected.err)
    const info = JSON.parse(inspected.out) as { digest: string, manifest: { name: string, permissions: string[] }, imports: Array<{ name: string, functions: string[] }> }
    assert.equal(info.manifest.name, 'counter')
    assert.deepEqual(info.imports.map(i => i.name).sort(), ['hive:agent/context@0.1.0', 'hive:agent/log@0.1.0'])

    const first = await runCli(['--data', dataDir, 'run', wasm, '--input', 'three little words', '--json'])
    assert.equal(first.code, 0, first.stderr)
    const result = JSON.parse(first.stdout) as { output: string, where: string, digest: string, contextId: string, logs: Array<{ message: string }> }
    assert.deepEqual([result.output, result.where, result.digest, result.contextId], ['3 words (run 1 in this context)', 'node', info.digest, 'agent-counter'])
    assert.deepEqual(result.logs.map(l => l.message), ['run 1: 3 words'])

    const second = await cli('--data', dataDir, 'run', wasm, '--input', 'again')
    assert.equal(second.code, 0, second.err)
    assert.equal(second.out, '1 words (run 2 in this context)\n')
    // The agent wrote through the node's replicated context store.
    const ctx = node.contexts.store.get('agent-counter')
    assert.equal(ctx?.get('runs'), '2')
    assert.deepEqual(ctx?.view().conversation.map(e => [e.role, e.text]), [['agent', 'three little words'], ['agent', 'again']])

    const failed = await cli('--data', dataDir, 'run', wasm, '--input', '   ')
    assert.equal(failed.code, 1)
    // the agent's log lines come first, as with a run in this process
    assert.match(failed.err, /^\[counter\] info: run 3: 0 words\nerror: agent counter failed: give me some words \(task [0-9a-f]{32} on [^;]+ \(this device\); "hive-node task [0-9a-f]{32}" shows it\)\n$/)
  })

  it("exits 1 with the agent's own error", async () => {
    const file = await write('refuses.wasm', await watAgent(AGENT_ERROR))
    const result = await runCli(['--data', dataDir, 'run', file, '--input', 'x'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /^error: agent test-agent failed: no thanks \(task [0-9a-f]{32} on [^;]+ \(this device\); "hive-node task [0-9a-f]{32}" shows it\)\n$/)
  })

  for (const [what, make, code] of [
    ['a file that is not WebAssembly', async () => new TextEncoder().encode('not wasm at all'), 'NotWebAssembly'],
    ['a core module', async () => await parse(ECHO), 'NotAComponent'],
    ['a component of another world', async () => await watAgent(OTHER_WORLD_WAT, {}, { wit: OTHER_WORLD_WIT, world: 'counter' }), 'WrongWorld'],
    ['a component that traps', async () => await watAgent(TRAP), 'AgentTrapped']
  ] as const) {
    it(`exits 1 on ${what}, and the node keeps serving`, async () => {
      const file = await write(`${code}.wasm`, await make())
      const result = await cli('--data', dataDir, 'run', file, '--input', 'x')
      assert.equal(result.code, 1)
      assert.match(result.err, new RegExp(`^error: ${code}: `))
      const health = await fetch(`${node.apiUrl ?? ''}/health`)
      assert.equal(health.status, 200)
    })
  }

  for (const [what, wat, limits, code] of [
    ['an endless loop', ENDLESS_LOOP, { timeoutMs: 1500, memoryMiB: 1 }, 'AgentTimedOut'],
    ['a memory.grow bomb', MEMORY_BOMB, { timeoutMs: 10_000, memoryMiB: 16 }, 'MemoryLimitExceeded']
  ] as const) {
    it(`keeps the API answering while ${what} runs, stops it, and runs the next agent`, async () => {
      const runaway = await watAgent(wat, { limits })
      const token = (await readFile(dataPaths(dataDir).token, 'utf8')).trim()
      let settled = false
      const run = fetch(`${node.apiUrl ?? ''}/agents/run`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: Buffer.from(runaway).toString('base64'), input: 'x' })
      }).finally(() => { settled = true })
      if (code === 'AgentTimedOut') {
        // Wait until the agent is running, then ask the API while it still is.
        await waitFor(() => node.sandbox.stats().busy === 1, { message: 'the agent is running' })
        for (let i = 0; i < 3; i++) {
          const health = await fetch(`${node.apiUrl ?? ''}/health`)
          assert.equal(health.status, 200)
        }
        assert.equal(settled, false, 'the health checks were answered while the agent ran')
      }
      const response = await run
      const body = await response.json() as { error: { code: string, message: string } }
      assert.equal(body.error.code, code)
      assert.equal((await fetch(`${node.apiUrl ?? ''}/health`)).status, 200)

      const echo = await write('echo-after.wasm', await watAgent(ECHO))
      const next = await cli('--data', dataDir, 'run', echo, '--input', 'still here')
      assert.equal(next.code, 0, next.err)
      assert.equal(next.out, 'still here\n')
    })
  }

  it('POST /agents/run leaves a ledger record for every run that started, ok or failed, and none for a refused component', async () => {
    const token = (await readFile(dataPaths(dataDir).token, 'utf8')).trim()
    const post = async (bytes: Uint8Array, input: string): Promise<{ status: number, body: Record<string, unknown> }> => {
      const response = await fetch(`${node.apiUrl ?? ''}/agents/run`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ agent: Buffer.from(bytes).toString('base64'), input })
      })
      return { status: response.status, body: await response.json() as Record<string, unknown> }
    }
    const newest = async (): Promise<NonNullable<Awaited<ReturnType<HiveNode['ledger']['list']>>[0]['record']>> => {
      const [top] = await node.ledger.list({ limit: 1 })
      assert.ok(top?.record != null, 'a record is held')
      return top.record
    }
    const sha = (text: string): string => createHash('sha256').update(text).digest('hex')

    const echo = await watAgent(ECHO)
    const ran = await post(echo, 'recorded')
    assert.equal(ran.status, 200, JSON.stringify(ran.body))
    const record = ran.body.record as { task: string, seq: number, hash: string }
    assert.match(record.task, /^[0-9a-f]{32}$/)
    const ok = await newest()
    assert.deepEqual([ok.seq, ok.task, ok.status, ok.agent, ok.input, ok.output], [record.seq, record.task, 'ok', ran.body.digest, sha('recorded'), sha('recorded')])

    const failed = await post(await watAgent(TRAP), 'x')
    assert.equal((failed.body.error as { code: string }).code, 'AgentTrapped')
    const error = await newest()
    assert.deepEqual([error.seq, error.status], [ok.seq + 1, 'error'])
    assert.notEqual(error.task, ok.task)

    const refused = await post(new TextEncoder().encode('not wasm at all'), 'x')
    assert.equal((refused.body.error as { code: string }).code, 'NotWebAssembly')
    assert.equal((await newest()).seq, error.seq, 'a component that never ran leaves no record')
  })

  it('reports the sandbox runtime in GET /runtimes', async () => {
    const { runtimes } = await (await fetch(`${node.apiUrl ?? ''}/runtimes`)).json() as { runtimes: Array<{ name: string, status: string, world?: string }> }
    const wasm = runtimes.find(r => r.name === 'wasm-component')
    assert.equal(wasm?.status, 'ready')
    assert.equal(wasm?.world, 'hive:agent/agent@0.1.0')
  })

  it('runs in this process when no node is running', async () => {
    const idle = join(files.path, 'no-node')
    const file = await write('echo-local.wasm', await watAgent(ECHO))
    const result = await cli('--data', idle, 'run', file, '--input', 'no node', '--json')
    assert.equal(result.code, 0, result.err)
    assert.deepEqual([JSON.parse(result.out).output, JSON.parse(result.out).where], ['no node', 'local'])
    const usage = await cli('--data', idle, 'run', file)
    assert.equal(usage.code, 2)
  })
})
