// What workflow tests check in the ledger: every `ok` record of a workflow's tasks, by step.

import assert from 'node:assert/strict'
import type { FlowView } from '../../node/flows/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'

/** Every `ok` record of these tasks in the chains the nodes signed: task id → count. */
export async function okRecords (nodes: HiveNode[], tasks: Set<string>): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  for (const node of nodes) {
    for (const listed of await node.ledger.list({ limit: 100_000 })) {
      const r = listed.record
      if (r == null || r.status !== 'ok' || !tasks.has(r.task)) continue
      counts.set(r.task, (counts.get(r.task) ?? 0) + 1)
    }
  }
  return counts
}

/** Every task id a workflow ever submitted, by unit (`step` or `step[i]`). */
export function unitTasks (flow: FlowView): Map<string, string[]> {
  const units = new Map<string, string[]>()
  for (const step of flow.steps) {
    for (const unit of step.units) units.set(unit.index != null ? `${step.name}[${unit.index}]` : step.name, unit.attempts.map(a => a.task))
  }
  return units
}

/** Asserts each unit has exactly one `ok` ledger record among all its attempts' tasks. */
export async function assertOneOkPerUnit (nodes: HiveNode[], flow: FlowView): Promise<void> {
  const units = unitTasks(flow)
  const all = new Set([...units.values()].flat())
  const counts = await okRecords(nodes, all)
  const wrong = [...units].map(([unit, tasks]) => [unit, tasks.reduce((n, t) => n + (counts.get(t) ?? 0), 0)] as const).filter(([, n]) => n !== 1)
  assert.deepEqual(wrong, [], 'each step has exactly one ok ledger record')
}

