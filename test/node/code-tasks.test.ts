// Code tasks through the API on two real nodes: JavaScript run by the interpreter component
// (built once per cache key, shared by every test process), placed like any task; its output,
// its deadline, what it cannot reach, and the errors for what the API does not take.

import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { open, readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { dataPaths } from '../../node/config.ts'
import { CODE_LIMITS } from '../../sandbox/index.ts'
import { TEST_RUNTIMES_DIR } from '../helpers/code-runtime.ts'
import { runCli } from '../helpers/cli.ts'
import { startMesh } from '../helpers/mesh.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { RuntimeInfo } from '../../node/api/types.ts'
import type { Mesh } from '../helpers/mesh.ts'
import type { TaskView } from '../../protocol/index.ts'

describe('code tasks', () => {
  let mesh: Mesh
  let a: HiveNode
  let b: HiveNode
  let token: string

  before(async () => {
    mesh = await startMesh(2, { init: { runtimesDir: TEST_RUNTIMES_DIR } })
    ;[a, b] = mesh.nodes as [HiveNode, HiveNode]
    token = (await readFile(dataPaths(mesh.dirs[0] as string).token, 'utf8')).trim()
  })
  after(async () => { await mesh?.stop() })

  const post = async (body: unknown): Promise<Response> =>
    await fetch(`${a.apiUrl ?? ''}/task`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) })

  /** Submits a code task on A (run on B unless `on` says otherwise) and waits for its end. */
  async function runCode (code: string, on: HiveNode = b): Promise<TaskView> {
    const submitted = await post({ type: 'code-execution', code, runtime: 'auto', on: on.peerId.toString() })
    assert.equal(submitted.status, 202, await submitted.clone().text())
    const { task } = await submitted.json() as { task: TaskView }
    const done = await (await fetch(`${a.apiUrl ?? ''}/task/${task.id}?waitMs=60000`)).json() as { task: TaskView }
    return done.task
  }

  it('prints 2 for console.log(1+1), run on another device through the interpreter', async () => {
    const task = await runCode('console.log(1+1)')
    assert.equal(task.status, 'done', JSON.stringify(task.result ?? task.history.at(-1)))
    assert.equal(task.result?.output, '2')
    assert.equal(task.result?.executor, b.peerId.toString())
    // the same interpreter again: no build, same digest
    const again = await runCode('const xs = [1, 2, 3]; await null; console.log(xs.map(x => x * 2), { ok: true })', a)
    assert.equal(again.result?.output, '[ 2, 4, 6 ] { ok: true }')
    assert.equal(again.agent, task.agent)
  })

  it('hive-node run --code prints what the code printed, and refuses an agent\'s options beside it', async () => {
    const result = await runCli(['--data', mesh.dirs[0] as string, 'run', '--code', 'console.log(1+1)'])
    assert.equal(result.code, 0, result.stderr)
    assert.equal(result.stdout, '2\n')
    const failed = await runCli(['--data', mesh.dirs[0] as string, 'run', '--code', 'require("fs")'])
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /ReferenceError: require is not defined/)
    const mixed = await runCli(['--data', mesh.dirs[0] as string, 'run', '--code', '1', '--input', 'x'])
    assert.equal(mixed.code, 2)
    assert.match(mixed.stderr, /--code runs JavaScript on its own/)
  })

  it('stops a code task with an endless loop at its deadline', async () => {
    const task = await runCode('while (true) {}')
    assert.equal(task.status, 'failed')
    assert.match(task.result?.error ?? '', /^AgentTimedOut: .*deadline of 10000 ms/)
  })

  it('fails fetch and require("fs") without touching the host', async () => {
    let hits = 0
    const server = createServer((_req, res) => { hits++; res.end('reached') })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    // a FIFO: opening it for writing completes only when someone opens it for reading
    const fifo = join(mesh.dirs[1] as string, 'secret.fifo')
    execFileSync('mkfifo', [fifo])
    let read = false
    const writer = open(fifo, 'w').then(async fh => { read = true; await fh.close() })
    try {
      const port = (server.address() as { port: number }).port
      const fetched = await runCode(`const r = await fetch('http://127.0.0.1:${port}/'); console.log(await r.text())`)
      assert.equal(fetched.status, 'failed')
      assert.match(fetched.result?.error ?? '', /fetch is not available/)
      const required = await runCode(`console.log(require('fs').readFileSync(${JSON.stringify(fifo)}, 'utf8'))`)
      assert.equal(required.status, 'failed')
      assert.match(required.result?.error ?? '', /ReferenceError: require is not defined/)
      const imported = await runCode(`const fs = await import('node:fs'); console.log(fs.readFileSync(${JSON.stringify(fifo)}, 'utf8'))`)
      assert.equal(imported.status, 'failed')
      assert.equal(hits, 0, 'the loopback server was never asked')
      assert.equal(read, false, 'the file was never opened')
    } finally {
      server.close()
      // let the pending open finish so nothing is left waiting
      const reader = await open(fifo, 'r')
      await writer
      await reader.close()
    }
  })

  it('answers an unknown type or runtime with one error listing what it takes', async () => {
    const both = await post({ type: 'python', code: 'print(1)', runtime: 'pyodide' })
    assert.equal(both.status, 400)
    const body = await both.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'InvalidTask')
    assert.match(body.error.message, /"type" "python" is not a task type; "runtime" "pyodide" is not a runtime; accepted: "agent" \(runtime "auto" or "wasm-component"\), "code-execution" \(runtime "auto" or "js-code"\)/)
    const runtime = await post({ type: 'code-execution', code: '1', runtime: 'wasm-component' })
    assert.equal(runtime.status, 400)
    assert.match((await runtime.json() as { error: { message: string } }).error.message, /"runtime" "wasm-component" is not a runtime for code-execution tasks; accepted: /)
  })

  it(`refuses code longer than ${CODE_LIMITS.maxCodeChars} characters`, async () => {
    const res = await post({ type: 'code-execution', code: 'x'.repeat(CODE_LIMITS.maxCodeChars + 1) })
    assert.equal(res.status, 400)
    assert.match((await res.json() as { error: { message: string } }).error.message, new RegExp(`at most ${CODE_LIMITS.maxCodeChars} characters`))
  })

  it('lists its runtimes with status, and cloud runtimes as not configured with what they need', async () => {
    const { runtimes } = await (await fetch(`${a.apiUrl ?? ''}/runtimes`)).json() as { runtimes: RuntimeInfo[] }
    const by = new Map(runtimes.map(r => [r.name, r]))
    assert.deepEqual([...by.keys()].sort(), ['cloud-code', 'js-code', 'llm-cloud', 'llm-local', 'llm-peer', 'wasm-component'])
    assert.equal(by.get('wasm-component')?.status, 'ready')
    assert.equal(by.get('js-code')?.status, 'ready')
    assert.match(String(by.get('js-code')?.digest), /^[0-9a-f]{64}$/)
    for (const name of ['cloud-code', 'llm-cloud']) {
      assert.equal(by.get(name)?.status, 'not configured')
      assert.ok((by.get(name)?.needs ?? '').length > 0, `${name} says what it needs`)
    }
    // only agent runtimes go out on capability gossip
    const caps = a.capabilities.view().find(e => e.peerId === a.peerId.toString())?.caps
    assert.ok(caps?.runtimes.every(r => r === 'wasm-component' || r === 'js-code'), JSON.stringify(caps?.runtimes))
  })
})
