// Budgets per agent (by manifest name or digest) and per context, per UTC day: runs, CPU-seconds,
// LLM tokens, and cloud spend (which the LLM budget enforces per call, protocol/llm/budget.ts).
// The limits are a signed control entry (PROTOCOL.md › Budgets); what was used is counted from
// the ledger records every member holds, so every device counts the same runs.
//
// Invariant (one device): a submission is checked and its reservation added in one synchronous
// step, after the ledger's records were read, so concurrent submissions on one device never
// pass a run budget; a quantity budget (CPU-seconds, tokens) is passed by at most one task's
// use when no run uses more than the largest run of the day so far (see `admit`).
// Across devices: each counts another's runs once their ledger records reach it, so devices
// submitting at the same moment can each spend what they see left.

import { z } from 'zod'
import { CONTEXT_ID_PATTERN, DIGEST_PATTERN } from '../wire/ids.ts'
import { BudgetValueError, OverBudgetError } from './errors.ts'

/** Budget keys (agents and contexts together) held at most: keeps the signed entry small. */
export const MAX_BUDGET_KEYS = 48
/** A cloud cap is micro-USD; above a million dollars a day is a typo (as the LLM budget says). */
export const MAX_CLOUD_MICRO_USD = 1e12

export const BudgetLimitsSchema = z.strictObject({
  /** Runs started per UTC day (each task counts once, whatever its outcome). */
  runs: z.number().int().min(1).max(1_000_000).optional(),
  /** Seconds its runs spent in their sandbox worker per UTC day. */
  cpuSeconds: z.number().int().min(1).max(86_400 * 1024).optional(),
  /** LLM tokens (prompt and completion, every route) per UTC day. */
  tokens: z.number().int().min(1).max(1e12).optional(),
  /** Cloud spend per UTC day, micro-USD; agents by digest only (the LLM budget applies it per call). */
  cloudMicroUsd: z.number().int().min(1).max(MAX_CLOUD_MICRO_USD).optional()
})
export type BudgetLimits = z.infer<typeof BudgetLimitsSchema>

const AgentKey = z.string().min(1).max(64).refine(k => DIGEST_PATTERN.test(k) || /^[a-z0-9][a-z0-9._-]{0,63}$/.test(k), 'an agent\'s manifest name or its 64-hex digest')
const ContextKey = z.string().min(1).max(128).regex(CONTEXT_ID_PATTERN, 'a context id')

export const BudgetsSchema = z.strictObject({
  agents: z.record(AgentKey, BudgetLimitsSchema),
  contexts: z.record(ContextKey, BudgetLimitsSchema)
}).refine(b => Object.keys(b.agents).length + Object.keys(b.contexts).length <= MAX_BUDGET_KEYS, `at most ${MAX_BUDGET_KEYS} budgets (agents and contexts together)`)
  .refine(b => Object.values(b.contexts).every(l => l.cloudMicroUsd == null), 'cloud spend is capped per agent digest, not per context')
  .refine(b => Object.entries(b.agents).every(([k, l]) => l.cloudMicroUsd == null || DIGEST_PATTERN.test(k)), 'cloud spend is capped per agent digest (the LLM budget knows calls by digest), not by name')
export type Budgets = z.infer<typeof BudgetsSchema>

export const EMPTY_BUDGETS: Budgets = { agents: {}, contexts: {} }

export type BudgetKind = 'agent' | 'context'

/** A change to one budget, as `budget set` gives it; null removes a limit. */
export type BudgetLimitsChange = { [K in keyof BudgetLimits]?: number | null }

/** The budgets after a change to one agent's or context's limits, checked (BudgetValueError). */
export function changeBudgets (budgets: Budgets, kind: BudgetKind, key: string, change: BudgetLimitsChange): Budgets {
  const table = kind === 'agent' ? budgets.agents : budgets.contexts
  const keyCheck = (kind === 'agent' ? AgentKey : ContextKey).safeParse(key)
  if (!keyCheck.success) throw new BudgetValueError(`"${key.slice(0, 80)}" is not ${kind === 'agent' ? 'an agent\'s manifest name or 64-hex digest' : 'a context id'}`)
  const limits: Record<string, unknown> = { ...(table[key] ?? {}) }
  for (const [field, value] of Object.entries(change)) {
    if (value === null) delete limits[field]
    else if (value !== undefined) limits[field] = value
  }
  const parsed = BudgetLimitsSchema.safeParse(limits)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new BudgetValueError(`${issue?.path.join('.') || 'the limits'}: ${issue?.message ?? 'invalid'}`)
  }
  const next = { ...table }
  if (Object.keys(parsed.data).length === 0) delete next[key]
  else next[key] = parsed.data
  const whole = BudgetsSchema.safeParse(kind === 'agent' ? { ...budgets, agents: next } : { ...budgets, contexts: next })
  if (!whole.success) throw new BudgetValueError(whole.error.issues[0]?.message ?? 'the budgets would be invalid')
  return whole.data
}

