// `/hive/placement-session/1.1.0`: the one-shot requests of `/hive/placement/1.0.0` (bid,
// decline, claim, renew, abandon, logs), and a small result with its ledger confirmation, on one
// long-lived stream per pair of peers instead of a stream each. A placed task asks its submitter
// five or six times and delivers one result; each new stream costs both ends a muxer stream, a
// protocol negotiation and its closing frames, more than the request. Each request carries an id
// its answer repeats, so requests do not wait for each other. A result larger than
// SESSION_RESULT_MAX_CHARS and a cancel keep their own streams, so one large answer never holds
// up the bids behind it. A peer that does not serve this version (an older release) is asked one
// stream per request, as before; so is any request while a session cannot be opened. See
// PROTOCOL.md › Sessions.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { dialFramed, serveProtocol } from '../wire/serve.ts'
import { SESSION_IDLE_MS, errorText } from './components.ts'
import { AbandonRequest, BidRequest, ClaimRequest, DeclineRequest, LogsRequest, RecordedRequest, RenewRequest, ResultRequest, refusal } from './messages.ts'
import type { FramedStream } from '../wire/framing.ts'
import type { PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from '../wire/serve.ts'
import type { AbortOptions } from '@libp2p/interface'

/**
 * Requests a session carries, each answered in one message: the one-shot requests, a result
 * (answered with the submitter's verdict) and, once the executor has appended its ledger record,
 * `recorded` for that result (answered Ack).
 */
export const SessionRequestBody = z.discriminatedUnion('t', [BidRequest, DeclineRequest, ClaimRequest, RenewRequest, AbandonRequest, LogsRequest, ResultRequest, RecordedRequest])
export type SessionRequestBody = z.infer<typeof SessionRequestBody>

/**
 * The most characters of output, error and log lines together that a result may carry to go on
 * a session; a larger one goes on a stream of its own (a session is one stream: a large frame on
 * it would hold up every answer behind it).
 */
export const SESSION_RESULT_MAX_CHARS = 16 * 1024

/** Whether a result is small enough for a session. */
export function fitsSession (result: z.infer<typeof ResultRequest>): boolean {
  let chars = (result.output?.length ?? 0) + (result.error?.length ?? 0)
  for (const line of result.logs ?? []) chars += line.level.length + line.message.length
  return chars <= SESSION_RESULT_MAX_CHARS
}

const RequestId = z.number().int().min(0).max(0xffff_ffff)
export const SessionRequest = z.object({ id: RequestId, request: SessionRequestBody })
/** The answer's shape is the request's own (Ack, ClaimResponse, RenewResponse), checked by the asker. */
export const SessionAnswer = z.object({ id: RequestId, answer: z.unknown() })

/** The refusal reason of a request whose handler failed: the asker takes it as a failed exchange. */
export const SESSION_REQUEST_FAILED = 'SessionRequestFailed'

/** Requests one session has under way at once, either end; a client past it opens a stream per request. */
export const MAX_SESSION_REQUESTS = 64
/** Sessions one peer may hold open to this node at once (one is the rule; a reconnect may overlap). */
const MAX_SESSIONS_PER_PEER = 2
/** How long a peer that does not serve sessions is asked one stream per request before trying again. */
const NO_SESSION_MS = 60_000
/** A session lost within this long of opening is not tried again for as long. */
const LOST_AT_ONCE_MS = 5_000

export type SessionHandler = (from: string, request: SessionRequestBody, options: AbortOptions) => Promise<unknown>

export interface ServeSessionsOptions {
  protocol: string
  maxFrameBytes: number
  gate?: PeerGate
  log: ProtocolLog
}

/** Serves sessions: every request read is answered through `handle`, under its id. */
export async function serveSessions (host: ProtocolHost, handle: SessionHandler, options: ServeSessionsOptions): Promise<ServedProtocol> {
  return serveProtocol(host, options.protocol, async (stream, { peer, signal }) => {
    const from = peer.toString()
    const underWay = new Set<Promise<void>>()
    for await (const { id, request } of stream.messages(SessionRequest, { signal })) {
      // a peer removed from the hive is not answered on a session it opened before
      if (options.gate != null && !options.gate.allows(peer, options.protocol)) break
      const answering = (async () => {
        let answer: unknown
        try {
          answer = await handle(from, request, { signal })
        } catch (err) {
          // what a stream per request would end with an aborted stream: the asker treats it so
          options.log.debug(`placement session request ${request.t} from ${from} failed: ${errorText(err)}`)
          answer = refusal(SESSION_REQUEST_FAILED, errorText(err))
        }
        await stream.write({ id, answer }, { signal })
      })().catch((err: unknown) => {
        options.log.debug(`placement session answer to ${request.t} from ${from} not sent: ${errorText(err)}`)
      })
      underWay.add(answering)
      void answering.finally(() => underWay.delete(answering))
      // a peer that asks more at once than a session carries is read no further until some end
      while (underWay.size >= MAX_SESSION_REQUESTS) await Promise.race(underWay)
    }
    await Promise.all(underWay)
  }, { log: options.log, longLived: true, maxMessageBytes: options.maxFrameBytes, maxInboundStreams: MAX_SESSIONS_PER_PEER * 8, maxInboundStreamsPerPeer: MAX_SESSIONS_PER_PEER, ...(options.gate != null ? { gate: options.gate } : {}) })
}

interface Pending {
  resolve: (answer: unknown) => void
  reject: (err: Error) => void
}

class Session {
  private readonly stream: FramedStream
  private readonly onClose: (session: Session, idle: boolean) => void
  private readonly pending = new Map<number, Pending>()
  private readonly idleMs: number
  private nextId = 0
  /** When the last request was asked or answered. */
  private usedAt = Date.now()
  private idleTimer?: NodeJS.Timeout
  closed = false

  constructor (stream: FramedStream, onClose: (session: Session, idle: boolean) => void, log: ProtocolLog, peer: string, idleMs: number) {
    this.stream = stream
    this.onClose = onClose
    this.idleMs = idleMs
    void this.read().catch((err: unknown) => {
      log.debug(`placement session with ${peer} ended: ${errorText(err)}`)
    }).finally(() => { this.close(new Error(`the placement session with ${peer} ended`)) })
    this.watchIdle(idleMs)
  }

  /** Closes the session once nothing has been asked or answered on it for `idleMs`. */
  private watchIdle (delayMs: number): void {
    this.idleTimer = setTimeout(() => {
      if (this.closed) return
      const quiet = Date.now() - this.usedAt
      if (this.pending.size > 0 || quiet < this.idleMs) {
        this.watchIdle(this.pending.size > 0 ? this.idleMs : this.idleMs - quiet)
        return
      }
      // leave the pool first, so a request from now on opens a new session; then end this
      // one cleanly: the server ends its side when it reads the end of ours, and so the read
      this.closed = true
      this.onClose(this, true)
      this.stream.close().catch((err: Error) => { this.stream.abort(err) })
    }, delayMs)
    this.idleTimer.unref()
  }

  get busy (): boolean {
    return this.pending.size >= MAX_SESSION_REQUESTS
  }

  private async read (): Promise<void> {
    for await (const { id, answer } of this.stream.messages(SessionAnswer)) {
      this.usedAt = Date.now()
      const waiting = this.pending.get(id)
      this.pending.delete(id)
      waiting?.resolve(answer)
    }
  }

  async ask (request: SessionRequestBody, options: AbortOptions): Promise<unknown> {
    const id = this.nextId
    this.nextId = (this.nextId + 1) % 0x1_0000_0000
    this.usedAt = Date.now()
    const { promise, resolve, reject } = Promise.withResolvers<unknown>()
    this.pending.set(id, { resolve, reject })
    const onAbort = (): void => {
      this.pending.delete(id)
      reject(options.signal?.reason instanceof Error ? options.signal.reason : new Error('aborted'))
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      options.signal?.throwIfAborted()
      await this.stream.write({ id, request }, options)
      return await promise
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
      this.pending.delete(id)
    }
  }

  close (err: Error): void {
    clearTimeout(this.idleTimer)
    if (this.closed) return
    this.closed = true
    for (const waiting of this.pending.values()) waiting.reject(err)
    this.pending.clear()
    this.stream.abort(err)
    this.onClose(this, false)
  }
}

export interface SessionPoolOptions {
  protocol: string
  maxFrameBytes: number
  log: ProtocolLog
  /** A session with nothing asked or answered this long is closed. Default SESSION_IDLE_MS. */
  idleMs?: number
}

/**
 * This node's sessions to the submitters it asks, one per peer, opened on first use and kept
 * while the connection lives and requests keep coming (closed after `idleMs` without one). `ask` resolves to the answer (unchecked: the caller checks it
 * against its schema), or undefined when no session can carry the request (then the caller
 * opens a stream for it, as without sessions).
 */
export class SessionPool {
  private readonly host: ProtocolHost
  private readonly options: SessionPoolOptions
  /** Sessions open, by peer; a closed one leaves at once (Session's onClose). */
  private readonly open = new Map<string, Session>()
  /** Sessions being opened, by peer: concurrent first requests share one dial. */
  private readonly opening = new Map<string, Promise<Session | undefined>>()
  /** Peers asked one stream per request until then (no session served, or one just lost). */
  private readonly noSession = new Map<string, number>()
  private stopped = false

  constructor (host: ProtocolHost, options: SessionPoolOptions) {
    this.host = host
    this.options = options
  }

  async ask (peer: string, request: SessionRequestBody, options: AbortOptions): Promise<{ answer: unknown } | undefined> {
    const session = await this.session(peer, options)
    if (session == null || session.closed || session.busy) return undefined
    return { answer: await session.ask(request, options) }
  }

  private async session (peer: string, options: AbortOptions): Promise<Session | undefined> {
    if (this.stopped) return undefined
    const held = this.open.get(peer)
    if (held != null) return held
    const until = this.noSession.get(peer)
    if (until != null) {
      if (Date.now() < until) return undefined
      this.noSession.delete(peer)
    }
    let opening = this.opening.get(peer)
    if (opening == null) {
      opening = this.dial(peer, options).finally(() => { this.opening.delete(peer) })
      this.opening.set(peer, opening)
    }
    return opening
  }

  private async dial (peer: string, options: AbortOptions): Promise<Session | undefined> {
    let stream: FramedStream
    try {
      stream = await dialFramed(this.host, peerIdFromString(peer), this.options.protocol, { signal: options.signal, maxMessageBytes: this.options.maxFrameBytes })
    } catch (err) {
      // an older release: one stream per request for a while; anything else, for this request
      if ((err as Error).name === 'UnsupportedProtocolError') this.noSession.set(peer, Date.now() + NO_SESSION_MS)
      this.options.log.debug(`no placement session with ${peer}, one stream per request: ${errorText(err)}`)
      return undefined
    }
    const openedAt = Date.now()
    const session = new Session(stream, (closed, idle) => {
      if (this.open.get(peer) === closed) this.open.delete(peer)
      // a session refused or lost as soon as it opened is not dialled again at every request
      if (!idle && Date.now() - openedAt < LOST_AT_ONCE_MS) this.noSession.set(peer, Date.now() + LOST_AT_ONCE_MS)
    }, this.options.log, peer, this.options.idleMs ?? SESSION_IDLE_MS)
    if (this.stopped || session.closed) {
      session.close(new Error('placement stopped'))
      return undefined
    }
    this.open.set(peer, session)
    return session
  }

  /** Closes every session (placement stops). */
  async stop (): Promise<void> {
    this.stopped = true
    await Promise.all([...this.opening.values()])
    for (const session of [...this.open.values()]) session.close(new Error('placement stopped'))
    this.open.clear()
    this.noSession.clear()
  }

  start (): void {
    this.stopped = false
  }
}
