// Workflow API routes, behind `hive-node flow run|status|explain|cancel|list`:
//   POST   /flows              { workflow: object, input?: string, agents?: { <digest>: base64 } }
//                              checks the workflow (before anything runs: schema, templates, step
//                              references, cycles, agents), keeps it and its agents, and starts it:
//                              202 { flow }. 400 InvalidWorkflow names the step at fault; 404
//                              FlowAgentNotFound when a step names a digest this node does not hold
//                              and `agents` does not carry.
//   GET    /flows              { flows }: the most recent first (`?limit=N`, default 20, at most 500).
//   GET    /flows/:id          { flow }: each step's status, tasks and attempts, the output once
//                              done. `?waitMs=N` holds the answer up to N ms (at most 60 s) until
//                              the workflow has ended.
//   GET    /flows/:id/explain  { explanation: { flow, units }, text }: for each step (and each
//                              element of a fork), its task, where it ran and why (the task's own
//                              explanation: bids, rule, rounds).
//   DELETE /flows/:id          cancels a running workflow: 200 { flow } (status `cancelled`); every
//                              task of it under way is cancelled as `hive-node cancel` does. 404
//                              FlowNotFound, 409 FlowAlreadyEnded.

import { z } from 'zod'
import { isDigest } from '../../protocol/index.ts'
import { FLOW_LIMITS, isFlowId } from '../flows/index.ts'
import { ApiError } from '../errors.ts'
import { parseInput } from './input.ts'
import type { FlowExplanation } from '../flows/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

const MAX_WAIT_MS = 60_000
/** The agents in base64, the workflow, the input, and room for the JSON around them. */
const MAX_BODY_BYTES = Math.ceil(FLOW_LIMITS.maxAgentBytes * 4 / 3) + FLOW_LIMITS.maxFileBytes + FLOW_LIMITS.maxInputBytes * 2 + 64 * 1024

const runBody = z.object({
  workflow: z.record(z.string(), z.unknown()),
  input: z.string().optional(),
  agents: z.record(z.string().refine(isDigest, 'a lowercase hex SHA-256'), z.string().max(Math.ceil(FLOW_LIMITS.maxAgentBytes * 4 / 3)))
    .refine(a => Object.keys(a).length <= FLOW_LIMITS.maxAgents, `at most ${FLOW_LIMITS.maxAgents} agents`)
    .optional()
}).strict()

function checkId (id: string): string {
  if (!isFlowId(id)) throw new ApiError(404, 'FlowNotFound', `"${id}" is not a workflow id (24 hex characters, as "hive-node flow list" shows them)`)
  return id
}

/** The human form of a workflow's explanation: one block per task, with where it ran and why. */
export function flowExplainText (e: FlowExplanation, names: (peerId: string) => string | undefined): string {
  const who = (peer: string): string => names(peer) ?? `…${peer.slice(-8)}`
  const lines = [`Workflow ${e.flow.id}${e.flow.name != null ? ` (${e.flow.name})` : ''}: ${e.flow.status}`]
  for (const step of e.flow.steps) {
    lines.push('', `Step ${step.name}: ${step.status}${step.fork != null ? ` — fork of ${step.fork.width ?? '?'} (at most ${step.fork.concurrency} at once), ${step.fork.done} done` : ''}`)
    for (const unit of e.units.filter(u => u.step === step.name)) {
      const label = unit.index != null ? `  [${unit.index}]` : ' '
      const x = unit.explanation
      const ran = unit.view?.result?.executor ?? x?.result?.executor ?? x?.winner ?? unit.view?.winner
      const round = x?.rounds.at(-1)
      lines.push(`${label} task ${unit.task} ${unit.status}${ran != null ? ` on ${who(ran)}` : ''}${unit.attempts > 1 ? ` (attempt ${unit.attempts})` : ''}`)
      if (round != null && x != null) {
        lines.push(`      why: ${round.why}; cost ${round.cost} among ${x.bids.length} bid${x.bids.length === 1 ? '' : 's'}: ${x.bids.map(b => `${who(b.bidder)} ${b.cost}`).join(', ')}`)
      } else if (x == null) {
        lines.push('      its bids were not kept ("hive-node task ID" shows its history)')
      }
    }
  }
  lines.push('', `Each task in full: hive-node explain TASK (rule: ${e.units.find(u => u.explanation != null)?.explanation?.rule ?? 'lowest cost wins'})`)
  return lines.join('\n')
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.post('/flows', { bodyLimit: MAX_BODY_BYTES }, async (request, reply) => {
    const body = parseInput(runBody, request.body)
    const size = Buffer.byteLength(JSON.stringify(body.workflow), 'utf8')
    if (size > FLOW_LIMITS.maxFileBytes) throw new ApiError(400, 'InvalidWorkflow', `the workflow is ${size} bytes as JSON; at most ${FLOW_LIMITS.maxFileBytes}`)
    const agents = new Map<string, Uint8Array>()
    for (const [digest, base64] of Object.entries(body.agents ?? {})) agents.set(digest, new Uint8Array(Buffer.from(base64, 'base64')))
    const flow = await node.flows.run({ workflow: body.workflow, ...(body.input !== undefined ? { input: body.input } : {}), agents })
    return reply.status(202).send({ flow })
  })

  app.get<{ Querystring: { limit?: string } }>('/flows', async (request) => {
    const limit = Math.min(FLOW_LIMITS.maxFlowsKept, Math.max(1, Number(request.query.limit ?? 20) || 20))
    return { flows: await node.flows.list({ limit }) }
  })

  app.get<{ Params: { id: string }, Querystring: { waitMs?: string } }>('/flows/:id', async (request) => {
    const id = checkId(request.params.id)
    const waitMs = Math.min(MAX_WAIT_MS, Math.max(0, Number(request.query.waitMs ?? 0) || 0))
    let flow = await node.flows.get(id)
    if (flow === undefined) throw new ApiError(404, 'FlowNotFound', `no workflow ${id} was run on this device; "hive-node flow list" lists them`)
    if (waitMs > 0 && flow.status === 'running') flow = await node.flows.wait(id, { signal: AbortSignal.timeout(waitMs) })
    return { flow }
  })

  app.get<{ Params: { id: string } }>('/flows/:id/explain', async (request) => {
    const explanation = await node.flows.explain(checkId(request.params.id), { signal: AbortSignal.timeout(30_000) })
    const names = new Map(node.capabilities.view().map(e => [e.peerId, e.caps.name]))
    return { explanation, text: flowExplainText(explanation, peer => names.get(peer)) }
  })

  app.delete<{ Params: { id: string } }>('/flows/:id', async (request) => {
    return { flow: await node.flows.cancel(checkId(request.params.id)) }
  })
}
