// Ledger API routes: the audit, the listing of a chain, and a summary of the chains held.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { listingToJson } from '../../ledger/index.ts'
import { ApiError } from '../errors.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

const PeerQuery = z.object({
  peer: z.string().max(128).optional()
})

const RecordsQuery = PeerQuery.extend({
  limit: z.coerce.number().int().min(1).max(1_000_000).optional()
})

function parseQuery<S extends z.ZodType> (schema: S, value: unknown): z.infer<S> {
  const parsed = schema.safeParse(value ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ApiError(400, 'BadRequest', `${issue?.path.join('.') ?? 'query'}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

function checkPeer (peer: string | undefined): string | undefined {
  if (peer == null) return undefined
  try {
    const id = peerIdFromString(peer)
    if (id.type !== 'Ed25519') throw new Error(`a ${id.type} PeerId cannot sign ledger records`)
    return id.toString()
  } catch (err) {
    throw new ApiError(400, 'InvalidPeerId', `peer "${peer}" is not an Ed25519 PeerId: ${(err as Error).message}`)
  }
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.get('/ledger/verify', async (request) => {
    const query = parseQuery(PeerQuery, request.query)
    return node.ledger.verify({ signer: checkPeer(query.peer) })
  })

  app.get('/ledger/records', async (request) => {
    const query = parseQuery(RecordsQuery, request.query)
    const signer = checkPeer(query.peer) ?? node.ledger.self
    const listed = await node.ledger.list({ signer, limit: query.limit })
    return listingToJson(signer, signer === node.ledger.self, listed)
  })

  app.get('/ledger/chains', async () => ({ chains: await node.ledger.chains() }))
}