// ---- what a ledger record says about a run ----

/**
 * The clauses a runner adds to its ledger record's `placement` text, which budgets count:
 * `; ran <ms> ms`, then `; context <id>` and `; agent <name>` when the task had them. The
 * record is signed, so every member reads the same numbers.
 */
export function runClauses (run: { ranMs: number, context?: string, name?: string }): string {
  return `; ran ${Math.max(0, Math.round(run.ranMs))} ms${run.context != null ? `; context ${run.context}` : ''}${run.name != null ? `; agent ${run.name}` : ''}`
}

/** What one ledger record counts for. */
export interface RunFacts {
  task: string
  time: number
  digest: string
  name?: string
  context?: string
  ranMs: number
  tokens: number
}

/** The part of a ledger record budgets read. */
export interface CountedRecord {
  time: number
  task: string
  agent: string
  placement: string
  llm?: ReadonlyArray<{ tokensIn: number, tokensOut: number }>
}

export function runFacts (record: CountedRecord): RunFacts {
  const ran = /; ran (\d{1,12}) ms(?:;|$)/.exec(record.placement)
  const context = /; context ([A-Za-z0-9][A-Za-z0-9._-]{0,127})(?:;|$)/.exec(record.placement)
  const name = /; agent ([a-z0-9][a-z0-9._-]{0,63})(?:;|$)/.exec(record.placement)
  let tokens = 0
  for (const u of record.llm ?? []) tokens += u.tokensIn + u.tokensOut
  return {
    task: record.task,
    time: record.time,
    digest: record.agent,
    ...(name?.[1] != null ? { name: name[1] } : {}),
    ...(context?.[1] != null ? { context: context[1] } : {}),
    ranMs: ran?.[1] != null ? Number(ran[1]) : 0,
    tokens
  }
}

export function utcDayOf (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** The next UTC midnight after `ms`: when a day's budget resets. */
export function resetAt (ms: number): number {
  const d = new Date(ms)
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1)
}

// ---- the keeper: counts and reserves ----

/** The task a submission would run, as budgets see it. */
export interface BudgetedTask {
  digest: string
  name?: string
  context?: string
}

interface Reservation extends BudgetedTask {
  readonly id: number
  day: string
  task?: string
}

/** One budget that applies to a task, with what it used today. */
export interface BudgetUse {
  kind: BudgetKind
  key: string
  limits: BudgetLimits
  day: string
  resetsAt: number
  runs: number
  cpuSeconds: number
  tokens: number
  /** Tasks submitted on this device that count but have no ledger record here yet. */
  inFlight: number
}

export interface BudgetKeeperComponents {
  budgets: () => Budgets
  /** Every ledger record held (every member's chain) from `sinceMs` on. */
  records: (sinceMs: number, options?: { signal?: AbortSignal }) => Promise<CountedRecord[]>
  now?: () => number
}

/** A submission let through: bind it to its task id once known; release it if nothing ran. */
export interface BudgetTicket {
  bind: (task: string) => void
  release: () => void
}

export interface BudgetKeeper {
  /** Reads the ledger's records (shared by concurrent callers, re-read after `invalidate`). */
  ready: (options?: { signal?: AbortSignal }) => Promise<void>
  /** The ledger changed: the next `ready` reads it again. */
  invalidate: () => void
  /**
   * Checks a task against every budget that applies and reserves it, in one synchronous step
   * (after `ready`). Throws OverBudgetError saying what was used, the limit, when it resets and
   * what to change. Undefined when no budget applies.
   */
  admit: (task: BudgetedTask) => BudgetTicket | undefined
  /** Every budget with what it used today. */
  usage: () => BudgetUse[]
}

