// Task API routes, behind `hive-node run`, `task`, `explain` and `tasks`:
//   POST /task          { agent?: base64 component, digest?: hex, input, contextId?, permissions?,
//                         requirements?, on?: PeerId, local?: true, bidWindowMs?, leaseMs? }
//                       submits a task to the hive (placed by bids; `on` pins it to one device,
//                       `local` to this one) and answers 202 { task }. Without `agent`, the node
//                       uses the agent it holds under `digest`, else answers 404 AgentNotHeld so a
//                       client sends the bytes once. Permissions default to the agent's manifest.
//                       An agent granted a context permission needs a contextId (400 ContextRequired).
//                       `agent` may name a published agent instead: "notes", "notes@0.1.0" or
//                       "notes@latest", resolved through the registry (its bytes fetched from a
//                       member that holds them). `tool` and `params` run one of the agent's declared
//                       tools: the params are checked against the tool's schema first (400
//                       ToolNotFound, ToolParamsInvalid) and the agent gets them as its input
//                       ({"tool","params","input"?}); `input` may then be left out.
//   POST /task          { type: "code-execution", code, runtime?: "auto" | "js-code", ... }: a code
//                       task (node/api/code-tasks.ts); `type` defaults to "agent", the body above.
//   GET  /task/:id      { task }: status, placement, history, result. `?waitMs=N` holds the answer
//                       up to N ms (at most 60 s) until the task is done or failed.
//   DELETE /task/:id    cancels a task submitted here: 200 { task } (status `cancelled`); its winner
//                       is told to stop the run. 404 TaskNotFound, 409 TaskAlreadyEnded, 409
//                       NotSubmitter (its message names the device to ask).
//   GET  /task/:id/explain   { explanation, text }: every bid with its reasons, the rule, the rounds.
//   GET  /tasks         { tasks }: the most recent first (`?limit=N`, default 20).
//   GET  /capabilities  { capabilities }: what every live device reported, this one included.

import { z } from 'zod'
import { netUsageText } from '../../ledger/listing.ts'
import { toHex } from '../../ledger/record.ts'
import { SubmitFields, explainText, isDigest, isEnded } from '../../protocol/index.ts'
import { isAgentRefText } from '../../protocol/index.ts'
import { findTool, inspectAgentBytes, toolInput, validateToolParams } from '../../sandbox/index.ts'
import { parseInput, requireContextId } from './input.ts'
import { ApiError } from '../errors.ts'
import { haltView } from './control.ts'
import { agentTaskFields, submitCodeTask, taskType } from './code-tasks.ts'
import type { NetUsage } from '../../ledger/index.ts'
import type { Digest, TaskView } from '../../protocol/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

/** A JS agent is ~12 MB, ~16 MB in base64. */
const MAX_AGENT_BODY_BYTES = 96 * 1024 * 1024
const MAX_WAIT_MS = 60_000

/** The API's submission: SubmitTask's fields, with the agent as base64 or a digest held here. */
const taskBody = SubmitFields.extend({
  input: z.string().optional(),
  agent: z.string().max(MAX_AGENT_BODY_BYTES).optional(),
  digest: z.string().refine(isDigest, 'a lowercase hex SHA-256').optional(),
  on: z.string().min(1).max(128).optional(),
  local: z.boolean().optional(),
  tool: z.string().min(1).max(64).optional(),
  params: z.record(z.string().max(128), z.unknown()).optional()
}).strict()
  .refine(b => b.input !== undefined || b.tool !== undefined, { path: ['input'], message: 'give the input text (or a tool and its params)' })
  .refine(b => b.params === undefined || b.tool !== undefined, { path: ['params'], message: 'params go with a tool: give "tool" too' })
  .refine(b => b.agent !== undefined || b.digest !== undefined, 'give the agent (base64), its name ("notes@0.1.0") or its digest')
  .refine(b => b.on === undefined || b.local !== true, 'give at most one of "on" and "local"')

/** Submission errors are the caller's; anything else is the node's. */
const STATUS_BY_CODE: Record<string, number> = {
  InvalidTask: 400,
  InvalidContextId: 400,
  NotWebAssembly: 400,
  NotAComponent: 400,
  UnsupportedComponent: 400,
  WrongWorld: 400,
  ManifestMissing: 400,
  ManifestInvalid: 400,
  PlacementNotRunning: 503
}

