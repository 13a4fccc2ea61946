// The commands fed by the event stream, as child processes against a real node: `run` prints
// an agent's lines while it runs, `logs --follow` prints a running agent's lines and exits when
// the task ends, and `monitor` prints a line per event when stdout is not a terminal (one JSON
// event per line with --json). On a 2-node hive, the same for an agent that runs on the other
// device: its lines reach the submitter as they are logged, not with the result.

import assert from 'node:assert/strict'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { exited, spawnCli } from '../helpers/cli.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { apiToken } from '../helpers/sse.ts'
import { lineMatching, waitFor } from '../helpers/wait.ts'
import { LOGGER, LOG_THEN_LOOP, watAgent } from '../sandbox/fixtures.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'

/** Every line a stream wrote so far, collected from the start so none is missed between waits. */
function lines (stream: NodeJS.ReadableStream): () => string[] {
  let text = ''
  stream.on('data', (chunk: Buffer) => { text += chunk.toString() })
  return () => text.split('\n').slice(0, -1)
}

async function line (read: () => string[], match: (l: string) => boolean, message: string): Promise<string> {
  return waitFor(() => read().find(match), { message, timeoutMs: 60_000 })
}

async function submitLocal (node: HiveNode, agent: Uint8Array, input: string, where: { on?: string } = {}): Promise<string> {
  const response = await fetch(`${node.apiUrl}/task`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await apiToken(node)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ agent: Buffer.from(agent).toString('base64'), input, ...(where.on != null ? { on: where.on } : { local: true }) })
  })
  const body = await response.json() as { task: { id: string } }
  assert.equal(response.status, 202, JSON.stringify(body))
  return body.task.id
}

describe('run, logs --follow and monitor, fed by the event stream', () => {
  let dir: string
  let files: string
  let node: HiveNode

  before(async () => {
    dir = await makeTempDir()
    files = await makeTempDir('hive-events-cli-')
    node = await startNode('events-cli', {}, dir)
  })

  after(async () => {
    await node.stop()
    await rm(dir, { recursive: true, force: true })
    await rm(files, { recursive: true, force: true })
  })

  it('run prints the agent\'s log line while the agent still runs on this device', async () => {
    const file = join(files, 'looper.wasm')
    await writeFile(file, await watAgent(LOG_THEN_LOOP, { name: 'looper', permissions: ['log'], limits: { timeoutMs: 120_000, memoryMiB: 1 } }))
    const child = spawnCli(['--data', dir, 'run', file, '--input', 'streamed line', '--local'])
    const done = exited(child)
    try {
      const printed = await lineMatching(child.stderr, l => l.includes('streamed line'), { message: 'the log line on stderr', timeoutMs: 60_000 })
      assert.equal(printed, '[looper] info: streamed line')
      // the agent loops until its deadline: the line came while it ran
      assert.ok(node.placement.list().some(t => t.status === 'running'), 'the task still runs')
      assert.equal(child.exitCode, null)
    } finally {
      child.kill('SIGKILL')
      await done
    }
  })

  it('logs --follow prints a running agent\'s lines and exits when the task ends', async () => {
    // the agent runs until its 15 s deadline: the task fails then, and logs exits
    const agent = await watAgent(LOG_THEN_LOOP, { name: 'follow-me', permissions: ['log'], limits: { timeoutMs: 15_000, memoryMiB: 1 } })
    const task = await submitLocal(node, agent, 'hello follow')
    const child = spawnCli(['--data', dir, 'logs', task, '--follow'])
    const out = lines(child.stdout)
    const done = exited(child)
    try {
      assert.equal(await line(out, l => l.includes('hello follow'), 'the log line'), 'info: hello follow')
      const result = await waitFor(async () => { const r = await done; return r }, { message: 'logs exits when the task ends', timeoutMs: 60_000 })
      assert.equal(result.code, 0, result.stderr)
      // it saw the end come through the stream
      assert.match(result.stderr, new RegExp(`task ${task.slice(0, 8)} failed: AgentTimedOut`))
      // once over, logs prints what the node holds and exits
      const again = await exited(spawnCli(['--data', dir, 'logs', task]))
      assert.equal(again.code, 0, again.stderr)
      assert.equal(again.stdout, 'info: hello follow\n')
    } finally {
      child.kill('SIGKILL')
    }
  })

  for (const json of [false, true]) {
    it(`monitor${json ? ' --json' : ''} prints ${json ? 'one JSON event' : 'a line'} per event when stdout is not a terminal`, async () => {
      const child = spawnCli(['--data', dir, 'monitor', ...(json ? ['--json'] : [])])
      const out = lines(child.stdout)
      const done = exited(child)
      try {
        const hello = await line(out, l => json ? l.includes('"hello"') : / hello +following /.test(l), 'the first line')
        if (json) assert.equal((JSON.parse(hello) as { data: { peerName: string } }).data.peerName, 'events-cli')
        else assert.match(hello, /following events-cli/)
        const task = await submitLocal(node, await watAgent(LOGGER, { name: `monitored-${String(json)}`, permissions: ['log'] }), 'seen by monitor')
        const doneLine = await line(out, l => l.includes(json ? '"type":"task.done"' : 'task.done') && l.includes(json ? task : task.slice(0, 8)), 'the task\'s done line')
        if (json) {
          const event = JSON.parse(doneLine) as { type: string, data: { task: string, executorName: string } }
          assert.deepEqual([event.type, event.data.task, event.data.executorName], ['task.done', task, 'events-cli'])
        } else {
          assert.match(doneLine, new RegExp(`task ${task.slice(0, 8)} done on events-cli in \\d+ ms`))
        }
      } finally {
        child.kill('SIGTERM')
        await done
      }
    })
  }
})