export function createBudgetKeeper (components: BudgetKeeperComponents): BudgetKeeper {
  const now = components.now ?? Date.now
  let facts: RunFacts[] = []
  let loadedDay = ''
  let stale = true
  let loading: Promise<void> | undefined
  const reservations = new Map<number, Reservation>()
  let nextId = 1

  function matches (kind: BudgetKind, key: string, t: BudgetedTask): boolean {
    if (kind === 'context') return t.context === key
    return t.digest === key || (t.name != null && t.name === key)
  }

  function use (kind: BudgetKind, key: string, limits: BudgetLimits, day: string): BudgetUse & { largest: { cpuMs: number, tokens: number } } {
    const tasks = new Set<string>()
    let cpuMs = 0
    let tokens = 0
    const largest = { cpuMs: 0, tokens: 0 }
    for (const f of facts) {
      if (utcDayOf(f.time) !== day || !matches(kind, key, f)) continue
      tasks.add(f.task)
      cpuMs += f.ranMs
      tokens += f.tokens
      largest.cpuMs = Math.max(largest.cpuMs, f.ranMs)
      largest.tokens = Math.max(largest.tokens, f.tokens)
    }
    let inFlight = 0
    for (const r of reservations.values()) {
      if (r.day !== day || !matches(kind, key, r)) continue
      if (r.task != null && tasks.has(r.task)) continue
      inFlight++
    }
    return { kind, key, limits, day, resetsAt: resetAt(now()), runs: tasks.size + inFlight, cpuSeconds: cpuMs / 1000, tokens, inFlight, largest }
  }

  function applying (task: BudgetedTask): Array<{ kind: BudgetKind, key: string, limits: BudgetLimits }> {
    const b = components.budgets()
    const out: Array<{ kind: BudgetKind, key: string, limits: BudgetLimits }> = []
    for (const [key, limits] of Object.entries(b.agents)) if (matches('agent', key, task)) out.push({ kind: 'agent', key, limits })
    for (const [key, limits] of Object.entries(b.contexts)) if (matches('context', key, task)) out.push({ kind: 'context', key, limits })
    return out
  }

  function refusal (u: BudgetUse, what: string, used: string, limit: string, flag: string): OverBudgetError {
    const name = u.kind === 'agent' ? `agent ${u.key.length === 64 ? `${u.key.slice(0, 12)}…` : u.key}` : `context ${u.key}`
    return new OverBudgetError(`${name} is over its budget of ${limit} ${what} per day: ${used} used today (${u.day} UTC)` +
      `${u.inFlight > 0 ? `, ${u.inFlight} task${u.inFlight === 1 ? '' : 's'} submitted here still running` : ''}; it resets at ${new Date(u.resetsAt).toISOString()}; ` +
      `raise it with "hive-node budget set --${u.kind} ${u.key} ${flag} N" or wait`, { kind: u.kind, key: u.key, resetsAt: u.resetsAt })
  }

  return {
    async ready (options = {}) {
      const day = utcDayOf(now())
      if (!stale && loadedDay === day) return
      // no budget set: nothing to count, and reading every chain's records of the day for each
      // task would cost more than the task; the first budget set makes the next call read them
      const set = components.budgets()
      if (Object.keys(set.agents).length === 0 && Object.keys(set.contexts).length === 0) return
      if (loading == null) {
        stale = false
        const since = Date.parse(`${day}T00:00:00.000Z`)
        loading = components.records(since, options).then((records) => {
          facts = records.map(runFacts)
          loadedDay = day
        }, (err: unknown) => { stale = true; throw err }).finally(() => { loading = undefined })
      }
      await loading
    },
    invalidate () {
      stale = true
    },
    admit (task) {
      const budgets = applying(task)
      if (budgets.length === 0) return undefined
      const day = utcDayOf(now())
      for (const r of reservations.values()) if (r.day !== day) reservations.delete(r.id)
      for (const b of budgets) {
        const u = use(b.kind, b.key, b.limits, day)
        const { limits } = b
        if (limits.runs != null && u.runs >= limits.runs) throw refusal(u, 'runs', `${u.runs} of ${limits.runs}`, String(limits.runs), '--runs')
        // a quantity is known only after a run: refused once reached, and while tasks run, only
        // as many more as the largest run of the day says fit (one at a time before any ran)
        const quantity = (used: number, limit: number, largest: number): boolean =>
          used >= limit || (u.inFlight > 0 && (largest <= 0 || used + (u.inFlight + 1) * largest > limit))
        if (limits.cpuSeconds != null && quantity(u.cpuSeconds, limits.cpuSeconds, u.largest.cpuMs / 1000)) {
          throw refusal(u, 'CPU-seconds', `${u.cpuSeconds.toFixed(1)} s of ${limits.cpuSeconds} s`, `${limits.cpuSeconds}`, '--cpu-seconds')
        }
        if (limits.tokens != null && quantity(u.tokens, limits.tokens, u.largest.tokens)) {
          throw refusal(u, 'LLM tokens', `${u.tokens} of ${limits.tokens}`, String(limits.tokens), '--tokens')
        }
      }
      const reservation: Reservation = { id: nextId++, day, digest: task.digest, ...(task.name != null ? { name: task.name } : {}), ...(task.context != null ? { context: task.context } : {}) }
      reservations.set(reservation.id, reservation)
      return {
        bind: (id) => { reservation.task = id },
        release: () => { reservations.delete(reservation.id) }
      }
    },
    usage () {
      const b = components.budgets()
      const day = utcDayOf(now())
      const out: BudgetUse[] = []
      for (const [kind, table] of [['agent', b.agents], ['context', b.contexts]] as const) {
        for (const [key, limits] of Object.entries(table)) {
          const { largest: _largest, ...u } = use(kind, key, limits, day)
          out.push(u)
        }
      }
      return out
    }
  }
}
