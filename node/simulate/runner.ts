// Runs a schedule on a virtual hive and reports: where each task ran and why (the submitter's
// explanation of its election), each workflow's outcome and its steps' tasks, each device's
// utilisation, latency percentiles, and failures.

import { createHash } from 'node:crypto'
import { isEnded } from '../../protocol/index.ts'
import type { Explanation, TaskView } from '../../protocol/index.ts'
import type { FlowView } from '../flows/index.ts'
import type { FlowGroup, Workload, ScheduledEvent } from './workload.ts'
import type { VirtualHive } from './virtual-hive.ts'

export interface TaskOutcome {
  group: string
  n: number
  /** A task of a workflow: the workflow (`GROUP#N`), and its step (`STEP` or `STEP[INDEX]` in a fork). */
  flow?: string
  step?: string
  id?: string
  /** The device that submitted it (the drawn one, or the next one up). */
  from: string
  submittedAtMs: number
  status: 'done' | 'failed' | 'cancelled' | 'unfinished' | 'not-submitted'
  ranOn?: string
  rounds?: number
  cost?: number
  why?: string
  /** The winning bid's reasons: each factor with its points. */
  reasons?: string
  latencyMs?: number
  runMs?: number
  error?: string
}

export interface FlowOutcome {
  group: string
  n: number
  id?: string
  from: string
  submittedAtMs: number
  status: 'done' | 'failed' | 'cancelled' | 'unfinished' | 'not-submitted'
  /** Submit → the workflow's end. */
  latencyMs?: number
  /** Its steps' tasks (a fork's element each), and how many of them ended done. */
  tasks: number
  tasksDone: number
  error?: string
}

export interface DeviceUsage {
  name: string
  kind: string
  state: string
  tasks: number
  busyMs: number
  /** Busy time over the run's span, per core. */
  utilisation: number
}

export interface SimulationReport {
  seed: number
  devices: number
  spanMs: number
  /** Every task: those submitted as tasks, and those of each workflow's steps. */
  tasks: TaskOutcome[]
  flows: FlowOutcome[]
  usage: DeviceUsage[]
  /** Of the tasks submitted as tasks that ended done (submit → result). */
  latency: { count: number, p50: number, p90: number, p99: number, max: number }
  /** Of the workflows that ended done (submit → end). */
  flowLatency: { count: number, p50: number, p90: number, p99: number, max: number }
  failures: Array<{ error: string, count: number }>
  faults: Array<{ atMs: number, kind: string, device: string }>
}

export interface RunOptions {
  seed: number
  agents: Record<'work' | 'fail', Uint8Array>
  /** How long a task may take to end once submitted. Default 120 s. */
  taskTimeoutMs?: number
  signal?: AbortSignal
}

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return 0
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]!
}

/** The sentence of a placement's last round, its PeerIds read as the devices' names, and the winning bid's reasons. */
function explained (explanation: Explanation, nameOf: Map<string, string>): Pick<TaskOutcome, 'cost' | 'why' | 'ranOn' | 'reasons'> {
  const round = explanation.rounds.at(-1)
  if (round == null) return {}
  const bid = explanation.bids.find(b => b.bidder === round.winner)
  return {
    cost: round.cost,
    why: round.why.replace(/12D3Koo[1-9A-HJ-NP-Za-km-z]{40,}/g, (peer) => nameOf.get(peer) ?? peer),
    ranOn: nameOf.get(round.winner) ?? round.winner,
    ...(bid != null ? { reasons: bid.reasons.filter(r => r.points !== 0).map(r => `${r.factor} ${Math.round(r.points * 10) / 10}`).join(', ') } : {})
  }
}

/** A workflow group's workflow with each step's built-in agent named by digest, and those agents' bytes. */
function flowRequest (group: FlowGroup, agents: RunOptions['agents']): { workflow: unknown, agents: Map<string, Uint8Array> } {
  const bytes = new Map<string, Uint8Array>()
  const workflow = structuredClone(group.workflow) as { steps: Array<{ agent: string }> }
  for (const step of workflow.steps) {
    const agent = agents[step.agent as 'work' | 'fail']
    const digest = createHash('sha256').update(agent).digest('hex')
    bytes.set(digest, agent)
    step.agent = digest
  }
  return { workflow, agents: bytes }
}

