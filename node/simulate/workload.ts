// A simulated workload: groups of tasks and of workflows with arrival rates, and faults at set
// times, read from a JSON file; and its schedule, a pure function of the workload, the devices
// and a seed, so the same seed gives the same arrivals, submitters and faults every time.

import { z } from 'zod'
import { UsageError } from '../cli-context.ts'
import { FLOW_LIMITS, planWorkflow } from '../flows/index.ts'

const DeviceName = z.string().min(1).max(64)

const TaskGroup = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/i, 'a group name: letters, digits, . _ - (at most 32)'),
  count: z.number().int().min(1).max(10_000),
  /** Mean arrivals per second (a Poisson process). */
  ratePerSecond: z.number().positive().max(1_000),
  /** Built-in `work` (spins; `work` sets how long) or `fail`. */
  agent: z.enum(['work', 'fail']).default('work'),
  /** Units of work per task: the agent spins TURNS_PER_UNIT turns per unit. */
  work: z.number().int().min(0).max(100_000).default(10),
  /** The device that submits every task of the group; any device that is up when omitted. */
  from: DeviceName.optional(),
  requirements: z.strictObject({
    minCores: z.number().int().min(1).max(4096).optional(),
    minMemoryMiB: z.number().int().min(0).max(1 << 24).optional(),
    models: z.array(z.string().min(1).max(128)).max(16).optional()
  }).optional()
})

/** The agents a simulated workflow's steps may name: the built-in ones, by name. */
export const BUILTIN_AGENTS = ['work', 'fail'] as const

const FlowGroup = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/i, 'a group name: letters, digits, . _ - (at most 32)'),
  count: z.number().int().min(1).max(1_000),
  /** Mean arrivals per second (a Poisson process). */
  ratePerSecond: z.number().positive().max(100),
  /** The device that submits every workflow of the group; any device that is up when omitted. */
  from: DeviceName.optional(),
  /** The workflow's input (`${{ input }}` in its templates). */
  input: z.string().max(FLOW_LIMITS.maxInputBytes).default(''),
  /**
   * A workflow as `hive-node flow run` takes it (docs/workflow.schema.json), each step's `agent`
   * one of the built-in agents by name: `work` (spins once per byte of its input, answers the
   * input) or `fail`.
   */
  workflow: z.unknown()
})

const Fault = z.union([
  z.strictObject({ atMs: z.number().int().min(0), kill: DeviceName }),
  z.strictObject({ atMs: z.number().int().min(0), cut: DeviceName, forMs: z.number().int().min(1).optional() }),
  z.strictObject({ atMs: z.number().int().min(0), halt: DeviceName, forMs: z.number().int().min(1).optional(), reason: z.string().max(500).optional() })
])

export const Workload = z.strictObject({
  name: z.string().max(64).optional(),
  description: z.string().max(1000).optional(),
  tasks: z.array(TaskGroup).max(64).default([]),
  /** Fork-join workflows, each step a task placed through the hive's auction on its submitter. */
  workflows: z.array(FlowGroup).max(16).default([]),
  faults: z.array(Fault).max(256).default([])
}).refine(w => w.tasks.length + w.workflows.length > 0, { message: 'give at least one group of tasks or of workflows', path: ['tasks'] })
export type Workload = z.infer<typeof Workload>
export type TaskGroup = z.infer<typeof TaskGroup>
export type FlowGroup = z.infer<typeof FlowGroup>
export type Fault = z.infer<typeof Fault>

export function parseWorkload (text: string, path: string, devices: readonly string[]): Workload {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`${path} is not JSON (${(err as Error).message}); see docs/simulate/example.json for a workload`)
  }
  const parsed = Workload.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UsageError(`${path}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a workload'}; see docs/simulate/example.json for a workload`)
  }
  for (const [i, group] of parsed.data.workflows.entries()) {
    // checked as `flow run` checks a file, so a workload never starts a hive to fail there
    try {
      planWorkflow(group.workflow)
    } catch (err) {
      throw new UsageError(`${path}: workflows.${i} (${group.name}): ${(err as Error).message}; see docs/simulate/workflows.json for a workload with workflows`)
    }
    const steps = (group.workflow as { steps: Array<{ name: string, agent: string }> }).steps
    const other = steps.find(s => !(BUILTIN_AGENTS as readonly string[]).includes(s.agent))
    if (other != null) throw new UsageError(`${path}: workflows.${i} (${group.name}), step "${other.name}": agent "${other.agent.slice(0, 80)}" is not one a simulation holds; name ${BUILTIN_AGENTS.join(' or ')}`)
  }
  const known = new Set(devices)
  const named = [
    ...parsed.data.tasks.flatMap(t => t.from != null ? [t.from] : []),
    ...parsed.data.workflows.flatMap(t => t.from != null ? [t.from] : []),
    ...parsed.data.faults.map(f => 'kill' in f ? f.kill : 'cut' in f ? f.cut : f.halt)
  ]
  const unknown = named.find(n => !known.has(n))
  if (unknown !== undefined) throw new UsageError(`${path} names device "${unknown}", which the hive does not have; devices are ${devices.join(', ')}`)
  return parsed.data
}

/** mulberry32: a small seeded generator, enough for a replayable schedule. */
export function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export type ScheduledEvent =
  | { atMs: number, kind: 'task', group: string, n: number, from: string }
  | { atMs: number, kind: 'flow', group: string, n: number, from: string }
  | { atMs: number, kind: 'kill' | 'cut' | 'heal' | 'halt' | 'resume', device: string, reason?: string }

/**
 * Every arrival (of a task or a workflow) and fault in time order. Arrivals of a group follow a
 * Poisson process of its rate; a group without `from` is submitted by a device drawn at random
 * (the runner moves an arrival to the next device that is up when the drawn one is down then).
 * Task groups draw first, then workflow groups, so adding workflows leaves the tasks' draws as
 * they were.
 */
export function schedule (workload: Workload, devices: readonly string[], seed: number): ScheduledEvent[] {
  const random = seededRandom(seed)
  const events: ScheduledEvent[] = []
  for (const group of workload.tasks) {
    let at = 0
    for (let n = 1; n <= group.count; n++) {
      at += -Math.log(1 - random()) / group.ratePerSecond * 1000
      const from = group.from ?? devices[Math.floor(random() * devices.length)]!
      events.push({ atMs: Math.round(at), kind: 'task', group: group.name, n, from })
    }
  }
  for (const group of workload.workflows) {
    let at = 0
    for (let n = 1; n <= group.count; n++) {
      at += -Math.log(1 - random()) / group.ratePerSecond * 1000
      const from = group.from ?? devices[Math.floor(random() * devices.length)]!
      events.push({ atMs: Math.round(at), kind: 'flow', group: group.name, n, from })
    }
  }
  for (const fault of workload.faults) {
    if ('kill' in fault) events.push({ atMs: fault.atMs, kind: 'kill', device: fault.kill })
    else if ('cut' in fault) {
      events.push({ atMs: fault.atMs, kind: 'cut', device: fault.cut })
      if (fault.forMs != null) events.push({ atMs: fault.atMs + fault.forMs, kind: 'heal', device: fault.cut })
    } else {
      events.push({ atMs: fault.atMs, kind: 'halt', device: fault.halt, ...(fault.reason != null ? { reason: fault.reason } : {}) })
      if (fault.forMs != null) events.push({ atMs: fault.atMs + fault.forMs, kind: 'resume', device: fault.halt })
    }
  }
  // a stable sort keeps equal times in the order they were made
  return events.sort((a, b) => a.atMs - b.atMs)
}
