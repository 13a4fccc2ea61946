// Core API routes: health, runtimes, peers, stop.

import { VERSION } from '../version.ts'
import { haltView } from './control.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

function linkCounts (node: ApiNode): { lan: number, direct: number, relayed: number } {
  const counts = { lan: 0, direct: 0, relayed: 0 }
  for (const peer of node.peers()) if (peer.via != null) counts[peer.via]++
  return counts
}

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.get('/health', async () => ({
    ok: true,
    name: node.name,
    peerId: node.peerId.toString(),
    version: VERSION,
    pid: process.pid,
    uptimeMs: Date.now() - node.startedAt,
    dataDir: node.dataDir,
    addresses: node.listenAddresses(),
    apiUrl: node.apiUrl,
    peerCount: node.peers().length,
    // members reached over the hive's gossip without a connection (not this device's neighbours)
    meshCount: node.meshMembers().length,
    // how the connected members are reached: on this network, directly across networks, through a relay
    links: linkCounts(node),
    strangersNearby: node.hive.strangersNearby(),
    // whether this device's chain takes records: while it is damaged no task runs here
    ledger: node.ledger.health(),
    // while halted nothing runs anywhere in the hive: who halted it, when, why
    halt: haltView(node)
  }))

  app.get('/runtimes', async () => ({ runtimes: node.runtimes() }))

  app.get('/peers', async () => ({ peers: node.peers(), mesh: node.meshMembers() }))

  app.post('/stop', async (_request, reply) => {
    // Answer first, then stop, so the caller hears back.
    reply.raw.once('finish', () => { node.requestStop() })
    return reply.status(202).send({ stopping: true })
  })
}
