// The local HTTP API on 127.0.0.1. The CLI talks to the running node through it. Mutating calls
// need the node's token (Bearer), requests carrying another origin or Host are refused so a web
// page cannot drive the node, and every error is `{ error: { code, message } }`.

import { randomBytes } from 'node:crypto'
import { open, rename, unlink } from 'node:fs/promises'
import Fastify from 'fastify'
import { ApiError } from '../errors.ts'
import * as coreApi from './core.ts'
import * as pairingApi from './pairing.ts'
import * as contextApi from './context.ts'
import * as agentsApi from './agents.ts'
import * as ledgerApi from './ledger.ts'
import * as tasksApi from './tasks.ts'
import { statusOf } from './errors.ts'
import type { ApiNode } from './types.ts'
import type { dataPaths } from '../config.ts'
import type { FastifyInstance } from 'fastify'

export const API_HOST = '127.0.0.1'
const MAX_BODY_BYTES = 8 * 1024 * 1024

export interface ApiInit {
  port: number
  paths: ReturnType<typeof dataPaths>
}

export interface Api {
  readonly url: string
  readonly port: number
  stop: () => Promise<void>
}

/** What the CLI reads from `api.json` to find the node. */
export interface ApiFile {
  url: string
  port: number
  pid: number
  peerId: string
}

async function writePrivateFile (file: string, body: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  const handle = await open(tmp, 'w', 0o600)
  try {
    await handle.writeFile(body)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, file)
}

export async function createApi (node: ApiNode, init: ApiInit): Promise<Api> {
  const token = randomBytes(32).toString('hex')
  const app: FastifyInstance = Fastify({ logger: false, bodyLimit: MAX_BODY_BYTES })
  let port = init.port

  app.addHook('onRequest', async (request) => {
    const allowedHosts = [`${API_HOST}:${port}`, `localhost:${port}`]
    const host = request.headers.host
    if (host != null && !allowedHosts.includes(host)) {
      throw new ApiError(403, 'ForbiddenHost', `requests must be addressed to ${API_HOST}:${port}`)
    }
    const origin = request.headers.origin
    if (origin != null && !allowedHosts.some(h => origin === `http://${h}`)) {
      throw new ApiError(403, 'ForbiddenOrigin', `requests from origin ${origin} are refused`)
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      if (request.headers.authorization !== `Bearer ${token}`) {
        throw new ApiError(401, 'Unauthorized', 'this call needs the node\'s token (Authorization: Bearer <token from api.token in the data directory>)')
      }
    }
  })

  app.setErrorHandler(async (err, _request, reply) => {
    if (err instanceof ApiError) {
      return reply.status(err.status).send({ error: { code: err.code, message: err.message } })
    }
    // a subsystem's error keeps its code; the table says whose fault it is
    const status = statusOf(err)
    if (status != null) {
      const e = err as Error
      if (status >= 500) node.log.warn(`API error: ${e.name}: ${e.message}`)
      return reply.status(status).send({ error: { code: e.name, message: e.message } })
    }
    const e = err as { statusCode?: number, code?: string, message: string, name?: string }
    if (e.statusCode != null && e.statusCode >= 400 && e.statusCode < 500) {
      return reply.status(e.statusCode).send({ error: { code: e.code ?? 'BadRequest', message: e.message } })
    }
    node.log.warn(`API error: ${e.name ?? 'Error'}: ${e.message}`)
    return reply.status(500).send({ error: { code: e.name ?? 'InternalError', message: e.message } })
  })

  app.setNotFoundHandler(async (request, reply) => {
    return reply.status(404).send({ error: { code: 'NotFound', message: `no route ${request.method} ${request.url}; see the README for the API` } })
  })

  // ---- routes: one module per area ----
  await app.register(async (scope) => { coreApi.routes(scope, node) })
  await app.register(async (scope) => { pairingApi.routes(scope, node) })
  await app.register(async (scope) => { contextApi.routes(scope, node) })
  await app.register(async (scope) => { agentsApi.routes(scope, node) })
  await app.register(async (scope) => { ledgerApi.routes(scope, node) })
  await app.register(async (scope) => { tasksApi.routes(scope, node) })

  await app.listen({ host: API_HOST, port: init.port })
  const address = app.server.address()
  port = typeof address === 'object' && address != null ? address.port : init.port
  const url = `http://${API_HOST}:${port}`

  await writePrivateFile(init.paths.token, token + '\n')
  const file: ApiFile = { url, port, pid: process.pid, peerId: node.peerId.toString() }
  await writePrivateFile(init.paths.api, JSON.stringify(file, null, 2) + '\n')

  return {
    url,
    port,
    stop: async () => {
      await unlink(init.paths.api).catch(() => {})
      await unlink(init.paths.token).catch(() => {})
      await app.close()
    }
  }
}
