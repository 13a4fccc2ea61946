// GET /metrics: the node's metrics in the Prometheus text format, for a Prometheus on this
// machine to scrape. Read-only and without the token, as every GET; the Host and Origin rules
// of the whole API still apply, so only a client on this machine that addresses 127.0.0.1 (or
// localhost) by the API's port gets an answer.

import { CONTENT_TYPE } from '../metrics/registry.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

export function routes (app: FastifyInstance, node: ApiNode): void {
  app.get('/metrics', async (_request, reply) => {
    const text = await node.metrics.render()
    return reply.type(CONTENT_TYPE).send(text)
  })
}
