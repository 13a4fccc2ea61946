// The kill switch, behind `hive-node halt`, `resume` and the halt line of `status` and `tasks`:
//   GET  /halt     { halt }: { halted, by?, byName?, at?, reason?, message? } — the entry that
//                  decides (the greatest halt or resume this device holds)
//   POST /halt     { reason? } halts the hive: a signed halt entry, sent to every member; every
//                  run stops and nothing is submitted, bid on or run until a resume. { halt }
//   POST /resume   a signed resume entry: the hive runs tasks again. 409 ControlRefused when it
//                  is not halted. { halt }

import { z } from 'zod'
import { MAX_REASON_CHARS } from '../../protocol/index.ts'
import { parseInput } from './input.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

export interface HaltView {
  halted: boolean
  by?: string
  byName?: string
  at?: number
  reason?: string
  /** What anything refused while halted says. */
  message?: string
}

/** The halt state as the API shows it, with the device name of who decided it. */
export function haltView (node: Pick<ApiNode, 'control' | 'hive' | 'capabilities' | 'name' | 'peerId'>): HaltView {
  const state = node.control.state()
  const by = state.by
  const byName = by == null
    ? undefined
    : by === node.peerId.toString() ? node.name : node.hive.membership.member(by)?.name ?? node.capabilities.view().find(e => e.peerId === by)?.caps.name
  const message = node.control.refusal()?.message
  return {
    halted: state.halted,
    ...(by != null ? { by } : {}),
    ...(byName != null ? { byName } : {}),
    ...(state.at != null ? { at: state.at } : {}),
    ...(state.reason != null ? { reason: state.reason } : {}),
    ...(message != null ? { message } : {})
  }
}

const haltBody = z.strictObject({ reason: z.string().max(MAX_REASON_CHARS).optional() })

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.get('/halt', async () => ({ halt: haltView(node) }))

  app.post('/halt', async (request) => {
    const body = parseInput(haltBody, request.body ?? {})
    await node.control.halt(body.reason)
    return { halt: haltView(node) }
  })

  app.post('/resume', async () => {
    await node.control.resume()
    return { halt: haltView(node) }
  })
}
