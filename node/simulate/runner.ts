// Runs a schedule on a virtual hive and reports: where each task ran and why (the submitter's
// explanation of its election), each device's utilisation, latency percentiles, and failures.

import { isEnded } from '../../protocol/index.ts'
import type { TaskView } from '../../protocol/index.ts'
import type { Workload, ScheduledEvent } from './workload.ts'
import type { VirtualHive } from './virtual-hive.ts'

export interface TaskOutcome {
  group: string
  n: number
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
  tasks: TaskOutcome[]
  usage: DeviceUsage[]
  latency: { count: number, p50: number, p90: number, p99: number, max: number }
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

export async function runSchedule (hive: VirtualHive, workload: Workload, events: ScheduledEvent[], options: RunOptions): Promise<SimulationReport> {
  const groups = new Map(workload.tasks.map(g => [g.name, g]))
  const nameOf = new Map(hive.devices.map(d => [d.node.peerId.toString(), d.profile.name]))
  const outcomes: TaskOutcome[] = []
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
      const explanation = await node.placement.explain(view.id)
      const round = explanation.rounds.at(-1)
      if (round != null) {
        outcome.cost = round.cost
        // PeerIds in the sentence read as the devices' names
        outcome.why = round.why.replace(/12D3Koo[1-9A-HJ-NP-Za-km-z]{40,}/g, (peer) => nameOf.get(peer) ?? peer)
        outcome.ranOn ??= nameOf.get(round.winner) ?? round.winner
        const bid = explanation.bids.find(b => b.bidder === round.winner)
        if (bid != null) outcome.reasons = bid.reasons.filter(r => r.points !== 0).map(r => `${r.factor} ${Math.round(r.points * 10) / 10}`).join(', ')
      }
    } catch { /* a task cancelled before any round has no explanation of a winner */ }
  }

  for (const event of events) {
    const wait = start + event.atMs - performance.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
    options.signal?.throwIfAborted()
    if (event.kind === 'task') {
      pending.push(submit(event))
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
  const latencies = outcomes.filter(o => o.status === 'done' && o.latencyMs != null).map(o => o.latencyMs!).sort((a, b) => a - b)
  const failureCounts = new Map<string, number>()
  for (const o of outcomes) if (o.status !== 'done') failureCounts.set(o.error ?? o.status, (failureCounts.get(o.error ?? o.status) ?? 0) + 1)
  outcomes.sort((a, b) => a.submittedAtMs - b.submittedAtMs || a.group.localeCompare(b.group) || a.n - b.n)
  return {
    seed: options.seed,
    devices: hive.devices.length,
    spanMs,
    tasks: outcomes,
    usage,
    latency: { count: latencies.length, p50: percentile(latencies, 50), p90: percentile(latencies, 90), p99: percentile(latencies, 99), max: latencies.at(-1) ?? 0 },
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
  out.push(`simulated ${report.tasks.length} tasks on ${report.devices} devices in ${(report.spanMs / 1000).toFixed(1)} s (seed ${report.seed})`, '')
  out.push(table(['task', 'at', 'from', 'status', 'ran on', 'cost', 'latency', 'why'], report.tasks.map(t => [
    `${t.group}#${t.n}`, `${(t.submittedAtMs / 1000).toFixed(2)}s`, t.from, t.status, t.ranOn ?? '-', t.cost?.toFixed(1) ?? '-',
    t.latencyMs != null ? `${t.latencyMs} ms` : '-', [t.why, t.reasons != null && t.reasons !== '' ? `(${t.reasons})` : undefined, t.status !== 'done' ? t.error : undefined].filter(x => x != null).join(' ').slice(0, 140)
  ])), '')
  out.push(table(['device', 'kind', 'state', 'tasks', 'busy', 'utilisation'], report.usage.map(u => [
    u.name, u.kind, u.state, String(u.tasks), `${u.busyMs} ms`, `${(u.utilisation * 100).toFixed(1)} %`
  ])), '')
  const l = report.latency
  out.push(`latency of ${l.count} done tasks (submit → result): p50 ${l.p50} ms, p90 ${l.p90} ms, p99 ${l.p99} ms, max ${l.max} ms`)
  out.push(report.failures.length === 0 ? 'failures: none' : `failures: ${report.failures.map(f => `${f.error} × ${f.count}`).join(', ')}`)
  if (report.faults.length > 0) out.push(`faults: ${report.faults.map(f => `${f.kind} ${f.device} at ${(f.atMs / 1000).toFixed(1)} s`).join(', ')}`)
  return out.join('\n')
}