function rethrow (err: unknown): never {
  const e = err as Error
  const status = STATUS_BY_CODE[e.name]
  if (status !== undefined) throw new ApiError(status, e.name, e.message)
  throw err
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.post('/task', { bodyLimit: MAX_AGENT_BODY_BYTES + 8 * 1024 * 1024 }, async (request, reply) => {
    if (taskType(request.body) === 'code-execution') return reply.status(202).send({ task: await submitCodeTask(node, request.body) })
    const raw = agentTaskFields(request.body)
    // a context id breaks the same rule here as in the store that would hold the context
    const parsed = taskBody.safeParse(raw ?? {})
    if (!parsed.success && parsed.error.issues[0]?.path[0] === 'contextId') throw new ApiError(400, 'InvalidContextId', `contextId: ${parsed.error.issues[0].message}`)
    const body = parsed.success ? parsed.data : parseInput(taskBody, raw)
    let agent: Uint8Array | undefined
    if (body.agent !== undefined && isAgentRefText(body.agent)) {
      // a component in base64 starts "AGFzbQ" (\0asm): never a name, which is lowercase
      agent = (await node.resolveAgent(body.agent, { signal: AbortSignal.timeout(120_000) })).bytes
    } else if (body.agent !== undefined) {
      agent = new Uint8Array(Buffer.from(body.agent, 'base64'))
    } else {
      agent = node.agents.get(body.digest as Digest)
      if (agent === undefined) throw new ApiError(404, 'AgentNotHeld', `this node holds no agent ${body.digest ?? ''}; send the component itself`)
    }
    let manifest: ReturnType<typeof inspectAgentBytes>['manifest']
    try {
      manifest = inspectAgentBytes(agent).manifest
    } catch (err) {
      rethrow(err)
    }
    let input = body.input ?? ''
    if (body.tool !== undefined) {
      // checked here, before any device bids: a wrong parameter costs the hive nothing
      const tool = findTool(manifest.name, manifest.tools, body.tool)
      input = toolInput(tool.name, validateToolParams(manifest.name, tool, body.params ?? {}), body.input)
    }
    const permissions = body.permissions ?? [...manifest.permissions]
    requireContextId(manifest, permissions, body.contextId)
    const pinned = body.local === true ? node.peerId.toString() : body.on
    let task: TaskView
    try {
      task = await node.placement.submit({
        agent,
        input,
        permissions,
        ...(body.requirements !== undefined || pinned !== undefined ? { requirements: { ...body.requirements, ...(pinned !== undefined ? { peer: pinned } : {}) } } : {}),
        ...(body.contextId !== undefined ? { contextId: body.contextId } : {}),
        ...(body.bidWindowMs !== undefined ? { bidWindowMs: body.bidWindowMs } : {}),
        ...(body.leaseMs !== undefined ? { leaseMs: body.leaseMs } : {})
      })
    } catch (err) {
      rethrow(err)
    }
    return reply.status(202).send({ task })
  })

  app.get<{ Params: { id: string }, Querystring: { waitMs?: string } }>('/task/:id', async (request) => {
    const { id } = request.params
    const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, Number(request.query.waitMs ?? 0) || 0))
    // in memory while it runs and for a while after; on disk for what this node submitted
    let task = node.placement.get(id) ?? (await node.taskArchive.get(id))?.view
    if (task === undefined) throw new ApiError(404, 'TaskNotFound', `no task ${id} is known to this node; "hive-node tasks" lists the recent ones`)
    if (waitMs > 0 && task.role === 'submitter' && !isEnded(task.status)) {
      const signal = AbortSignal.timeout(waitMs)
      task = await node.placement.wait(id, { signal }).catch(() => node.placement.get(id) ?? task as TaskView)
    }
    return { task }
  })

  app.delete<{ Params: { id: string } }>('/task/:id', async (request) => {
    try {
      return { task: await node.placement.cancel(request.params.id, { signal: AbortSignal.timeout(15_000) }) }
    } catch (err) {
      const e = err as Error
      if (e.name === 'TaskNotFound') throw new ApiError(404, e.name, e.message)
      if (e.name === 'TaskAlreadyEnded') throw new ApiError(409, e.name, e.message)
      if (e.name === 'NotSubmitter') throw new ApiError(409, e.name, e.message)
      rethrow(err)
    }
  })

  app.get<{ Params: { id: string } }>('/task/:id/explain', async (request) => {
    try {
      let explanation
      try {
        explanation = await node.placement.explain(request.params.id, { signal: AbortSignal.timeout(30_000) })
      } catch (err) {
        if ((err as Error).name !== 'TaskNotFound') throw err
        const archived = await node.taskArchive.get(request.params.id)
        if (archived === undefined) throw err
        if (archived.explanation === undefined) throw new ApiError(404, 'ExplanationNotKept', `task ${request.params.id} ended before the node last stopped and its bids were not kept; "hive-node task ${request.params.id}" shows its history`)
        explanation = archived.explanation
      }
      const names = new Map(node.capabilities.view().map(e => [e.peerId, e.caps.name]))
      const text = explainText(explanation, peer => names.get(peer))
      // the run's http requests, from its record in the executor's chain when this node holds it
      const net = await recordedRequests(node, explanation.result)
      return { explanation, text: net != null ? `${text}\nRequests: ${netUsageText(net)}` : text, ...(net != null ? { net } : {}) }
    } catch (err) {
      if ((err as Error).name === 'TaskNotFound') throw new ApiError(404, 'TaskNotFound', (err as Error).message)
      throw err
    }
  })

  app.get<{ Querystring: { limit?: string } }>('/tasks', async (request) => {
    const limit = Math.min(1000, Math.max(1, Number(request.query.limit ?? 20) || 20))
    const live = node.placement.list({ limit })
    const archived = (await node.taskArchive.list({ limit })).filter(a => !live.some(t => t.id === a.id))
    return { tasks: [...live, ...archived].sort((a, b) => b.createdAt - a.createdAt).slice(0, limit), halt: haltView(node) }
  })

  app.get('/capabilities', async () => ({ self: node.peerId.toString(), capabilities: node.capabilities.view() }))
}

/** The http requests a result's ledger record holds, if this node holds that record (and it is the one the result names). */
async function recordedRequests (node: ApiNode, result: { executor: string, ledger?: { seq?: number, hash?: string } } | undefined): Promise<NetUsage | undefined> {
  const seq = result?.ledger?.seq
  if (result == null || seq == null) return undefined
  try {
    const record = await node.ledger.store.get(result.executor, seq)
    if (record == null || (result.ledger?.hash != null && toHex(record.hash) !== result.ledger.hash)) return undefined
    return record.net
  } catch {
    return undefined
  }
}
