// The event stream and a task's log lines:
//   GET /events          Server-Sent Events (token required): `hello`, then every event of the
//                        node's hub as `id: N`, `event: TYPE`, `data: { id, type, at, data }`,
//                        and a comment line every heartbeat so proxies keep it open. Each
//                        subscriber has a bounded queue: one that stops reading is cut off once
//                        its unsent events pass the bound, and the node goes on serving others.
//                        At most `maxEventSubscribers` at once (503 TooManySubscribers); each is
//                        one of the API's connections. `Last-Event-ID` is not honoured: a client
//                        that reconnects reads what it missed through the other routes.
//   GET /task/:id/logs   { task, role?, status?, lines: [{ n, level, message, at? }], dropped, ended }:
//                        the lines this node holds, from a run here as they were logged, else those
//                        the task's result carried back.

import { isEnded, isTaskId } from '../../protocol/index.ts'
import { ApiError } from '../errors.ts'
import type { HiveEvent } from '../events/hub.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'
import type { ServerResponse } from 'node:http'

/** The event stream's part of the API's limits (`API_LIMITS` in server.ts states the numbers). */
export interface EventStreamLimits {
  /**
   * Clients following `GET /events` at once; more get 503 TooManySubscribers. Each holds one of
   * `maxConnections`, and this stays well below it so other clients are still served.
   */
  maxEventSubscribers: number
  /**
   * Bytes of events one subscriber may leave unread (queued in the node and its socket); past
   * it the subscriber is cut off, so a client that stops reading costs the node no more.
   */
  eventQueueBytes: number
  /** A comment line goes to every subscriber this often, so proxies and clients see it alive. */
  eventHeartbeatMs: number
}

export interface EventStreams {
  /** Subscribers connected now. */
  readonly count: number
  /** Ends every stream (the node stops): each answer completes and its connection closes. */
  close: () => void
}

interface Stream {
  res: ServerResponse
  end: () => void
}

/** The routes of this module and the streams they hold, which the server ends on stop. */
export function eventRoutes (node: ApiNode, limits: EventStreamLimits): { routes: (app: FastifyInstance) => void, streams: EventStreams } {
  const open = new Set<Stream>()
  let closing = false
  let cut = 0
  // every subscriber gets the same text for one event: serialised once
  let lastEvent: HiveEvent | undefined
  let lastText = ''
  const text = (event: HiveEvent): string => {
    if (event !== lastEvent) {
      lastEvent = event
      lastText = `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`
    }
    return lastText
  }

  const routes = (app: FastifyInstance): void => {
    app.get('/events', { config: { token: true } }, async (request, reply) => {
      if (closing) throw new ApiError(503, 'NodeStopping', 'the node is stopping')
      if (open.size >= limits.maxEventSubscribers) {
        throw new ApiError(503, 'TooManySubscribers', `${limits.maxEventSubscribers} clients already follow this node's events; close one (or retry later)`)
      }
      reply.hijack()
      const res = reply.raw
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        // the stream ends with its connection: a stop does not wait on an idle keep-alive
        connection: 'close',
        'x-accel-buffering': 'no'
      })
      let ended = false
      const send = (chunk: string): void => {
        if (ended) return
        // what the client has not read yet, here and in the socket's buffer: past the bound it
        // is cut off, and its events are not kept for it
        if (res.writableLength + Buffer.byteLength(chunk) > limits.eventQueueBytes) {
          if (cut++ === 0) node.log.warn(`event stream: a client that did not read ${limits.eventQueueBytes} bytes of events was cut off`)
          stream.end()
          // a reset: what the kernel still holds for it is dropped too, not sent on for minutes
          if (res.socket != null) res.socket.resetAndDestroy()
          else res.destroy()
          return
        }
        res.write(chunk)
      }
      const unsubscribe = node.events.subscribe((event) => { send(text(event)) })
      const heartbeat = setInterval(() => { send(': heartbeat\n\n') }, limits.eventHeartbeatMs)
      heartbeat.unref()
      const stream: Stream = {
        res,
        end: () => {
          if (ended) return
          ended = true
          clearInterval(heartbeat)
          unsubscribe()
          open.delete(stream)
        }
      }
      open.add(stream)
      res.once('close', stream.end)
      res.write(`retry: 2000\n\n${text(node.events.hello())}`)
    })

    app.get<{ Params: { id: string } }>('/task/:id/logs', async (request) => {
      const { id } = request.params
      if (!isTaskId(id)) throw new ApiError(400, 'InvalidTaskId', `"${id.slice(0, 64)}" is not a task id (32 hex characters, as "hive-node tasks" lists them)`)
      const view = node.placement.get(id) ?? (await node.taskArchive.get(id))?.view
      const held = node.events.taskLogs(id)
      if (view == null && held == null) throw new ApiError(404, 'TaskNotFound', `no task ${id} is known to this node; "hive-node tasks" lists the recent ones`)
      const finished = view != null && isEnded(view.status)
      const lines = held?.lines ?? (view?.result?.logs ?? []).map((l, i) => ({ n: i + 1, level: l.level, message: l.message }))
      return {
        task: id,
        ...(view != null ? { role: view.role, status: view.status } : {}),
        lines,
        dropped: held?.dropped ?? 0,
        // nothing more comes here: the task is over, or it ran here for another device's task
        ended: finished || (view?.role !== 'submitter' && held?.ended === true)
      }
    })
  }

  return {
    routes,
    streams: {
      get count () { return open.size },
      close: () => {
        closing = true
        for (const stream of [...open]) {
          stream.end()
          stream.res.end()
          // one that cannot take even the end (it does not read) is reset, not waited on
          if (stream.res.writableLength > 0) stream.res.socket?.resetAndDestroy()
        }
      }
    }
  }
}