export async function runSchedule (hive: VirtualHive, workload: Workload, events: ScheduledEvent[], options: RunOptions): Promise<SimulationReport> {
  const groups = new Map(workload.tasks.map(g => [g.name, g]))
  const flowGroups = new Map(workload.workflows.map(g => [g.name, g]))
  const nameOf = new Map(hive.devices.map(d => [d.node.peerId.toString(), d.profile.name]))
  const outcomes: TaskOutcome[] = []
  const flows: FlowOutcome[] = []
  const pending: Array<Promise<void>> = []
  const faults: SimulationReport['faults'] = []
  const start = performance.now()
  const names = hive.devices.map(d => d.profile.name)

  const submitter = (wanted: string): string | undefined => {
    const at = names.indexOf(wanted)
    for (let i = 0; i < names.length; i++) {
      const name = names[(at + i) % names.length]!
      if (hive.device(name).state === 'up') return name
    }
    return undefined
  }

  const submit = async (event: Extract<ScheduledEvent, { kind: 'task' }>): Promise<void> => {
    const group = groups.get(event.group)!
    const from = submitter(event.from)
    const outcome: TaskOutcome = { group: event.group, n: event.n, from: from ?? event.from, submittedAtMs: event.atMs, status: 'not-submitted' }
    outcomes.push(outcome)
    if (from == null) { outcome.error = 'NoDeviceUp'; return }
    const node = hive.device(from).node
    const t0 = performance.now()
    let view: TaskView
    try {
      view = await node.placement.submit({
        agent: options.agents[group.agent],
        input: 'w'.repeat(group.work),
        ...(group.requirements != null ? { requirements: group.requirements } : {})
      }, { signal: options.signal })
      outcome.id = view.id
      view = await node.placement.wait(view.id, { signal: AbortSignal.any([AbortSignal.timeout(options.taskTimeoutMs ?? 120_000), ...(options.signal != null ? [options.signal] : [])]) })
    } catch (err) {
      const current = outcome.id != null ? node.placement.get(outcome.id) : undefined
      outcome.status = current != null && !isEnded(current.status) ? 'unfinished' : outcome.id != null ? 'failed' : 'not-submitted'
      // a task dies with the device that submitted it: only the submitter accepts a result
      outcome.error = hive.device(from).state === 'killed' ? 'SubmitterKilled' : (err as Error).name
      return
    }
    outcome.status = view.status === 'done' ? 'done' : view.status === 'cancelled' ? 'cancelled' : 'failed'
    outcome.latencyMs = Math.round(performance.now() - t0)
    if (view.result != null) {
      outcome.ranOn = nameOf.get(view.result.executor) ?? view.result.executor
      outcome.runMs = Math.round(view.result.durationMs)
      if (!view.result.ok) outcome.error = view.result.error?.slice(0, 120)
    }
    if (view.error != null) outcome.error = view.error.code
    outcome.rounds = view.round
    try {
      const { ranOn, ...why } = explained(await node.placement.explain(view.id), nameOf)
      Object.assign(outcome, why)
      outcome.ranOn ??= ranOn
    } catch { /* a task cancelled before any round has no explanation of a winner */ }
  }

  const submitFlow = async (event: Extract<ScheduledEvent, { kind: 'flow' }>): Promise<void> => {
    const group = flowGroups.get(event.group)!
    const from = submitter(event.from)
    const outcome: FlowOutcome = { group: event.group, n: event.n, from: from ?? event.from, submittedAtMs: event.atMs, status: 'not-submitted', tasks: 0, tasksDone: 0 }
    flows.push(outcome)
    if (from == null) { outcome.error = 'NoDeviceUp'; return }
    const node = hive.device(from).node
    const t0 = performance.now()
    let view: FlowView
    try {
      view = await node.flows.run({ ...flowRequest(group, options.agents), input: group.input })
      outcome.id = view.id
      view = await node.flows.wait(view.id, { signal: AbortSignal.any([AbortSignal.timeout(options.taskTimeoutMs ?? 120_000), ...(options.signal != null ? [options.signal] : [])]) })
    } catch (err) {
      outcome.error = hive.device(from).state === 'killed' ? 'SubmitterKilled' : (err as Error).name
      return
    }
    outcome.status = view.status === 'running' ? 'unfinished' : view.status
    if (view.status === 'done') outcome.latencyMs = Math.round(performance.now() - t0)
    if (view.error != null) outcome.error = `${view.error.code}${view.error.step != null ? ` in step ${view.error.step}` : ''}`
    if (hive.device(from).state === 'killed') return
    // each step's task (each element's, in a fork), as the task table shows a task
    const flow = `${event.group}#${event.n}`
    try {
      const explanation = await node.flows.explain(view.id)
      for (const unit of explanation.units) {
        const task: TaskOutcome = {
          group: event.group,
          n: event.n,
          flow,
          step: unit.index != null ? `${unit.step}[${unit.index}]` : unit.step,
          id: unit.task,
          from,
          submittedAtMs: event.atMs + Math.round((unit.view?.createdAt ?? 0) - (view.createdAt)),
          status: unit.status === 'done' ? 'done' : unit.status === 'cancelled' ? 'cancelled' : unit.status === 'failed' ? 'failed' : 'unfinished'
        }
        if (task.submittedAtMs < event.atMs) task.submittedAtMs = event.atMs
        const result = unit.view?.result ?? unit.explanation?.result
        if (result != null) {
          task.ranOn = nameOf.get(result.executor) ?? result.executor
          task.runMs = Math.round(result.durationMs)
          if (!result.ok) task.error = result.error?.slice(0, 120)
        }
        if (unit.view?.closedAt != null) task.latencyMs = Math.round(unit.view.closedAt - unit.view.createdAt)
        if (unit.view?.error != null) task.error = unit.view.error.code
        if (unit.view != null) task.rounds = unit.view.round
        if (unit.explanation != null) {
          const { ranOn, ...why } = explained(unit.explanation, nameOf)
          Object.assign(task, why)
          task.ranOn ??= ranOn
        }
        outcome.tasks++
        if (task.status === 'done') outcome.tasksDone++
        outcomes.push(task)
      }
    } catch (err) {
      outcome.error ??= `explain: ${(err as Error).name}`
    }
  }

  for (const event of events) {
    const wait = start + event.atMs - performance.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    options.signal?.throwIfAborted()
    if (event.kind === 'task') {
      pending.push(submit(event))
      continue
    }
    if (event.kind === 'flow') {
      pending.push(submitFlow(event))
      continue
    }
    faults.push({ atMs: Math.round(performance.now() - start), kind: event.kind, device: event.device })
    const device = hive.device(event.device)
    if (event.kind === 'kill') await hive.kill(event.device)
    else if (event.kind === 'cut') await hive.cut(event.device)
    else if (event.kind === 'heal') hive.heal(event.device)
    else if (device.state !== 'killed') {
      if (event.kind === 'halt') await device.node.control.halt(event.reason ?? 'simulated halt')
      else await device.node.control.resume()
    }
  }
  await Promise.all(pending)
  const spanMs = Math.round(performance.now() - start)

  const usage: DeviceUsage[] = hive.devices.map(d => {
    const ran = outcomes.filter(o => o.ranOn === d.profile.name && o.runMs != null)
    const busyMs = ran.reduce((sum, o) => sum + (o.runMs ?? 0), 0)
    return { name: d.profile.name, kind: d.profile.kind, state: d.state, tasks: ran.length, busyMs, utilisation: spanMs > 0 ? busyMs / spanMs / d.profile.cores : 0 }
  })
  const latencies = outcomes.filter(o => o.flow == null && o.status === 'done' && o.latencyMs != null).map(o => o.latencyMs!).sort((a, b) => a - b)
  const flowLatencies = flows.filter(f => f.status === 'done' && f.latencyMs != null).map(f => f.latencyMs!).sort((a, b) => a - b)
  const failureCounts = new Map<string, number>()
  for (const o of outcomes) if (o.status !== 'done' && o.flow == null) failureCounts.set(o.error ?? o.status, (failureCounts.get(o.error ?? o.status) ?? 0) + 1)
  for (const f of flows) if (f.status !== 'done') failureCounts.set(`workflow ${f.error ?? f.status}`, (failureCounts.get(`workflow ${f.error ?? f.status}`) ?? 0) + 1)
  outcomes.sort((a, b) => a.submittedAtMs - b.submittedAtMs || a.group.localeCompare(b.group) || a.n - b.n || (a.step ?? '').localeCompare(b.step ?? ''))
  flows.sort((a, b) => a.submittedAtMs - b.submittedAtMs || a.group.localeCompare(b.group) || a.n - b.n)
  const summary = (sorted: number[]): SimulationReport['latency'] => ({ count: sorted.length, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 })
  return {
    seed: options.seed,
    devices: hive.devices.length,
    spanMs,
    tasks: outcomes,
    flows,
    usage,
    latency: summary(latencies),
    flowLatency: summary(flowLatencies),
    failures: [...failureCounts].map(([error, count]) => ({ error, count })).sort((a, b) => b.count - a.count),
    faults
  }
}

