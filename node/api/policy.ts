// The hive's policy and budgets, behind `hive-node policy show|set` and `budget show|set`:
//   GET  /policy    { policy: { devices, by?, byName?, at?, n? } }: the policy in force, devices by
//                   PeerId (`*`: every device without rules of its own), each with its name
//   POST /policy    { device, minBattery?, quietHours?, maxTasks?, tags? } (null removes a rule):
//                   signs and replicates the whole policy with that device's rules changed.
//                   400 PolicyValue names the field and what it takes. { policy }
//   GET  /budgets   { budgets: { agents, contexts, by?, at?, n? }, usage: [...] }: the limits in
//                   force and what each budget used today (UTC), from every member's ledger
//   POST /budgets   { agent | context, runs?, cpuSeconds?, tokens?, cloudUsd? } (null removes a
//                   limit): signs and replicates the budgets. 400 BudgetValue. { budgets, usage }
// A task over a budget is refused at submission: 429 OverBudget (what was used, when it resets).

import { z } from 'zod'
import { ALL_DEVICES, PolicyValueError, changeBudgets, changePolicy } from '../../protocol/control/index.ts'
import { parseInput } from './input.ts'
import type { BudgetLimitsChange, BudgetUse, Budgets, DeviceRules, DeviceRulesChange, Setting } from '../../protocol/control/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

export interface PolicyView {
  devices: Array<{ device: string, name?: string } & DeviceRules>
  by?: string
  byName?: string
  at?: number
  n?: number
}

export interface BudgetsView {
  budgets: Budgets & { by?: string, byName?: string, at?: number, n?: number }
  usage: BudgetUse[]
}

type Named = Pick<ApiNode, 'hive' | 'capabilities' | 'name' | 'peerId'>

function nameOf (node: Named, peer: string): string | undefined {
  if (peer === node.peerId.toString()) return node.name
  return node.hive.membership.member(peer)?.name ?? node.capabilities.view().find(e => e.peerId === peer)?.caps.name
}

function signed<T> (node: Named, s: Setting<T>): { by?: string, byName?: string, at?: number, n?: number } {
  const byName = s.by != null ? nameOf(node, s.by) : undefined
  return { ...(s.by != null ? { by: s.by } : {}), ...(byName != null ? { byName } : {}), ...(s.at != null ? { at: s.at } : {}), ...(s.n != null ? { n: s.n } : {}) }
}

export function policyView (node: Named & Pick<ApiNode, 'control'>): PolicyView {
  const s = node.control.policy()
  return {
    devices: Object.entries(s.value.devices).sort(([a], [b]) => a === ALL_DEVICES ? -1 : b === ALL_DEVICES ? 1 : a.localeCompare(b)).map(([device, rules]) => {
      const name = device === ALL_DEVICES ? undefined : nameOf(node, device)
      return { device, ...(name != null ? { name } : {}), ...rules }
    }),
    ...signed(node, s)
  }
}

export function budgetsView (node: Named & Pick<ApiNode, 'control' | 'budgets'>): BudgetsView {
  const s = node.control.budgets()
  return { budgets: { ...s.value, ...signed(node, s) }, usage: node.budgets.usage() }
}

/**
 * A device as `policy set` names it: `*`, a member's PeerId, or a member's name (one member
 * only). Anything else is refused, saying where the names are.
 */
export function resolveDevice (node: Named, device: string): string {
  if (device === ALL_DEVICES) return device
  const members = node.hive.membership.members()
  if (members.some(m => m.peerId === device)) return device
  const named = members.filter(m => (m.peerId === node.peerId.toString() ? node.name : m.name) === device)
  if (named.length === 1) return named[0]!.peerId
  if (named.length > 1) throw new PolicyValueError(`${named.length} members are named "${device}"; give the PeerId of the one you mean ("hive-node members" lists them)`)
  throw new PolicyValueError(`no member of this hive is named "${device.slice(0, 80)}"; give a member's name or PeerId ("hive-node members" lists them), or * for every device`)
}

/** `HH:MM-HH:MM` as quiet hours; `none` removes them. */
export function parseQuietHours (text: string): { from: string, to: string } | null {
  if (text === 'none') return null
  const m = /^(\d{1,2}:\d{2})-(\d{1,2}:\d{2})$/.exec(text)
  if (m == null) throw new PolicyValueError(`quiet hours are HH:MM-HH:MM in the device's local time, such as 22:00-07:00, or "none"; not "${text.slice(0, 40)}"`)
  const pad = (t: string): string => t.padStart(5, '0')
  return { from: pad(m[1] as string), to: pad(m[2] as string) }
}

const Nullable = <S extends z.ZodType>(schema: S): z.ZodOptional<z.ZodNullable<S>> => schema.nullable().optional()

const policyBody = z.strictObject({
  device: z.string().min(1).max(128),
  minBattery: Nullable(z.number()),
  quietHours: Nullable(z.string().max(32)),
  maxTasks: Nullable(z.number()),
  tags: Nullable(z.array(z.string().max(64)).max(64))
})

const budgetBody = z.strictObject({
  agent: z.string().min(1).max(128).optional(),
  context: z.string().min(1).max(128).optional(),
  runs: Nullable(z.number()),
  cpuSeconds: Nullable(z.number()),
  tokens: Nullable(z.number()),
  /** US dollars a day; the entry keeps micro-USD. */
  cloudUsd: Nullable(z.number().min(0).max(1e6))
}).refine(b => (b.agent == null) !== (b.context == null), 'give either "agent" (a name or digest) or "context"')

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.get('/policy', async () => ({ policy: policyView(node) }))

  app.post('/policy', async (request) => {
    const body = parseInput(policyBody, request.body)
    const device = resolveDevice(node, body.device)
    const change: DeviceRulesChange = {}
    // 0 removes a battery bound, as "none" removes quiet hours: nothing to keep a device from
    if (body.minBattery !== undefined) change.minBattery = body.minBattery === 0 ? null : body.minBattery
    if (body.quietHours !== undefined) change.quietHours = body.quietHours === null ? null : parseQuietHours(body.quietHours)
    if (body.maxTasks !== undefined) change.maxTasks = body.maxTasks
    if (body.tags !== undefined) change.tags = body.tags === null || body.tags.length === 0 ? null : body.tags
    const next = changePolicy(node.control.policy().value, device, change)
    await node.control.setPolicy(next)
    return { policy: policyView(node) }
  })

  app.get('/budgets', async (_request, reply) => {
    await node.budgets.ready({ signal: AbortSignal.timeout(30_000) }).catch((err: Error) => { reply.header('x-budget-count', `stale: ${err.message.slice(0, 100)}`) })
    return budgetsView(node)
  })

  app.post('/budgets', async (request) => {
    const body = parseInput(budgetBody, request.body)
    const change: BudgetLimitsChange = {}
    if (body.runs !== undefined) change.runs = body.runs
    if (body.cpuSeconds !== undefined) change.cpuSeconds = body.cpuSeconds
    if (body.tokens !== undefined) change.tokens = body.tokens
    if (body.cloudUsd !== undefined) change.cloudMicroUsd = body.cloudUsd === null || body.cloudUsd === 0 ? null : Math.round(body.cloudUsd * 1e6)
    const next = body.agent != null
      ? changeBudgets(node.control.budgets().value, 'agent', body.agent, change)
      : changeBudgets(node.control.budgets().value, 'context', body.context as string, change)
    await node.control.setBudgets(next)
    await node.budgets.ready({ signal: AbortSignal.timeout(30_000) }).catch(() => {})
    return budgetsView(node)
  })
}
