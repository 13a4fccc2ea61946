// hive-node simulate: the seeded schedule (pure), the workload's refusals, and the command run
// end to end on the documented examples (tasks; workflows beside tasks): six real nodes in one
// process, the report as JSON.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { readFile } from 'node:fs/promises'
import { parseWorkload, schedule } from '../../node/simulate/workload.ts'
import { runCli } from '../helpers/cli.ts'
import type { SimulationReport } from '../../node/simulate/runner.ts'

const EXAMPLE = new URL('../../docs/simulate/example.json', import.meta.url)
const WORKFLOWS = new URL('../../docs/simulate/workflows.json', import.meta.url)
const DEVICES = ['laptop-1', 'laptop-2', 'laptop-3', 'desktop-1', 'desktop-2', 'server-1']

describe('simulate', () => {
  it('a schedule is the same for the same seed, and another for another seed', async () => {
    const workload = parseWorkload(await readFile(EXAMPLE, 'utf8'), 'example.json', DEVICES)
    const a = schedule(workload, DEVICES, 7)
    assert.deepEqual(schedule(workload, DEVICES, 7), a)
    assert.notDeepEqual(schedule(workload, DEVICES, 8), a)
    assert.equal(a.filter(e => e.kind === 'task').length, 20)
    assert.deepEqual(a.filter(e => e.kind !== 'task').map(e => `${e.kind} ${'device' in e ? e.device : ''} ${e.atMs}`), ['cut laptop-2 3000', 'kill laptop-3 5000', 'heal laptop-2 7000'])
    for (let i = 1; i < a.length; i++) assert.ok(a[i]!.atMs >= a[i - 1]!.atMs, 'in time order')
  })

  it('refuses unknown devices, workflows that cannot run, and malformed workloads, saying what to do', () => {
    const refuses = (text: string, says: string): void => {
      assert.throws(() => parseWorkload(text, 'w.json', DEVICES), (err: Error) => err.name === 'UsageError' && err.message.includes(says), says)
    }
    const flow = (steps: unknown[], extra = ''): string => `{"workflows":[{"name":"f","count":1,"ratePerSecond":1${extra},"workflow":{"version":1,"steps":${JSON.stringify(steps)}}}]}`
    refuses('{"tasks":[{"name":"a","count":1,"ratePerSecond":1,"from":"toaster-1"}]}', 'names device "toaster-1"')
    refuses(flow([{ name: 'a', agent: 'work' }], ',"from":"toaster-1"'), 'names device "toaster-1"')
    refuses(flow([{ name: 'a', agent: 'work', needs: ['b'] }, { name: 'b', agent: 'work', needs: ['a'] }]), 'form a cycle')
    refuses(flow([{ name: 'a', agent: 'agents/summarise.wasm' }]), 'step "a": agent "agents/summarise.wasm" is not one a simulation holds; name work or fail')
    refuses(flow([{ name: 'a', agent: 'work', input: '${{ nope }}' }]), 'docs/simulate/workflows.json')
    refuses('{"tasks":[]}', 'give at least one group of tasks or of workflows')
    refuses('{"tasks":[],"workflows":[]}', 'docs/simulate/example.json')
    refuses('{', 'is not JSON')
  })

  it('schedules workflows by seed beside the tasks, leaving the tasks\' arrivals as they were', async () => {
    const text = await readFile(WORKFLOWS, 'utf8')
    const workload = parseWorkload(text, 'workflows.json', DEVICES)
    const a = schedule(workload, DEVICES, 3)
    assert.deepEqual(schedule(workload, DEVICES, 3), a)
    assert.deepEqual(a.filter(e => e.kind === 'flow').map(e => `${'group' in e ? e.group : ''}#${'n' in e ? e.n : ''}`).sort(), ['digest#1', 'digest#2', 'report#1'])
    const report = a.find(e => e.kind === 'flow' && e.group === 'report')
    assert.equal(report != null && 'from' in report ? report.from : undefined, 'desktop-1')
    const tasksOnly = schedule(parseWorkload(JSON.stringify({ ...JSON.parse(text), workflows: [] }), 'w.json', DEVICES), DEVICES, 3)
    assert.deepEqual(a.filter(e => e.kind === 'task'), tasksOnly.filter(e => e.kind === 'task'))
  })

  it('runs the example workload on six real nodes and reports where each task ran and why', async () => {
    const { code, stdout, stderr } = await runCli(['simulate', '--devices', '3xlaptop:battery,2xdesktop,1xserver:gpu', '--workload', EXAMPLE.pathname, '--seed', '7', '--json'])
    assert.equal(code, 0, stderr)
    const { report } = JSON.parse(stdout) as { report: SimulationReport }
    assert.equal(report.seed, 7)
    assert.equal(report.tasks.length, 20)
    for (const t of report.tasks.filter(t => t.status === 'done')) {
      assert.ok(t.ranOn != null && t.why != null && t.latencyMs != null, JSON.stringify(t))
      // the laptops have 4 cores: a task needing 8 never runs on one
      if (t.group === 'heavy') assert.ok(!t.ranOn.startsWith('laptop'), `heavy task ran on ${t.ranOn}`)
    }
    const broken = report.tasks.filter(t => t.group === 'broken')
    assert.deepEqual(broken.map(t => t.status), ['failed', 'failed'])
    for (const t of broken) assert.match(t.error ?? '', /simulated failure/)
    // faults happened as scheduled
    assert.equal(report.usage.find(u => u.name === 'laptop-3')?.state, 'killed')
    assert.equal(report.usage.find(u => u.name === 'laptop-2')?.state, 'up', 'the cut laptop was healed')
    assert.deepEqual(report.faults.map(f => `${f.kind} ${f.device}`), ['cut laptop-2', 'kill laptop-3', 'heal laptop-2'])
    // most tasks end done even with a device killed and one cut off (only one the killed device submitted may be lost)
    assert.ok(report.tasks.filter(t => t.status === 'done').length >= 15, JSON.stringify(report.failures))
    assert.ok(report.latency.count > 0 && report.latency.p50 <= report.latency.p99)
  })

  it('runs the workflows example: each workflow\'s outcome, and where each of its steps\' tasks ran and why', async () => {
    const { code, stdout, stderr } = await runCli(['simulate', '--devices', '3xlaptop:battery,2xdesktop,1xserver:gpu', '--workload', WORKFLOWS.pathname, '--seed', '3', '--json'])
    assert.equal(code, 0, stderr)
    const { report } = JSON.parse(stdout) as { report: SimulationReport }
    assert.deepEqual(report.flows.map(f => `${f.group}#${f.n}`).sort(), ['digest#1', 'digest#2', 'report#1'])
    for (const flow of report.flows.filter(f => f.group === 'digest')) {
      assert.equal(flow.status, 'done', JSON.stringify(flow))
      // split, three parts (the fork over split's output), join
      assert.deepEqual([flow.tasks, flow.tasksDone], [5, 5])
      assert.ok(flow.latencyMs != null && flow.latencyMs > 0)
      const steps = report.tasks.filter(t => t.flow === `digest#${flow.n}`).map(t => t.step).sort()
      assert.deepEqual(steps, ['join', 'part[0]', 'part[1]', 'part[2]', 'split'])
    }
    const failed = report.flows.find(f => f.group === 'report')
    assert.equal(failed?.status, 'failed')
    assert.match(failed?.error ?? '', /in step publish/)
    assert.match(report.tasks.find(t => t.flow === 'report#1' && t.step === 'publish')?.error ?? '', /simulated failure/)
    for (const t of report.tasks.filter(t => t.flow != null && t.status === 'done')) {
      assert.ok(t.ranOn != null && t.why != null, JSON.stringify(t))
      // a part needs 8 cores: never on a laptop (4)
      if (t.step?.startsWith('part') === true) assert.ok(!t.ranOn.startsWith('laptop'), `${t.flow}/${t.step} ran on ${t.ranOn}`)
    }
    assert.equal(report.tasks.filter(t => t.flow == null).length, 4, 'the plain tasks are reported beside them')
    assert.equal(report.flowLatency.count, 2)
    // the workflows' tasks count in each device's utilisation
    assert.equal(report.usage.reduce((n, u) => n + u.tasks, 0), report.tasks.filter(t => t.ranOn != null && t.runMs != null).length)
  })
})
