// The hive's policy: rules the owner sets once for every device, signed and replicated as a
// control entry (PROTOCOL.md › Policy), and the pure functions placement asks with them.
//
// A rule never ranks devices (the bid's cost does that); it only says a device will not take a
// task, and why, and what the owner would change to let it. Every refusal names its rule, so
// `explain` can cite it and the owner can find it in `hive-node policy show`.

import { z } from 'zod'
import { PolicyValueError } from './errors.ts'

/** Device rules held at most: one per member and the `*` default, for a hive of 64 devices. */
export const MAX_POLICY_DEVICES = 65
export const MAX_DEVICE_TAGS = 16
/** The key of the rules every device without its own inherits. */
export const ALL_DEVICES = '*'

const TAG = /^[a-z0-9][a-z0-9_-]{0,31}$/
export const TagSchema = z.string().regex(TAG, 'a tag: 1 to 32 lowercase letters, digits, "-" or "_", starting with a letter or digit')
const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/

export const QuietHoursSchema = z.strictObject({
  /** Local time on the device, `HH:MM`, 24 h; `from` after `to` spans midnight. */
  from: z.string().regex(HHMM, 'a time of day as HH:MM (00:00 to 23:59)'),
  to: z.string().regex(HHMM, 'a time of day as HH:MM (00:00 to 23:59)')
}).refine(q => q.from !== q.to, 'quiet hours from and to are the same time; give two different times, or remove them')

export const DeviceRulesSchema = z.strictObject({
  /** Never run while on battery below this charge (percent, 1 to 100). */
  minBattery: z.number().int().min(1).max(100).optional(),
  /** Runs nothing in these hours of the device's own local time. */
  quietHours: QuietHoursSchema.optional(),
  /** At most this many hive tasks running at once here. */
  maxTasks: z.number().int().min(1).max(1024).optional(),
  /** What the device is (`trusted`, `gpu`): a task that asks for tags runs only where all are. */
  tags: z.array(TagSchema).max(MAX_DEVICE_TAGS).optional()
})
export type DeviceRules = z.infer<typeof DeviceRulesSchema>

const DeviceKey = z.string().min(1).max(128).regex(/^(\*|[1-9A-HJ-NP-Za-km-z]+)$/, 'a device PeerId or * for every device')

export const PolicySchema = z.strictObject({
  devices: z.record(DeviceKey, DeviceRulesSchema).refine(d => Object.keys(d).length <= MAX_POLICY_DEVICES, `rules for at most ${MAX_POLICY_DEVICES} devices`)
})
export type Policy = z.infer<typeof PolicySchema>

export const EMPTY_POLICY: Policy = { devices: {} }

/** What a task asks of the device that runs it, beyond its requirements. */
export interface TaskRules {
  /** Never leaves the submitting device. */
  localOnly?: boolean
  /** Only devices that hold every one of these tags. */
  tags?: readonly string[]
}

/** A rule that keeps a device from a task: which one, why now, and what to change. */
export interface PolicyRefusal {
  /** `battery`, `quiet-hours`, `max-tasks`, `tags` or `local-only`. */
  rule: 'battery' | 'quiet-hours' | 'max-tasks' | 'tags' | 'local-only'
  reason: string
  fix: string
}

/** The state of the device a rule is checked against. */
export interface DeviceState {
  power: { state: 'ac' | 'battery' | 'unknown', percent?: number }
  /** Hive tasks running here now. */
  running: number
  /** Minutes since local midnight on the device; unknown for another device (quiet hours are then its own to apply). */
  localMinutes?: number
}

/** The rules of one device: its own over the `*` default, field by field. */
export function rulesFor (policy: Policy, peer: string): DeviceRules {
  return { ...(policy.devices[ALL_DEVICES] ?? {}), ...(policy.devices[peer] ?? {}) }
}

function minutes (hhmm: string): number {
  return Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5))
}

export function inQuietHours (quiet: { from: string, to: string }, localMinutes: number): boolean {
  const from = minutes(quiet.from)
  const to = minutes(quiet.to)
  return from < to ? localMinutes >= from && localMinutes < to : localMinutes >= from || localMinutes < to
}

export function localMinutesOf (date: Date): number {
  return date.getHours() * 60 + date.getMinutes()
}

/** Which of a task's tags a device lacks. */
export function missingTags (policy: Policy, peer: string, tags: readonly string[]): string[] {
  const held = rulesFor(policy, peer).tags ?? []
  return tags.filter(t => !held.includes(t))
}

