// The bid: whether a device can run a task at all (only permanent reasons say no), and what it
// would cost, with each term spelled out. Pure functions of a capability report, so a bid can
// be explained, re-derived and tested without a network.

import type { BidPayload, BidState, Reason, Requirements } from './messages.ts'
import type { CapabilityReport, OverridableField } from '../capabilities/index.ts'

const MiB = 1024 * 1024

/** Points per unit of load per core: a device whose every core is busy pays this much. */
export const LOAD_POINTS_PER_CORE = 50
/** Points for memory fully in use; the share in use is charged proportionally. */
export const MEMORY_POINTS = 20
/** Points when free memory is below what the task needs (it may still free up: not a refusal). */
export const MEMORY_SHORT_POINTS = 500
export const POWER_POINTS = { ac: 0, unknown: 10, battery: 200 } as const
/** Extra points on a battery below LOW_BATTERY_PERCENT. */
export const LOW_BATTERY_POINTS = 100
export const LOW_BATTERY_PERCENT = 20
/** Points for having to fetch the agent, plus one per MiB of it. */
export const FETCH_POINTS = 5
/** Points per model the task names that this device does not list (it would reach it elsewhere). */
export const MODEL_MISSING_POINTS = 100

/** Points for running a task whose submitter this device reaches only through a relay. */
export const RELAYED_POINTS = 10
/** And per MiB that crosses the relay: the input, and the agent when it must be fetched. */
export const RELAYED_POINTS_PER_MIB = 40

export type Capability = { ok: true } | { ok: false, reason: string }

/**
 * Whether a device can ever run a task: pinned elsewhere, a runtime or model it lacks, fewer
 * cores or less total memory than required. Load and free memory never make it say no.
 */
export function canRun (requirements: Requirements, caps: CapabilityReport, peerId: string): Capability {
  if (requirements.peer != null && requirements.peer !== peerId) return { ok: false, reason: `the task is pinned to ${requirements.peer}` }
  if (!caps.runtimes.includes(requirements.runtime)) return { ok: false, reason: `runtime ${requirements.runtime} is not offered here (offered: ${caps.runtimes.join(', ') || 'none'})` }
  const missing = requirements.models.filter(m => !caps.models.includes(m))
  if (missing.length > 0) return { ok: false, reason: `model${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not available here` }
  if (requirements.minCores != null && caps.cores < requirements.minCores) return { ok: false, reason: `needs ${requirements.minCores} cores, this device has ${caps.cores}` }
  if (requirements.minMemoryMiB != null && caps.totalMemory < requirements.minMemoryMiB * MiB) {
    return { ok: false, reason: `needs ${requirements.minMemoryMiB} MiB of memory, this device has ${Math.floor(caps.totalMemory / MiB)} MiB in all` }
  }
  return { ok: true }
}

export interface BidContext {
  /** Whether this device already holds the agent's bytes. */
  holdsAgent: boolean
  agentSize: number
  /** This device reaches the submitter only through a relay. */
  relayed?: boolean
  /** Bytes of the task's input (what crosses a relay besides the agent). */
  inputSize?: number
}

function round1 (n: number): number {
  return Math.round(n * 10) / 10
}

