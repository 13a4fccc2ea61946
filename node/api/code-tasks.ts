// Code tasks on `POST /task`, in the style of the Fabric API:
//   { "type": "code-execution", "code": "console.log(1+1)", "runtime": "auto",
//     requirements?, on?, local?, bidWindowMs?, leaseMs? }
// The code is the input of the interpreter agent (sandbox/code-runtime.ts), which is placed
// like any agent task: bids, the winner's sandbox, its manifest's deadline and memory cap, the
// permission `log` only, the ledger. `type` defaults to `agent` (a component or its digest);
// an unknown `type` or `runtime` is one 400 that lists the accepted values of both.

import { z } from 'zod'
import { SubmitFields } from '../../protocol/index.ts'
import { CODE_LIMITS, TASK_RUNTIMES, TASK_TYPES, inspectAgentBytes } from '../../sandbox/index.ts'
import { ApiError } from '../errors.ts'
import { parseInput } from './input.ts'
import type { TaskType } from '../../sandbox/index.ts'
import type { TaskView } from '../../protocol/index.ts'
import type { ApiNode } from './types.ts'

const codeTaskBody = SubmitFields.omit({ input: true, permissions: true, contextId: true }).extend({
  type: z.literal('code-execution'),
  code: z.string().min(1, 'give the JavaScript source to run').max(CODE_LIMITS.maxCodeChars, `a code task takes at most ${CODE_LIMITS.maxCodeChars} characters of code`),
  runtime: z.enum(TASK_RUNTIMES['code-execution']).optional(),
  on: z.string().min(1).max(128).optional(),
  local: z.boolean().optional()
}).strict()
  .refine(b => b.on === undefined || b.local !== true, 'give at most one of "on" and "local"')

function accepted (): string {
  return TASK_TYPES.map(t => `"${t}" (runtime ${TASK_RUNTIMES[t].map(r => `"${r}"`).join(' or ')})`).join(', ')
}

/**
 * The task's type, checked with its runtime: an unknown value of either is one error naming
 * what was wrong and every accepted pair.
 */
export function taskType (body: unknown): TaskType {
  const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>
  const problems: string[] = []
  const type = b.type ?? 'agent'
  const known = typeof type === 'string' && (TASK_TYPES as string[]).includes(type)
  if (!known) problems.push(`"type" ${JSON.stringify(type)} is not a task type`)
  if (b.runtime !== undefined) {
    const runtimes: readonly string[] = known ? TASK_RUNTIMES[type as TaskType] : Object.values(TASK_RUNTIMES).flat()
    if (typeof b.runtime !== 'string' || !runtimes.includes(b.runtime)) problems.push(`"runtime" ${JSON.stringify(b.runtime)} is not a runtime${known ? ` for ${String(type)} tasks` : ''}`)
  }
  if (problems.length > 0) throw new ApiError(400, 'InvalidTask', `${problems.join('; ')}; accepted: ${accepted()}`)
  return type as TaskType
}

/** An agent task's body without the fields that only say it is one. */
export function agentTaskFields (body: unknown): unknown {
  if (body === null || typeof body !== 'object') return body
  const { type: _type, runtime: _runtime, ...rest } = body as Record<string, unknown>
  return rest
}

/** Submits a code task: the interpreter (built once, then cached) with the code as its input. */
export async function submitCodeTask (node: ApiNode, body: unknown): Promise<TaskView> {
  const task = parseInput(codeTaskBody, body)
  let agent: Uint8Array
  try {
    agent = await node.codeRuntime.component({ signal: AbortSignal.timeout(600_000) })
  } catch (err) {
    throw new ApiError(503, 'RuntimeUnavailable', `the JavaScript interpreter for code tasks could not be built here: ${(err as Error).message}`)
  }
  const pinned = task.local === true ? node.peerId.toString() : task.on
  const manifest = inspectAgentBytes(agent).manifest
  try {
    return await node.placement.submit({
      agent,
      input: task.code,
      permissions: [...manifest.permissions],
      ...(task.requirements !== undefined || pinned !== undefined ? { requirements: { ...task.requirements, ...(pinned !== undefined ? { peer: pinned } : {}) } } : {}),
      ...(task.bidWindowMs !== undefined ? { bidWindowMs: task.bidWindowMs } : {}),
      ...(task.leaseMs !== undefined ? { leaseMs: task.leaseMs } : {})
    })
  } catch (err) {
    const e = err as Error
    if (e.name === 'InvalidTask') throw new ApiError(400, e.name, e.message)
    if (e.name === 'PlacementNotRunning') throw new ApiError(503, e.name, e.message)
    throw err
  }
}