function table (header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(header), line(widths.map(w => '-'.repeat(w))), ...rows.map(line)].join('\n')
}

/** The report as the terminal shows it. */
export function formatReport (report: SimulationReport): string {
  const out: string[] = []
  const own = report.tasks.filter(t => t.flow == null).length
  out.push(`simulated ${own} tasks${report.flows.length > 0 ? ` and ${report.flows.length} workflows (${report.tasks.length - own} tasks)` : ''} on ${report.devices} devices in ${(report.spanMs / 1000).toFixed(1)} s (seed ${report.seed})`, '')
  if (report.flows.length > 0) {
    out.push(table(['workflow', 'at', 'from', 'status', 'tasks done', 'latency', 'error'], report.flows.map(f => [
      `${f.group}#${f.n}`, `${(f.submittedAtMs / 1000).toFixed(2)}s`, f.from, f.status, `${f.tasksDone}/${f.tasks}`,
      f.latencyMs != null ? `${f.latencyMs} ms` : '-', f.error ?? ''
    ])), '')
  }
  out.push(table(['task', 'at', 'from', 'status', 'ran on', 'cost', 'latency', 'why'], report.tasks.map(t => [
    t.flow != null ? `${t.flow}/${t.step ?? ''}` : `${t.group}#${t.n}`, `${(t.submittedAtMs / 1000).toFixed(2)}s`, t.from, t.status, t.ranOn ?? '-', t.cost?.toFixed(1) ?? '-',
    t.latencyMs != null ? `${t.latencyMs} ms` : '-', [t.why, t.reasons != null && t.reasons !== '' ? `(${t.reasons})` : undefined, t.status !== 'done' ? t.error : undefined].filter(x => x != null).join(' ').slice(0, 140)
  ])), '')
  out.push(table(['device', 'kind', 'state', 'tasks', 'busy', 'utilisation'], report.usage.map(u => [
    u.name, u.kind, u.state, String(u.tasks), `${u.busyMs} ms`, `${(u.utilisation * 100).toFixed(1)} %`
  ])), '')
  const l = report.latency
  out.push(`latency of ${l.count} done tasks (submit → result): p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms`)
  const f = report.flowLatency
  if (report.flows.length > 0) out.push(`latency of ${f.count} done workflows (submit → end): p50 ${f.p50} ms, p90 ${f.p90} ms, p99 ${f.p99} ms, max ${f.max} ms`)
  out.push(report.failures.length === 0 ? 'failures: none' : `failures: ${report.failures.map(f => `${f.error} × ${f.count}`).join(', ')}`)
  if (report.faults.length > 0) out.push(`faults: ${report.faults.map(f => `${f.kind} ${f.device} at ${(f.atMs / 1000).toFixed(1)} s`).join(', ')}`)
  return out.join('\n')
}