/**
 * Why a device (`peer`, named `name` in messages) will not take a task under the policy now,
 * or undefined. Checked in a fixed order, so the same state always cites the same rule: the
 * task's own rules first (they hold whatever the device's state), then the device's.
 */
export function policyRefusal (policy: Policy, peer: string, name: string, task: TaskRules & { submitter: string }, state: DeviceState): PolicyRefusal | undefined {
  if (task.localOnly === true && peer !== task.submitter) {
    return { rule: 'local-only', reason: 'the task is local-only: it never leaves the device that submitted it', fix: 'submit it without --local-only to let other devices run it' }
  }
  if (task.tags != null && task.tags.length > 0) {
    const missing = missingTags(policy, peer, task.tags)
    if (missing.length > 0) {
      return {
        rule: 'tags',
        reason: `the task needs tag${missing.length > 1 ? 's' : ''} ${missing.join(', ')}, which ${name} does not have`,
        fix: `give ${name} the tag with "hive-node policy set --device ${name} --tags ${[...(rulesFor(policy, peer).tags ?? []), ...missing].join(',')}", or submit without --tag ${missing.join(',')}`
      }
    }
  }
  const rules = rulesFor(policy, peer)
  if (rules.minBattery != null && state.power.state === 'battery' && (state.power.percent ?? 0) < rules.minBattery) {
    return {
      rule: 'battery',
      reason: `${name} is on battery at ${state.power.percent != null ? `${state.power.percent}%` : 'an unknown charge'}, below the policy's ${rules.minBattery}%`,
      fix: `plug ${name} in, or lower the bound with "hive-node policy set --device ${name} --min-battery N" (0 removes it)`
    }
  }
  if (rules.quietHours != null && state.localMinutes != null && inQuietHours(rules.quietHours, state.localMinutes)) {
    return {
      rule: 'quiet-hours',
      reason: `it is ${hhmm(state.localMinutes)} on ${name}, inside its quiet hours ${rules.quietHours.from}-${rules.quietHours.to}`,
      fix: `wait until ${rules.quietHours.to} there, or change them with "hive-node policy set --device ${name} --quiet-hours HH:MM-HH:MM" ("none" removes them)`
    }
  }
  if (rules.maxTasks != null && state.running >= rules.maxTasks) {
    return {
      rule: 'max-tasks',
      reason: `${name} runs ${state.running} hive task${state.running === 1 ? '' : 's'}, the policy's most at once (${rules.maxTasks})`,
      fix: `wait for one to end, or raise the bound with "hive-node policy set --device ${name} --max-tasks N"`
    }
  }
  return undefined
}

function hhmm (m: number): string {
  return `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`
}

/** The text `explain` shows for a refusal, rule first. */
export function refusalText (r: PolicyRefusal): string {
  return `policy rule ${r.rule}: ${r.reason}; to change: ${r.fix}`
}

/** A change to one device's rules, as `policy set` gives it; null removes a field. */
export interface DeviceRulesChange {
  minBattery?: number | null
  quietHours?: { from: string, to: string } | null
  maxTasks?: number | null
  tags?: string[] | null
}

/**
 * The policy after a change to one device's rules (or the `*` default), checked: a bad value is
 * refused with PolicyValueError naming the field and what it takes. A device left with no rule
 * is dropped from the policy.
 */
export function changePolicy (policy: Policy, device: string, change: DeviceRulesChange): Policy {
  const key = DeviceKey.safeParse(device)
  if (!key.success) throw new PolicyValueError(`"${device.slice(0, 80)}" is not a device: give a member's PeerId or name, or * for every device`)
  const rules: Record<string, unknown> = { ...(policy.devices[device] ?? {}) }
  for (const field of ['minBattery', 'quietHours', 'maxTasks', 'tags'] as const) {
    if (!(field in change)) continue
    const value = change[field]
    if (value === null) delete rules[field]
    else if (value !== undefined) rules[field] = value
  }
  const parsed = DeviceRulesSchema.safeParse(rules)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new PolicyValueError(`${issue?.path.join('.') || 'the rules'}: ${issue?.message ?? 'invalid'}`)
  }
  const devices = { ...policy.devices }
  if (Object.keys(parsed.data).length === 0) delete devices[device]
  else devices[device] = parsed.data
  const whole = PolicySchema.safeParse({ devices })
  if (!whole.success) throw new PolicyValueError(`the policy would be invalid: ${whole.error.issues[0]?.message ?? ''}`)
  return whole.data
}
