// The owner's controls as a user meets them, on two real nodes: `hive-node cancel` (and
// DELETE /task/:id), `halt`, `resume`, and the halt in `status`, `tasks` and the API.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { main } from '../../../node/cli.ts'
import { dataPaths } from '../../../node/config.ts'
import { ENDLESS_LOOP, watAgent } from '../../sandbox/fixtures.ts'
import { waitFor } from '../../helpers/wait.ts'
import { startHive } from '../placement/fixture.ts'
import type { TaskView } from '../../../protocol/placement/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { TestHive } from '../placement/fixture.ts'

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

describe('hive-node cancel, halt and resume', () => {
  let hive: TestHive
  let a: HiveNode
  let b: HiveNode
  let endless: Uint8Array

  before(async () => {
    hive = await startHive(2)
    ;[a, b] = hive.nodes as [HiveNode, HiveNode]
    endless = await watAgent(ENDLESS_LOOP, { name: 'endless-cli', limits: { timeoutMs: 600_000, memoryMiB: 1 } })
  })

  after(async () => { await hive.stop() })

  it('cancel stops a task submitted here, and names the submitter for one submitted elsewhere', async () => {
    const task = await a.placement.submit({ agent: endless, input: 'x', requirements: { peer: b.peerId.toString() } })
    await waitFor(() => b.placement.running() === 1 && b.placement.get(task.id) != null, { message: 'the agent runs on b' })

    const elsewhere = await cli('--data', hive.mesh.dirs[1]!, 'cancel', task.id)
    assert.equal(elsewhere.code, 2)
    assert.match(elsewhere.err, new RegExp(`submitted on ${a.name} .*hive-node cancel ${task.id}`))

    const done = await cli('--data', hive.mesh.dirs[0]!, 'cancel', task.id, '--json')
    assert.equal(done.code, 0, done.err)
    assert.equal((JSON.parse(done.out) as { task: TaskView }).task.status, 'cancelled')
    await waitFor(() => b.placement.running() === 0, { message: 'the run stopped on b' })

    const again = await cli('--data', hive.mesh.dirs[0]!, 'cancel', task.id)
    assert.equal(again.code, 1)
    assert.match(again.err, /TaskAlreadyEnded|already cancelled/)
    const bad = await cli('--data', hive.mesh.dirs[0]!, 'cancel', 'nope')
    assert.equal(bad.code, 2)

    const listed = await cli('--data', hive.mesh.dirs[0]!, 'tasks')
    assert.match(listed.out, new RegExp(`${task.id} +cancelled`))
  })

  it('halt shows in status, tasks and the API on every device, refuses tasks, and resume lifts it', async () => {
    // an agent run directly on b (POST /agents/run, outside placement) is stopped by the halt too
    const token = async (dir: string): Promise<string> => (await readFile(dataPaths(dir).token, 'utf8')).trim()
    const direct = fetch(`${b.apiUrl ?? ''}/agents/run`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(hive.mesh.dirs[1]!)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: Buffer.from(endless).toString('base64'), input: 'direct' })
    })
    await waitFor(() => b.sandbox.stats().busy === 1, { message: 'the direct run is under way on b' })

    const halted = await cli('--data', hive.mesh.dirs[0]!, 'halt', '--reason', 'maintenance')
    assert.equal(halted.code, 0, halted.err)
    assert.match(halted.out, /HALTED +by .* maintenance/)
    await waitFor(() => b.control.state().halted, { message: 'b hears the halt' })
    const stopped = await direct
    assert.equal(stopped.status, 409)
    assert.equal((await stopped.json() as { error: { code: string } }).error.code, 'Halted')
    const recorded = (await b.ledger.list()).filter(l => l.record?.placement.includes('POST /agents/run'))
    assert.equal(recorded.at(-1)?.record?.status, 'cancelled', 'the stopped direct run is recorded cancelled')

    const status = await cli('--data', hive.mesh.dirs[1]!, 'status')
    assert.match(status.out, new RegExp(`HALTED +by ${a.name} .*: maintenance`))
    assert.match(status.out, /hive-node resume/)
    const health = JSON.parse((await cli('--data', hive.mesh.dirs[1]!, 'status', '--json')).out) as { halt: { halted: boolean, byName: string, reason: string } }
    assert.deepEqual([health.halt.halted, health.halt.byName, health.halt.reason], [true, a.name, 'maintenance'])
    const tasks = await cli('--data', hive.mesh.dirs[1]!, 'tasks')
    assert.match(tasks.out, /^HALTED +by .*maintenance\n.*hive-node resume/)

    // a submission through the API is refused with the halt's own error
    const response = await fetch(`${b.apiUrl ?? ''}/task`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(hive.mesh.dirs[1]!)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: Buffer.from(endless).toString('base64'), input: 'x' })
    })
    assert.equal(response.status, 409)
    const body = await response.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'Halted')
    assert.match(body.error.message, /"maintenance".*hive-node resume/)

    const resumed = await cli('--data', hive.mesh.dirs[1]!, 'resume')
    assert.equal(resumed.code, 0, resumed.err)
    await waitFor(() => !a.control.state().halted, { message: 'a hears the resume' })
    const notHalted = await cli('--data', hive.mesh.dirs[1]!, 'resume')
    assert.equal(notHalted.code, 1)
    assert.match(notHalted.err, /not halted/)
  })
})
