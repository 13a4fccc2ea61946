// Hive and pairing routes: the member list, invites, joining, removing a member. The invite's
// secret appears in one answer only, POST /pairing/invites, to the local caller that asked.

import { z } from 'zod'
import { inviteQrSvg } from '../../protocol/pairing/index.ts'
import { parseInput } from './input.ts'
import { ApiError } from '../errors.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

const InviteBody = z.object({
  ttlMinutes: z.number().positive().max(24 * 60).optional(),
  /** Also answer the invite's QR code as an SVG picture (the dashboard shows it). */
  qr: z.literal('svg').optional()
})
const JoinBody = z.object({ invite: z.string().min(1).max(4096), force: z.boolean().optional() })
const RemoveBody = z.object({ peer: z.string().min(1).max(128) })
const PeerParam = z.object({ peer: z.string().min(1).max(128) })
const IdParam = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, 'an invite id is 16 hex characters') })

export function hiveSummary (node: ApiNode): unknown {
  const membership = node.hive.membership
  const connected = new Set(node.libp2p.getConnections().filter(c => c.limits == null && c.status === 'open').map(c => c.remotePeer.toString()))
  const meshed = new Set(node.meshMembers().map(m => m.peerId))
  return {
    hiveId: membership.hiveId,
    self: membership.peerId,
    members: membership.members().map(m => ({
      peerId: m.peerId,
      name: m.name,
      self: m.self,
      founder: m.founder,
      addedBy: m.addedBy,
      addedAt: m.addedAt,
      connected: m.self || connected.has(m.peerId),
      // not a neighbour, heard over the mesh
      ...(meshed.has(m.peerId) ? { mesh: true } : {})
    })),
    removed: membership.removed()
  }
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.get('/hive', async () => hiveSummary(node))

  app.get('/hive/chain/:peer', async (request) => {
    const { peer } = parseInput(PeerParam, request.params)
    const chain = node.hive.membership.chain(peer)
    if (chain.length === 0) throw new ApiError(404, 'NotAMember', `${peer} is not a member of hive ${node.hive.membership.hiveId}`)
    return { peer, chain }
  })

  app.post('/hive/remove', async (request) => {
    const { peer } = parseInput(RemoveBody, request.body)
    const entry = await node.hive.membership.remove(peer)
    return { peer, entry: entry.id, hive: hiveSummary(node) }
  })

  app.post('/pairing/invites', async (request, reply) => {
    const { ttlMinutes, qr } = parseInput(InviteBody, request.body)
    const invite = await node.hive.pairing.openInvite(ttlMinutes != null ? { ttlMs: Math.round(ttlMinutes * 60_000) } : {})
    if (qr === 'svg') {
      return reply.status(201).send({ ...invite, qrSvg: await inviteQrSvg(invite.uri) })
    }
    return reply.status(201).send(invite)
  })

  app.get('/pairing/invites', async () => ({ invites: node.hive.pairing.invites() }))

  app.post('/pairing/invites/:id/cancel', async (request) => {
    const { id } = parseInput(IdParam, request.params)
    return node.hive.pairing.cancelInvite(id)
  })

  app.post('/pairing/join', async (request) => {
    const { invite, force } = parseInput(JoinBody, request.body)
    return await node.hive.pairing.join(invite, { force })
  })
}
