// The local HTTP API on 127.0.0.1. The CLI talks to the running node through it. Mutating calls
// need the node's token (Bearer), or the dashboard's session cookie together with the API's own
// Origin; requests carrying another origin or Host are refused so a web page cannot drive the
// node, and every error is `{ error: { code, message } }`.

import { randomBytes } from 'node:crypto'
import { unlink } from 'node:fs/promises'
import Fastify from 'fastify'
import { CHECKPOINT_NAME_MAX_LENGTH } from '../../crdt/index.ts'
import { ApiError } from '../errors.ts'
import * as coreApi from './core.ts'
import * as pairingApi from './pairing.ts'
import * as contextApi from './context.ts'
import * as agentsApi from './agents.ts'
import * as ledgerApi from './ledger.ts'
import * as tasksApi from './tasks.ts'
import * as controlApi from './control.ts'
import * as flowsApi from './flows.ts'
import * as llmApi from './llm.ts'
import * as registryApi from './registry.ts'
import * as policyApi from './policy.ts'
import * as metricsApi from './metrics.ts'
import * as dashboardApi from './dashboard.ts'
import * as reachApi from './reach.ts'
import { createSessions } from './session.ts'
import { eventRoutes } from './events.ts'
import type { EventStreamLimits } from './events.ts'
import { statusOf } from './errors.ts'
import type { ApiNode } from './types.ts'
import type { dataPaths } from '../config.ts'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { writePrivateFile } from '../private-file.ts'

export const API_HOST = '127.0.0.1'
const MAX_BODY_BYTES = 8 * 1024 * 1024
/**
 * Longest path parameter taken. The longest a route needs is a checkpoint name of
 * CHECKPOINT_NAME_MAX_LENGTH (128) characters, percent-encoded UTF-8: at most 128 × 12 bytes.
 * Longer parameters are a 414 in the API's error shape; shorter ones reach the route, which
 * checks the id's own bound (a context id of 129 characters is a 400 InvalidContextId).
 */
const MAX_PARAM_LENGTH = CHECKPOINT_NAME_MAX_LENGTH * 12

/** How long requests under way may take to finish when the node stops. */
export const API_STOP_GRACE_MS = 2000

/**
 * What one local client, or many, can make the API hold. Every number the README's threat model
 * states for the API's connections is here, once.
 */
export interface ApiLimits extends EventStreamLimits {
  /** A request's headers must arrive within this (a client sending them a byte at a time is cut). */
  headersTimeoutMs: number
  /** The whole request must arrive within this. */
  requestTimeoutMs: number
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number
  /**
   * Connections open at once; more are closed as they arrive. Each holds a file descriptor the
   * node's libp2p side needs too, and each long poll (`GET /task/:id?waitMs`) holds one, so this
   * also bounds the waiters. A client refused this way can retry once a slot frees.
   */
  maxConnections: number
  /** How often the server looks for connections past their header or request timeout. */
  timeoutCheckMs: number
}

export const API_LIMITS: Readonly<ApiLimits> = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  maxConnections: 256,
  // Node checks every 30 s by default, which let a slow client stay up to 40 s
  timeoutCheckMs: 1_000,
  maxEventSubscribers: 32,
  eventQueueBytes: 1024 * 1024,
  eventHeartbeatMs: 15_000
}

/** The framework's own refusals, under the API's codes. */
const FRAMEWORK_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UnsupportedMediaType',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BodyTooLarge',
  FST_ERR_MAX_PARAM_LENGTH: 'UriTooLong',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BadRequest',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BadRequest',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BadRequest',
  FST_ERR_BAD_URL: 'BadRequest'
}

function errorBody (code: string, message: string): { error: { code: string, message: string } } {
  return { error: { code, message } }
}

