// Workflows on a real hive of four nodes: `hive-node flow run` of fetch → fork(summarise each of
// 12 items) → join(report) spreads the fork over the hive through the normal auction, returns the
// join's output, and `flow explain` shows where each step ran and why; each step has exactly one
// `ok` ledger record. Bad workflow files are refused, naming the step, before anything runs;
// cancel, retries and timeouts end steps as they say.

import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { AGENT_ERROR, ECHO, watAgent } from '../sandbox/fixtures.ts'
import { slowEchoWat } from '../lan/agents.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import { runCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { FLOW_LIMITS } from '../../node/flows/index.ts'
import { assertOneOkPerUnit, okRecords, unitTasks } from '../helpers/flows.ts'
import type { FlowExplanation, FlowView } from '../../node/flows/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'

const GiB = 1024 ** 3
const ITEMS = Array.from({ length: 12 }, (_, i) => `item-${String(i).padStart(2, '0')}`)

describe('workflows on a four-node hive', () => {
  let hive: TestHive
  let submitter: HiveNode
  let dir: string
  const agents: Record<string, Uint8Array> = {}
  const digest = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

  before(async () => {
    // equal devices, so each fork task goes where fewest tasks run (ties by the election's hash);
    // the submitter reports a heavy load, so its fork spreads over the other three
    hive = await startHive(4, {
      overrides: (i) => ({ load: i === 0 ? 16 : 0, freeMemory: 8 * GiB, totalMemory: 16 * GiB })
    })
    submitter = hive.nodes[0]!
    dir = await makeTempDir('hive-flows-')
    await mkdir(join(dir, 'agents'))
    agents.fetch = await watAgent(ECHO, { name: 'flow-fetch' })
    agents.summarise = await watAgent(slowEchoWat(2 ** 24), { name: 'flow-summarise', limits: { timeoutMs: 120_000, memoryMiB: 1 } })
    agents.report = await watAgent(ECHO, { name: 'flow-report' })
    agents.slow = await watAgent(slowEchoWat(2 ** 26), { name: 'flow-slow', limits: { timeoutMs: 120_000, memoryMiB: 1 } })
    agents.fail = await watAgent(AGENT_ERROR, { name: 'flow-fail' })
    for (const [name, bytes] of Object.entries(agents)) await writeFile(join(dir, 'agents', `${name}.wasm`), bytes)
  })

  after(async () => {
    await hive?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it('runs fetch → fork(summarise 12) → join(report) across at least 3 devices, with the join\'s output and each step explained', async () => {
    const file = join(dir, 'digest.json')
    await writeFile(file, JSON.stringify({
      $schema: '../docs/workflow.schema.json',
      version: 1,
      name: 'digest',
      steps: [
        { name: 'fetch', agent: './agents/fetch.wasm', input: '${{ input }}' },
        { name: 'summarise', agent: './agents/summarise.wasm', fork: { over: '${{ steps.fetch.output }}', concurrency: 4 }, input: 'summary of ${{ item }}', retries: 1 },
        { name: 'report', agent: './agents/report.wasm', input: 'report: ${{ steps.summarise.output }}' }
      ]
    }))
    const run = await runCli(['--data', submitter.dataDir, 'flow', 'run', file, '--input', JSON.stringify(ITEMS), '--json'])
    assert.equal(run.code, 0, run.stderr)
    const flow = (JSON.parse(run.stdout) as { flow: FlowView }).flow
    assert.equal(flow.status, 'done')
    assert.equal(flow.output, `report: ${JSON.stringify(ITEMS.map(i => `summary of ${i}`))}`)
    const fork = flow.steps.find(s => s.name === 'summarise')!
    assert.equal(fork.units.length, 12)
    const devices = new Set(fork.units.map(u => u.executor))
    assert.ok(devices.size >= 3, `the fork ran on ${devices.size} devices: ${[...devices].join(', ')}`)

    // the human output of a run is the workflow's output
    const human = await runCli(['--data', submitter.dataDir, 'flow', 'status', flow.id])
    assert.equal(human.code, 0, human.stderr)
    assert.match(human.stdout, /summarise\s+done\s+fork ×4\s+12\/12 done/)

    const explained = await runCli(['--data', submitter.dataDir, 'flow', 'explain', flow.id, '--json'])
    assert.equal(explained.code, 0, explained.stderr)
    const { explanation } = JSON.parse(explained.stdout) as { explanation: FlowExplanation }
    assert.equal(explanation.units.length, 14, 'fetch, 12 fork elements and report')
    for (const unit of explanation.units) {
      assert.ok(unit.explanation != null, `${unit.step}${unit.index != null ? `[${unit.index}]` : ''} is explained`)
      assert.equal(unit.explanation.winner, unit.view?.result?.executor ?? unit.explanation.winner)
      assert.ok(unit.explanation.rounds.length >= 1 && unit.explanation.bids.length >= 1)
    }
    const text = await runCli(['--data', submitter.dataDir, 'flow', 'explain', flow.id])
    assert.equal(text.code, 0, text.stderr)
    assert.match(text.stdout, /Step fetch: done/)
    assert.match(text.stdout, /Step summarise: done — fork of 12/)
    assert.match(text.stdout, /\[11\] task [0-9a-f]{32} done on hive-\d/)
    assert.match(text.stdout, /why: .*cost/)

    await waitFor(async () => (await okRecords(hive.nodes, new Set([...unitTasks(flow).values()].flat()))).size === 14, { message: 'every step\'s ledger record is appended', timeoutMs: 30_000 })
    await assertOneOkPerUnit(hive.nodes, flow)
  })

  it('refuses bad workflow files before anything runs, naming the step, and keeps what is stored', async () => {
    const before = (await submitter.flows.list({ limit: 500 })).map(f => f.id)
    const tasksBefore = submitter.placement.list({ limit: 1000 }).length
    const cases: Array<[string, unknown, RegExp]> = [
      ['cycle.json', { version: 1, steps: [{ name: 'a', agent: './agents/fetch.wasm', needs: ['b'] }, { name: 'b', agent: './agents/fetch.wasm', needs: ['a'] }] }, /steps "a" → "b" → "a" form a cycle|steps "b" → "a" → "b" form a cycle/],
      ['unknown.json', { version: 1, steps: [{ name: 'a', agent: './agents/fetch.wasm', input: '${{ steps.missing.output }}' }] }, /step "a" refers to step "missing"/],
      ['template.json', { version: 1, steps: [{ name: 'report', agent: './agents/fetch.wasm', input: '${{ steps.x.output' }] }, /step "report", input: bad template/],
      ['agent.json', { version: 1, steps: [{ name: 'a', agent: './agents/none.wasm' }] }, /step "a": no file .*none.wasm/],
      ['shape.json', { version: 1, steps: [{ name: 'a', agent: './agents/fetch.wasm', fork: { over: '[]', concurrency: FLOW_LIMITS.maxConcurrency + 1 } }] }, /step "a", fork.concurrency/]
    ]
    for (const [name, content, pattern] of cases) {
      await writeFile(join(dir, name), JSON.stringify(content))
      const run = await runCli(['--data', submitter.dataDir, 'flow', 'run', join(dir, name)])
      assert.equal(run.code, 1, `${name}: ${run.stderr}`)
      assert.match(run.stderr, pattern, name)
    }
    await writeFile(join(dir, 'broken.json'), '{ "version": 1, ')
    const broken = await runCli(['--data', submitter.dataDir, 'flow', 'run', join(dir, 'broken.json')])
    assert.equal(broken.code, 1)
    assert.match(broken.stderr, /broken.json is not JSON/)
    // the node checks what reaches it too, naming the step
    const api = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'x', agent: 'a'.repeat(64), needs: ['x'] }] } })
    assert.equal(api.status, 400)
    assert.equal(api.body.error.code, 'InvalidWorkflow')
    assert.match(api.body.error.message, /step "x" depends on itself/)
    assert.deepEqual((await submitter.flows.list({ limit: 500 })).map(f => f.id), before, 'no workflow was stored')
    assert.equal(submitter.placement.list({ limit: 1000 }).length, tasksBefore, 'no task was submitted')
  })

  it('validates POST /flows with bounds: unknown fields, agents it does not hold, registry names, sizes', async () => {
    const unknown = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'a', agent: 'a'.repeat(64) }] }, extra: 1 })
    assert.equal(unknown.status, 400)
    const notHeld = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'a', agent: 'b'.repeat(64) }] } })
    assert.equal(notHeld.status, 404)
    assert.equal(notHeld.body.error.code, 'FlowAgentNotFound')
    assert.match(notHeld.body.error.message, /step "a": this node holds no agent/)
    const registry = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'a', agent: 'summarise@1.0.0' }] } })
    assert.equal(registry.status, 404)
    assert.match(registry.body.error.message, /step "a": agent summarise@1.0.0 names a registry agent, and this node has no agent registry/)
    const path = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'a', agent: './a.wasm' }] } })
    assert.equal(path.status, 400)
    assert.match(path.body.error.message, /step "a": agent ".\/a.wasm" is neither a digest nor NAME@VERSION/)
    const huge = await apiPost(submitter, '/flows', { workflow: { version: 1, description: 'x'.repeat(FLOW_LIMITS.maxFileBytes), steps: [{ name: 'a', agent: 'a'.repeat(64) }] } })
    assert.equal(huge.status, 400)
    assert.match(huge.body.error.message, /at most 262144/)
    const input = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'a', agent: digest(agents.fetch!) }] }, input: 'x'.repeat(FLOW_LIMITS.maxInputBytes + 1), agents: { [digest(agents.fetch!)]: Buffer.from(agents.fetch!).toString('base64') } })
    assert.equal(input.status, 400)
    assert.match(input.body.error.message, /input is \d+ bytes; at most/)
    const wrongBytes = await apiPost(submitter, '/flows', { workflow: { version: 1, steps: [{ name: 'a', agent: 'c'.repeat(64) }] }, agents: { ['c'.repeat(64)]: Buffer.from(agents.fetch!).toString('base64') } })
    assert.equal(wrongBytes.status, 400)
    assert.match(wrongBytes.body.error.message, /another digest/)
    const missing = await fetch(`${submitter.apiUrl!}/flows/${'0'.repeat(24)}`)
    assert.equal(missing.status, 404)
    const bad = await fetch(`${submitter.apiUrl!}/flows/nope`)
    assert.equal(bad.status, 404)
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'FlowNotFound')
  })

  it('cancels a running workflow: its tasks under way are cancelled', async () => {
    const flow = await submitter.flows.run({
      workflow: { version: 1, steps: [{ name: 'long', agent: digest(agents.slow!), fork: { over: '["a","b"]', concurrency: 2 }, input: '${{ item }}'.padEnd(400, '.') }] },
      agents: new Map([[digest(agents.slow!), agents.slow!]])
    })
    const running = await waitFor(async () => {
      const view = await submitter.flows.get(flow.id)
      const tasks = view?.steps[0]?.units.map(u => u.task).filter((t): t is string => t != null) ?? []
      return tasks.length === 2 && tasks.every(t => submitter.placement.get(t)?.status === 'running') ? tasks : undefined
    }, { message: 'both fork tasks run', timeoutMs: 60_000 })
    const answer = await fetch(`${submitter.apiUrl!}/flows/${flow.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${await token(submitter)}` } })
    assert.equal(answer.status, 200)
    const cancelled = ((await answer.json()) as { flow: FlowView }).flow
    assert.equal(cancelled.status, 'cancelled')
    for (const task of running) assert.equal(submitter.placement.get(task)?.status, 'cancelled')
    const again = await fetch(`${submitter.apiUrl!}/flows/${flow.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${await token(submitter)}` } })
    assert.equal(again.status, 409)
  })

  it('retries a failing step, then fails the workflow naming it; a step past its timeout is cancelled', async () => {
    const failing = await submitter.flows.run({
      workflow: { version: 1, steps: [{ name: 'ok', agent: digest(agents.fetch!), input: 'x' }, { name: 'flaky', agent: digest(agents.fail!), needs: ['ok'], retries: 1 }] },
      agents: new Map([[digest(agents.fetch!), agents.fetch!], [digest(agents.fail!), agents.fail!]])
    })
    const failed = await submitter.flows.wait(failing.id, { signal: AbortSignal.timeout(120_000) })
    assert.equal(failed.status, 'failed')
    assert.equal(failed.error?.step, 'flaky')
    assert.match(failed.error?.message ?? '', /step "flaky" failed after 2 attempts/)
    assert.equal(failed.steps[1]?.units[0]?.attempts.length, 2)

    const slow = await submitter.flows.run({
      workflow: { version: 1, steps: [{ name: 'late', agent: digest(agents.slow!), input: 'x'.repeat(400), timeoutMs: 1000 }] },
      agents: new Map([[digest(agents.slow!), agents.slow!]])
    })
    const timedOut = await submitter.flows.wait(slow.id, { signal: AbortSignal.timeout(120_000) })
    assert.equal(timedOut.status, 'failed')
    assert.match(timedOut.error?.message ?? '', /timeout of 1000 ms/)
    const task = timedOut.steps[0]?.units[0]?.task
    assert.equal(submitter.placement.get(task!)?.status, 'cancelled')
  })
})

async function token (node: HiveNode): Promise<string> {
  const { readFile } = await import('node:fs/promises')
  const { dataPaths } = await import('../../node/config.ts')
  return (await readFile(dataPaths(node.dataDir).token, 'utf8')).trim()
}

async function apiPost (node: HiveNode, path: string, body: unknown): Promise<{ status: number, body: { error: { code: string, message: string } } }> {
  const res = await fetch(node.apiUrl! + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${await token(node)}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  return { status: res.status, body: await res.json() as { error: { code: string, message: string } } }
}
