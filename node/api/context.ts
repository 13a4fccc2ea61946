// Context API routes, behind `hive-node context …`:
//   GET  /contexts                          every context: id, created, entries, keys, checkpoints
//   GET  /contexts/:id                      one context: conversation, state, checkpoints, who works in it
//   GET  /contexts/:id/checkpoints/:name    the context as of a checkpoint
//   POST /contexts/:id/state                { key, value }         set a state key (creates the context)
//   POST /contexts/:id/conversation         { text, role? }        append to the conversation
//   POST /contexts/:id/checkpoints          { name }               name the current state
//   GET  /presence                          which node works in which context
// Writes answer once the change is on disk here; it reaches the other nodes right after.
// crdt errors keep their code; node/api/errors.ts gives the status.

import { z } from 'zod'
import { contextId, isReservedContextId, requireContext } from '../../crdt/index.ts'
import { parseInput } from './input.ts'
import { ApiError } from '../errors.ts'
import type { Context, ContextView } from '../../crdt/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

const idParams = z.object({ id: z.string() })
const checkpointParams = z.object({ id: z.string(), name: z.string() })
const setBody = z.object({ key: z.string().min(1).max(256), value: z.unknown() })
const appendBody = z.object({ text: z.string().max(1024 * 1024), role: z.string().min(1).max(64).optional() })
const checkpointBody = z.object({ name: z.string() })

export interface ContextDetail extends ContextView {
  id: string
  created: number
  /** Nodes that say they are working in this context right now. */
  workingHere: string[]
}

function detail (node: ApiNode, ctx: Context): ContextDetail {
  const workingHere = node.contexts.presence.list().filter(p => p.contexts.includes(ctx.id)).map(p => p.node)
  return { id: ctx.id, created: ctx.created, ...ctx.view(), workingHere }
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  const store = node.contexts.store

  app.get('/contexts', async () => ({ contexts: store.list().filter(c => !isReservedContextId(c.id)) }))

  app.get('/presence', async () => ({ presence: node.contexts.presence.list() }))

  app.get('/contexts/:id', async (request) => {
    const { id } = parseInput(idParams, request.params)
    return detail(node, requireContext(store, contextId(id)))
  })

  app.get('/contexts/:id/checkpoints/:name', async (request) => {
    const { id, name } = parseInput(checkpointParams, request.params)
    return { id, checkpoint: name, ...requireContext(store, contextId(id)).at(name) }
  })

  app.post('/contexts/:id/state', async (request) => {
    const { id } = parseInput(idParams, request.params)
    const { key, value } = parseInput(setBody, request.body)
    if (value === undefined) throw new ApiError(400, 'BadRequest', 'value: required (any JSON value)')
    const ctx = await store.open(id)
    await ctx.set(key, value)
    return { id: ctx.id, key, value }
  })

  app.post('/contexts/:id/conversation', async (request) => {
    const { id } = parseInput(idParams, request.params)
    const { text, role } = parseInput(appendBody, request.body)
    const ctx = await store.open(id)
    await ctx.append(text, { role })
    return { id: ctx.id, entries: ctx.view().conversation.length }
  })

  app.post('/contexts/:id/checkpoints', async (request) => {
    const { id } = parseInput(idParams, request.params)
    const { name } = parseInput(checkpointBody, request.body)
    const ctx = await store.open(id)
    return { id: ctx.id, ...await ctx.checkpoint(name) }
  })
}