export interface ApiInit {
  port: number
  paths: ReturnType<typeof dataPaths>
  /** Tighter limits (tests); API_LIMITS otherwise. */
  limits?: Partial<ApiLimits>
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

/** The schema compilers fastify is given: a route that declares a JSON schema is a programming error. */
function noJsonSchemas (): never {
  throw new Error('API routes check their input with zod (node/api/input.ts); a JSON schema on a route is not supported')
}

export async function createApi (node: ApiNode, init: ApiInit): Promise<Api> {
  const token = randomBytes(32).toString('hex')
  const limits: ApiLimits = { ...API_LIMITS, ...init.limits }
  const app: FastifyInstance = Fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    // No route declares a JSON schema: input is checked with zod (input.ts) and answers are
    // JSON.stringify'd. Left to itself fastify loads its ajv and fast-json-stringify compilers
    // at construction, which stay resident for nothing (about 3 MiB of an idle node).
    schemaController: { compilersFactory: { buildValidator: noJsonSchemas, buildSerializer: noJsonSchemas } },
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // a local client that sends half a request and stalls does not hold a connection for long
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.timeoutCheckMs },
    // refusals made before a route runs, in the same shape as every other error
    frameworkErrors: (err, _request, reply) => {
      const e = err as { statusCode?: number, code?: string, message: string }
      void (reply as FastifyReply).code(e.statusCode ?? 400).send(errorBody(FRAMEWORK_CODES[e.code ?? ''] ?? 'BadRequest', e.message))
    },
    // a request the HTTP parser cannot read (or one too slow to arrive) gets the shape too
    clientErrorHandler: (err, socket) => {
      if (socket.destroyed || (err as NodeJS.ErrnoException).code === 'ECONNRESET') return
      const timeout = (err as NodeJS.ErrnoException).code === 'ERR_HTTP_REQUEST_TIMEOUT'
      const body = JSON.stringify(errorBody(timeout ? 'RequestTimeout' : 'BadRequest', timeout ? 'the request did not arrive in time' : 'the request is not valid HTTP'))
      socket.end(`HTTP/1.1 ${timeout ? '408 Request Timeout' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
    }
  })
  let port = init.port
  const sessions = createSessions({ port: () => port })
  const hasToken = (authorization: string | undefined): boolean => authorization === `Bearer ${token}`

  app.addHook('onRequest', async (request) => {
    const allowedHosts = [`${API_HOST}:${port}`, `localhost:${port}`]
    // no Host at all (HTTP/1.0 allows it) is not the API's own address either
    const host = request.headers.host
    if (host == null || !allowedHosts.includes(host)) {
      throw new ApiError(403, 'ForbiddenHost', `requests must be addressed to ${API_HOST}:${port}`)
    }
    const origin = request.headers.origin
    if (origin != null && !allowedHosts.some(h => origin === `http://${h}`)) {
      throw new ApiError(403, 'ForbiddenOrigin', `requests from origin ${origin} are refused`)
    }
    // every call that changes anything needs the token, and so does a read that says what the
    // node does as it happens (its route's config says `token: true`)
    const read = request.method === 'GET' || request.method === 'HEAD'
    const needsToken = !read || (request.routeOptions.config as { token?: boolean } | undefined)?.token === true
    if (needsToken) {
      // the dashboard's page calls with its session cookie (SameSite=Strict: no other site's
      // page sends it); a browser always sends the Origin of a call that changes something,
      // and one without it is not the page
      const fromPage = (read || origin != null) && sessions.check(request.headers.cookie)
      if (!hasToken(request.headers.authorization) && !fromPage) {
        throw new ApiError(401, 'Unauthorized', 'this call needs the node\'s token (Authorization: Bearer <token from api.token in the data directory>), or the dashboard\'s session ("hive-node dashboard" logs a browser in)')
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
      return reply.status(e.statusCode).send(errorBody(FRAMEWORK_CODES[e.code ?? ''] ?? e.code ?? 'BadRequest', e.message))
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
  await app.register(async (scope) => { controlApi.routes(scope, node) })
  await app.register(async (scope) => { flowsApi.routes(scope, node) })
  await app.register(async (scope) => { reachApi.routes(scope, node) })
  await app.register(async (scope) => { llmApi.routes(scope, node) })
  await app.register(async (scope) => { registryApi.routes(scope, node) })
  await app.register(async (scope) => { policyApi.routes(scope, node) })
  await app.register(async (scope) => { metricsApi.routes(scope, node) })
  await app.register(async (scope) => { dashboardApi.routes(scope, node, { sessions, hasToken, url: () => `http://${API_HOST}:${port}` }) })
  const events = eventRoutes(node, limits)
  await app.register(async (scope) => { events.routes(scope) })

  app.server.maxConnections = limits.maxConnections
  let dropped = 0
  app.server.on('drop', () => {
    // said once per burst, not once per connection
    if (dropped++ === 0) node.log.warn(`local API: more than ${limits.maxConnections} connections at once; refusing new ones until some close`)
  })
  app.server.on('connection', () => { if (app.server.listening) dropped = 0 })

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
      // event streams never end by themselves: they end first, each closing its connection
      events.streams.close()
      // Closing waits for every open connection. Idle keep-alive ones are closed at once; a
      // request under way gets API_STOP_GRACE_MS to finish; then every connection left (a
      // half-sent request, a long poll) is cut, so a stop never waits on a local client.
      const closing = app.close()
      app.server.closeIdleConnections()
      const cut = setTimeout(() => { app.server.closeAllConnections() }, API_STOP_GRACE_MS)
      try {
        await closing
      } finally {
        clearTimeout(cut)
      }
    }
  }
}
