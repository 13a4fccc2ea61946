// Hive and pairing routes: the member list, invites, joining, removing a member. The invite's
// secret appears in one answer only, POST /pairing/invites, to the local caller that asked.

import { z } from 'zod'
import { parseInput } from '../api.ts'
import { ApiError } from '../errors.ts'
import type { HiveNode } from '../hive-node.ts'
import type { FastifyInstance } from 'fastify'

const InviteBody = z.object({ ttlMinutes: z.number().positive().max(24 * 60).optional() })
const JoinBody = z.object({ invite: z.string().min(1).max(4096), force: z.boolean().optional() })
const RemoveBody = z.object({ peer: z.string().min(1).max(128) })
const PeerParam = z.object({ peer: z.string().min(1).max(128) })
const IdParam = z.object({ id: z.string().regex(/^[0-9a-f]{16}$/, 'an invite id is 16 hex characters') })

const BAD_INPUT = new Set(['InvalidInvite', 'InviteDamaged', 'InvalidTtl', 'InvalidPeerId'])
const CONFLICT = new Set([
  'InviteExpired', 'InviteUsed', 'InviteClosed', 'InviteUnknown', 'WrongSecret', 'AlreadyMember', 'AlreadyInHive', 'OwnInvite',
  'InviterNotAuthentic', 'PairingFailed', 'NotAMember', 'CannotRemoveSelf'
])

/** Pairing and membership errors keep their code; the status says whose fault it is. */
function asApiError (err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof ApiError) return err
  if (BAD_INPUT.has(err.name)) return new ApiError(400, err.name, err.message)
  if (CONFLICT.has(err.name)) return new ApiError(409, err.name, err.message)
  if (err.name === 'InviterUnreachable') return new ApiError(502, err.name, err.message)
  return err
}

async function guarded<T> (work: () => Promise<T> | T): Promise<T> {
  try {
    return await work()
  } catch (err) {
    throw asApiError(err)
  }
}

export function hiveSummary (node: HiveNode): unknown {
  const membership = node.hive.membership
  const connected = new Set(node.libp2p.getConnections().filter(c => c.limits == null && c.status === 'open').map(c => c.remotePeer.toString()))
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
      connected: m.self || connected.has(m.peerId)
    })),
    removed: membership.removed()
  }
}

export function routes (app: FastifyInstance, node: HiveNode): void {
  app.get('/hive', async () => hiveSummary(node))

  app.get('/hive/chain/:peer', async (request) => {
    const { peer } = parseInput(PeerParam, request.params)
    const chain = node.hive.membership.chain(peer)
    if (chain.length === 0) throw new ApiError(404, 'NotAMember', `${peer} is not a member of hive ${node.hive.membership.hiveId}`)
    return { peer, chain }
  })

  app.post('/hive/remove', async (request) => {
    const { peer } = parseInput(RemoveBody, request.body)
    const entry = await guarded(async () => node.hive.membership.remove(peer))
    return { peer, entry: entry.id, hive: hiveSummary(node) }
  })

  app.post('/pairing/invites', async (request, reply) => {
    const { ttlMinutes } = parseInput(InviteBody, request.body)
    const invite = await guarded(() => node.hive.pairing.createInvite(ttlMinutes != null ? { ttlMs: Math.round(ttlMinutes * 60_000) } : {}))
    return reply.status(201).send(invite)
  })

  app.get('/pairing/invites', async () => ({ invites: node.hive.pairing.invites() }))

  app.post('/pairing/invites/:id/cancel', async (request) => {
    const { id } = parseInput(IdParam, request.params)
    return guarded(() => node.hive.pairing.cancelInvite(id))
  })

  app.post('/pairing/join', async (request) => {
    const { invite, force } = parseInput(JoinBody, request.body)
    return guarded(async () => node.hive.pairing.join(invite, { force }))
  })
}
