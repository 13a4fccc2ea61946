// The user surfaces of placement on three real nodes: `hive-node run` (placed, --on, --local),
// `task`, `explain`, `tasks`, `peers`, and the API behind them.

import assert from 'node:assert/strict'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { main } from '../../../node/cli.ts'
import { parseCapabilityFlags } from '../../../node/commands/tasks.ts'
import { dataPaths } from '../../../node/config.ts'
import { makeTempDir } from '../../helpers/mesh.ts'
import { AGENT_ERROR, CONTEXT_ROUNDTRIP, watAgent } from '../../sandbox/fixtures.ts'
import { echoAgent, startHive } from './fixture.ts'
import type { TaskView } from '../../../protocol/placement/index.ts'
import type { TestHive } from './fixture.ts'

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

describe('hive-node run, task, explain, tasks and peers', () => {
  let hive: TestHive
  let files: string
  let echo: string
  let data: string

  before(async () => {
    // the second node is busy, so placed runs go elsewhere unless pinned
    hive = await startHive(3, { overrides: i => i === 1 ? { load: 40 } : undefined })
    data = hive.mesh.dirs[0]!
    files = await makeTempDir('hive-placement-cli-')
    echo = join(files, 'echo.wasm')
    await writeFile(echo, await echoAgent('cli-echo'))
  })

  after(async () => {
    await hive.stop()
    await rm(files, { recursive: true, force: true })
  })

  it('runs an agent across the hive, pinned to a device by name, or here; task, tasks and explain show it', async () => {
    const [self, busy] = hive.nodes as [typeof hive.nodes[0], typeof hive.nodes[0]]
    const placed = await cli('--data', data, 'run', echo, '--input', 'hello hive', '--json')
    assert.equal(placed.code, 0, placed.err)
    const result = JSON.parse(placed.out) as { output: string, task: string, executor: string, where: string, ledgerSeq?: number }
    assert.equal(result.output, 'hello hive')
    assert.notEqual(result.executor, busy.peerId.toString(), 'the busy node lost the auction')
    assert.equal(typeof result.ledgerSeq, 'number')

    const pinned = await cli('--data', data, 'run', echo, '--input', 'on the busy one', '--on', busy.name, '--json')
    assert.equal(pinned.code, 0, pinned.err)
    const pinnedResult = JSON.parse(pinned.out) as { executor: string, task: string }
    assert.equal(pinnedResult.executor, busy.peerId.toString())
    // the device that ran it shows the result too, as the submitter does
    const onExecutor = await cli('--data', hive.mesh.dirs[1]!, 'task', pinnedResult.task)
    assert.equal(onExecutor.code, 0, onExecutor.err)
    assert.match(onExecutor.out, /status +done/)
    assert.match(onExecutor.out, new RegExp(`ran on +${busy.name} \\(this device\\) in \\d+ ms, ledger record \\d+`))
    assert.match(onExecutor.out, /output +on the busy one/)
    const executorJson = JSON.parse((await cli('--data', hive.mesh.dirs[1]!, 'task', pinnedResult.task, '--json')).out) as { task: TaskView }
    assert.equal(executorJson.task.role, 'observer')
    assert.equal(executorJson.task.result?.output, 'on the busy one')
    assert.equal(executorJson.task.result?.executor, busy.peerId.toString())
    const onSubmitter = await cli('--data', data, 'task', pinnedResult.task)
    assert.match(onSubmitter.out, /output +on the busy one/)

    const local = await cli('--data', data, 'run', echo, '--input', 'right here', '--local')
    assert.equal(local.code, 0, local.err)
    assert.equal(local.out, 'right here\n')
    assert.match(local.err, new RegExp(`^ran on ${self.name} \\(this device\\): task [0-9a-f]{32} \\("hive-node explain [0-9a-f]{32}" says why\\)\n$`))
    const pinnedText = await cli('--data', data, 'run', echo, '--input', 'by name', '--on', busy.name)
    assert.equal(pinnedText.code, 0, pinnedText.err)
    assert.match(pinnedText.err, new RegExp(`^ran on ${busy.name}: task `), 'the device by its name, not its PeerId')

    const shown = await cli('--data', data, 'task', result.task)
    assert.equal(shown.code, 0, shown.err)
    assert.match(shown.out, /status +done/)
    assert.match(shown.out, /output +hello hive/)
    const shownJson = JSON.parse((await cli('--data', data, 'task', result.task, '--json')).out) as { task: TaskView }
    assert.equal(shownJson.task.result?.executor, result.executor)

    const explained = await cli('--data', data, 'explain', result.task)
    assert.equal(explained.code, 0, explained.err)
    assert.match(explained.out, /Rule: lowest cost wins/)
    assert.match(explained.out, new RegExp(`${busy.name} .*\\n(.*\\n)*? +\\+1000 load: load 40\\.00`))
    assert.match(explained.out, /Round 1: /)

    const listed = JSON.parse((await cli('--data', data, 'tasks', '--json')).out) as { tasks: TaskView[] }
    assert.deepEqual(listed.tasks.slice(0, 3).map(t => t.status), ['done', 'done', 'done'])
    assert.ok(listed.tasks.some(t => t.id === result.task))
    const table = await cli('--data', data, 'tasks')
    assert.match(table.out, /^TASK +STATUS +SUBMITTED +BY +RAN ON +ROUND/)

    // an agent's own failure: exit 1 with its message, wherever it ran
    const refuses = join(files, 'refuses.wasm')
    await writeFile(refuses, await watAgent(AGENT_ERROR, { name: 'refuser' }))
    const failed = await cli('--data', data, 'run', refuses, '--input', 'x')
    assert.equal(failed.code, 1)
    assert.match(failed.err, new RegExp(`^error: agent refuser failed: no thanks \\(task [0-9a-f]{32} on ${self.name} \\(this device\\); "hive-node task [0-9a-f]{32}" shows it\\)\n$`), 'the failure names the task and the device')
    assert.ok(self.placement.list().some(t => t.status === 'failed'))
  })

  it('peers shows what each device reports', async () => {
    const shown = await cli('--data', data, 'peers')
    assert.equal(shown.code, 0, shown.err)
    assert.match(shown.out, /CORES +LOAD +TASKS +FREE MEM +POWER +MODELS/)
    assert.match(shown.out, /hive-1 .* 40\.00\* /)
    const json = JSON.parse((await cli('--data', data, 'peers', '--json')).out) as { peers: Array<{ name?: string, capabilities?: { load: number, overridden: string[] } }> }
    const busy = json.peers.find(p => p.name === 'hive-1')
    assert.equal(busy?.capabilities?.load, 40)
    assert.deepEqual(busy?.capabilities?.overridden, ['load'])
  })

  it('start takes capability overrides as flags, checked before anything starts', async () => {
    assert.deepEqual(parseCapabilityFlags(['power=battery:15', 'load=3', 'models=llama3.2, phi4']), { power: { state: 'battery', percent: 15 }, load: 3, models: ['llama3.2', 'phi4'] })
    assert.deepEqual(parseCapabilityFlags(['power=ac', 'cores=4']), { power: 'ac', cores: 4 })
    const dir = join(files, 'never-started')
    for (const bad of ['power=solar', 'load=-1', 'speed=9', 'load']) {
      const result = await cli('--data', dir, 'start', '--capability', bad)
      assert.equal(result.code, 2, bad)
      assert.match(result.err, /--capability/)
    }
  })

  it('refuses bad input with clear errors and usage codes', async () => {
    const node = hive.nodes[0]!
    const token = (await readFile(dataPaths(data).token, 'utf8')).trim()
    const post = async (body: unknown, auth = true, route = '/task'): Promise<{ status: number, body: { error?: { code: string, message: string } } }> => {
      const response = await fetch(`${node.apiUrl ?? ''}${route}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body)
      })
      return { status: response.status, body: await response.json() as { error?: { code: string, message: string } } }
    }
    assert.equal((await post({ digest: 'a'.repeat(64), input: 'x' }, false)).status, 401)
    const notHeld = await post({ digest: 'a'.repeat(64), input: 'x' })
    assert.deepEqual([notHeld.status, notHeld.body.error?.code], [404, 'AgentNotHeld'])
    const garbage = await post({ agent: Buffer.from('not wasm').toString('base64'), input: 'x' })
    assert.deepEqual([garbage.status, garbage.body.error?.code], [400, 'NotWebAssembly'])
    const badContext = await post({ agent: (await readFile(echo)).toString('base64'), input: 'x', contextId: 'no spaces allowed' })
    assert.deepEqual([badContext.status, badContext.body.error?.code], [400, 'InvalidContextId'])
    // an agent that uses a context, sent with no contextId: refused, saying what to send, rather
    // than run in a context thrown away after the run; an agent that uses none needs none
    const keeper = Buffer.from(await watAgent(CONTEXT_ROUNDTRIP, { name: 'keeper', permissions: ['context:read', 'context:write'] })).toString('base64')
    for (const route of ['/task', '/agents/run']) {
      const unnamed = await post({ agent: keeper, input: 'x' }, true, route)
      assert.deepEqual([unnamed.status, unnamed.body.error?.code], [400, 'ContextRequired'], route)
      assert.match(unnamed.body.error?.message ?? '', /agent keeper uses a context \(context:read, context:write\).*give "contextId", e\.g\. "agent-keeper"/)
    }
    assert.equal((await post({ agent: keeper, input: 'x', contextId: 'agent-keeper' })).status, 202)
    assert.equal((await post({ agent: keeper, input: 'x', contextId: 'agent-keeper' }, true, '/agents/run')).status, 200)
    assert.equal((await post({ agent: (await readFile(echo)).toString('base64'), input: 'x' })).status, 202)

    const unknown = await fetch(`${node.apiUrl ?? ''}/task/${'0'.repeat(32)}`)
    assert.deepEqual([unknown.status, ((await unknown.json()) as { error: { code: string } }).error.code], [404, 'TaskNotFound'])

    assert.equal((await cli('--data', data, 'explain', 'not-a-task')).code, 2)
    assert.equal((await cli('--data', data, 'run', echo, '--input', 'x', '--on', 'a', '--local')).code, 2)
    const nobody = await cli('--data', data, 'run', echo, '--input', 'x', '--on', 'no-such-device')
    assert.equal(nobody.code, 2)
    assert.match(nobody.err, /no live device is named "no-such-device"/)
    const missing = await cli('--data', data, 'task', 'f'.repeat(32))
    assert.equal(missing.code, 1)
    assert.match(missing.err, /TaskNotFound|no task/)
  })
})