function plural (n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** The cost of running a task here, lower is better, as the sum of its reasons. */
export function computeCost (requirements: Requirements, caps: CapabilityReport, context: BidContext): { cost: number, reasons: Reason[] } {
  const configured = (field: OverridableField): string => caps.overridden.includes(field) ? ' (set in configuration)' : ''
  const reasons: Reason[] = []
  const perCore = caps.load / caps.cores
  reasons.push({
    factor: 'load',
    points: round1(LOAD_POINTS_PER_CORE * perCore),
    detail: `load ${caps.load.toFixed(2)} on ${plural(caps.cores, 'core')} (${perCore.toFixed(2)} per core)${configured('load')}`
  })
  reasons.push({
    factor: 'tasks',
    points: round1(LOAD_POINTS_PER_CORE * caps.running / caps.cores),
    detail: `${plural(caps.running, 'hive task')} running here`
  })
  const needed = (requirements.minMemoryMiB ?? 0) * MiB
  const freeMiB = Math.floor(caps.freeMemory / MiB)
  if (caps.freeMemory < needed) {
    reasons.push({ factor: 'memory', points: MEMORY_SHORT_POINTS, detail: `needs ${requirements.minMemoryMiB ?? 0} MiB free, only ${freeMiB} MiB free${configured('freeMemory')}` })
  } else {
    const used = caps.totalMemory > 0 ? 1 - caps.freeMemory / caps.totalMemory : 1
    reasons.push({ factor: 'memory', points: round1(MEMORY_POINTS * used), detail: `${Math.round(used * 100)}% of memory in use, ${freeMiB} MiB free${configured('freeMemory')}` })
  }
  const power = caps.power
  if (power.state === 'battery') {
    const low = power.percent != null && power.percent < LOW_BATTERY_PERCENT
    reasons.push({
      factor: 'power',
      points: POWER_POINTS.battery + (low ? LOW_BATTERY_POINTS : 0),
      detail: `on battery${power.percent != null ? ` (${power.percent}%${low ? ', low' : ''})` : ''}${configured('power')}`
    })
  } else {
    reasons.push({ factor: 'power', points: POWER_POINTS[power.state], detail: `${power.state === 'ac' ? 'on AC power' : 'power state unknown'}${configured('power')}` })
  }
  if (context.holdsAgent) {
    reasons.push({ factor: 'agent', points: 0, detail: 'already holds the agent' })
  } else {
    reasons.push({ factor: 'agent', points: round1(FETCH_POINTS + context.agentSize / MiB), detail: `must fetch the agent (${Math.ceil(context.agentSize / 1024)} KiB)` })
  }
  if (context.relayed === true) {
    // a reason of the 'agent' kind, which every version reads: it is the agent's (and its
    // input's) journey to this device that the relay makes dearer
    const crossing = (context.inputSize ?? 0) + (context.holdsAgent ? 0 : context.agentSize)
    reasons.push({
      factor: 'agent',
      points: round1(RELAYED_POINTS + RELAYED_POINTS_PER_MIB * crossing / MiB),
      detail: `reached only through a relay: ${Math.ceil(crossing / 1024)} KiB of ${context.holdsAgent ? 'input' : 'agent and input'} cross it`
    })
  }
  if (requirements.models.length > 0) reasons.push(modelReason(requirements.models, caps.models))
  return { cost: round1(reasons.reduce((sum, r) => sum + r.points, 0)), reasons }
}

/** A device that lists the models a task names costs less than one that would reach them elsewhere. */
function modelReason (wanted: string[], listed: string[]): Reason {
  const held = wanted.filter(m => listed.includes(m))
  const missing = wanted.filter(m => !listed.includes(m))
  const parts = [
    ...(held.length > 0 ? [`holds model${held.length > 1 ? 's' : ''} ${held.join(', ')}`] : []),
    ...(missing.length > 0 ? [`does not hold model${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`] : [])
  ]
  return { factor: 'models', points: MODEL_MISSING_POINTS * missing.length, detail: parts.join('; ').slice(0, 200) }
}

export function bidState (caps: CapabilityReport): BidState {
  return {
    cores: caps.cores,
    load: caps.load,
    running: caps.running,
    freeMemory: caps.freeMemory,
    totalMemory: caps.totalMemory,
    power: caps.power.state,
    ...(caps.power.percent != null ? { batteryPercent: caps.power.percent } : {}),
    overridden: caps.overridden
  }
}

/** The whole bid payload a device signs. */
export function makeBid (task: { task: BidPayload['task'], submitter: string, requirements: Requirements, agentSize: number, inputSize?: number }, caps: CapabilityReport, holdsAgent: boolean, relayed = false): BidPayload {
  const { cost, reasons } = computeCost(task.requirements, caps, { holdsAgent, agentSize: task.agentSize, relayed, ...(task.inputSize != null ? { inputSize: task.inputSize } : {}) })
  return { v: 1, task: task.task, submitter: task.submitter, cost, reasons, holdsAgent, state: bidState(caps) }
}