describe('log lines of an agent running on another device, live on the submitter', () => {
  let hive: TestHive
  let files: string

  before(async () => {
    hive = await startHive(2)
    files = await makeTempDir('hive-events-remote-')
  })

  after(async () => {
    await hive.stop()
    await rm(files, { recursive: true, force: true })
  })

  it('logs --follow on the submitter prints the line while the agent still runs on the other device', async () => {
    const [a, b] = hive.nodes as [HiveNode, HiveNode]
    // it logs, then loops until its deadline: a line printed before the task ends came live
    const agent = await watAgent(LOG_THEN_LOOP, { name: 'remote-follow', permissions: ['log'], limits: { timeoutMs: 120_000, memoryMiB: 1 } })
    const task = await submitLocal(a, agent, 'from the other device', { on: b.peerId.toString() })
    const child = spawnCli(['--data', a.dataDir, 'logs', task, '--follow'])
    const out = lines(child.stdout)
    const done = exited(child)
    try {
      assert.equal(await line(out, l => l.includes('from the other device'), 'the log line'), 'info: from the other device')
      const view = a.placement.get(task)
      assert.equal(view?.status, 'running', 'the task still runs')
      assert.equal(view?.winner, b.peerId.toString(), 'on the other device')
      assert.equal(view?.result, undefined)
      assert.equal(child.exitCode, null, 'logs still follows')
    } finally {
      child.kill('SIGKILL')
      await done
    }
  })

  it('run on the submitter prints the line while the agent still runs on the other device', async () => {
    const [a, b] = hive.nodes as [HiveNode, HiveNode]
    const file = join(files, 'remote-looper.wasm')
    await writeFile(file, await watAgent(LOG_THEN_LOOP, { name: 'remote-looper', permissions: ['log'], limits: { timeoutMs: 120_000, memoryMiB: 1 } }))
    const child = spawnCli(['--data', a.dataDir, 'run', file, '--input', 'run streamed remotely', '--on', b.peerId.toString()])
    const done = exited(child)
    try {
      const printed = await lineMatching(child.stderr, l => l.includes('run streamed remotely'), { message: 'the log line on stderr', timeoutMs: 60_000 })
      assert.equal(printed, '[remote-looper] info: run streamed remotely')
      const running = a.placement.list().filter(t => t.status === 'running' && t.winner === b.peerId.toString())
      assert.ok(running.length > 0, 'the task still runs on the other device')
      assert.equal(child.exitCode, null)
    } finally {
      child.kill('SIGKILL')
      await done
    }
  })
})
