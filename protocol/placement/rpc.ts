// `/hive/placement/1.0.0`: what a bidder or a winner asks the task's submitter, both ends.
// The only place where a request to this node itself is answered without the network: the
// submitter's handlers are called directly, with the same arguments a stream would carry, so the
// bidder and runner have one path whether the submitter is this node or another.

import { peerIdFromString } from '@libp2p/peer-id'
import { dialFramed, serveProtocol } from '../wire/serve.ts'
import { RECORD_CONFIRM_MS } from './components.ts'
import { PlacementRefusedError } from './errors.ts'
import { Ack, ClaimResponse, PlacementRequest, RecordedMessage, RenewResponse, ResultResponse, refusal } from './messages.ts'
import { MalformedMessageError } from '../wire/errors.ts'
import { SESSION_REQUEST_FAILED, fitsSession, serveSessions } from './session.ts'
import type { ServeSessionsOptions, SessionPool, SessionRequestBody } from './session.ts'
import type { BidSource } from './views.ts'
import type { TaskId } from './ids.ts'
import type { LogsRequest, PlacementRequest as Request, RecordedMessage as Recorded, RecordedRequest, Refusal } from './messages.ts'
import type { PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from '../wire/serve.ts'
import type { AbortOptions } from '@libp2p/interface'
import type { z } from 'zod'

export type ResultRequest = Extract<Request, { t: 'result' }>
export type AckAnswer = z.infer<typeof Ack>
export type ClaimAnswer = z.infer<typeof ClaimResponse>
export type RenewAnswer = z.infer<typeof RenewResponse>
export type ResultAnswer = z.infer<typeof ResultResponse>

/** What the submitter of a task answers. `from` is the authenticated peer that asks. */
export interface SubmitterHandlers {
  bid: (from: string, task: TaskId, bidder: string, record: Uint8Array, via: BidSource) => Promise<AckAnswer>
  claim: (from: string, task: TaskId, round: number) => ClaimAnswer
  renew: (from: string, task: TaskId, round: number) => RenewAnswer
  abandon: (from: string, task: TaskId, round: number, reason: string) => AckAnswer
  result: (from: string, request: ResultRequest) => ResultAnswer
  /** Resolves once an accepted result is kept where it must be, before the winner is told (PlacementComponents.keepResult). */
  kept?: (task: TaskId) => Promise<void>
  /** Whether a result for a task not held here was kept before this node restarted (PlacementComponents.keptBefore). */
  keptBefore?: (from: string, request: ResultRequest) => Promise<boolean>
  /** Log lines the winner streams while it runs. */
  logs: (from: string, request: LogsRequest) => AckAnswer
  /** A member will not bid on the task, and says why. */
  decline: (from: string, task: TaskId, reason: string) => AckAnswer
  /** Where the executor recorded the run (null: it did not say in time). */
  recorded: (from: string, request: ResultRequest, recorded: Recorded | null, accepted: boolean) => void
}

/**
 * What the winner of a task answers its submitter (the one request that goes that way). `from`
 * is the authenticated peer that asks; only the task's submitter may stop its run.
 */
export interface WinnerHandlers {
  cancel: (from: string, task: TaskId, round: number, reason: string) => AckAnswer
}

/** Tells the winner of a task, on another node, to stop its run. Resolves to its answer. */
export async function cancelRemoteRun (host: ProtocolHost, peer: string, request: { task: TaskId, round: number, reason: string }, options: RemoteSubmitterOptions & AbortOptions): Promise<AckAnswer> {
  const { signal } = options
  const stream = await dialFramed(host, peerIdFromString(peer), options.protocol, { signal, maxMessageBytes: options.maxFrameBytes })
  try {
    await stream.write({ t: 'cancel', ...request }, { signal })
    const answer = await stream.read(Ack, { signal })
    await stream.close({ signal }).catch(() => {})
    return answer
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    throw err
  }
}

/**
 * Asking one submitter. A refusal (not the winner, lease lapsed, task closed) is thrown as
 * PlacementRefusedError with its reason, except for a bid, whose refusal is only logged.
 */
export interface SubmitterClient {
  bid: (task: TaskId, bidder: string, record: Uint8Array, options: AbortOptions) => Promise<AckAnswer>
  /** Tells the submitter this device will not bid, and why. Absent: the submitter waits out its window. */
  decline?: (task: TaskId, reason: string, options: AbortOptions) => Promise<AckAnswer>
  claim: (task: TaskId, round: number, options: AbortOptions) => Promise<{ input: string, leaseMs: number }>
  renew: (task: TaskId, round: number, options: AbortOptions) => Promise<{ leaseMs: number }>
  abandon: (task: TaskId, round: number, reason: string, options: AbortOptions) => Promise<void>
  /**
   * Sends a result; `record` is called with the submitter's verdict (accepted or discarded, or
   * `false` when it no longer knows the task) and its answer is confirmed to the submitter.
   * Resolves to whether the result was accepted.
   */
  deliver: (request: ResultRequest, record: (accepted: boolean) => Promise<Recorded>, options: AbortOptions) => Promise<boolean>
  /** Sends log lines of a running task; a refusal is thrown. Absent: lines go only with the result. */
  logs?: (request: LogsRequest, options: AbortOptions) => Promise<void>
}

function refused (answer: Refusal): PlacementRefusedError {
  return new PlacementRefusedError(answer.reason, answer.message)
}

/**
 * The submitter's verdict on a result. The winner appends its `ok` record once it hears
 * "accepted", so an accepted result is kept first. A result for a task not held here is accepted
 * again when this node kept it before it restarted: the kill fell between keeping the result and
 * answering, and the run it kept must still get its `ok` record.
 */
async function judgeResult (handlers: SubmitterHandlers, from: string, request: ResultRequest): Promise<ResultAnswer> {
  const verdict = handlers.result(from, request)
  if (verdict.ok) {
    if (verdict.accepted) await handlers.kept?.(request.task)
    return verdict
  }
  if (verdict.reason === 'UnknownTask' && await handlers.keptBefore?.(from, request) === true) return { ok: true, accepted: true }
  return verdict
}

/** The submitter's handlers called in-process, for a task this node submitted. */
export function localSubmitter (handlers: SubmitterHandlers, self: string): SubmitterClient {
  return {
    bid: async (task, bidder, record) => handlers.bid(self, task, bidder, record, 'local'),
    decline: async (task, reason) => handlers.decline(self, task, reason),
    claim: async (task, round) => {
      const answer = handlers.claim(self, task, round)
      if (!answer.ok) throw refused(answer)
      return { input: answer.input, leaseMs: answer.leaseMs }
    },
    renew: async (task, round) => {
      const answer = handlers.renew(self, task, round)
      if (!answer.ok) throw refused(answer)
      return { leaseMs: answer.leaseMs }
    },
    abandon: async (task, round, reason) => {
      const answer = handlers.abandon(self, task, round, reason)
      if (!answer.ok) throw refused(answer)
    },
    deliver: async (request, record) => {
      const verdict = await judgeResult(handlers, self, request)
      const accepted = verdict.ok && verdict.accepted
      const recorded = await record(accepted)
      handlers.recorded(self, request, recorded, accepted)
      return accepted
    },
    logs: async (request) => {
      const answer = handlers.logs(self, request)
      if (!answer.ok) throw refused(answer)
    }
  }
}

export interface RemoteSubmitterOptions {
  protocol: string
  maxFrameBytes: number
  /** One-shot requests go on this node's session with the peer where it has one (session.ts). */
  sessions?: SessionPool
}

/** A submitter on another node: one-shot requests on a session where there is one, else one stream per request. */
export function remoteSubmitter (host: ProtocolHost, peer: string, options: RemoteSubmitterOptions): SubmitterClient {
  /** A session's answer to a request, checked against the request's answer schema. */
  const sessionAnswer = <S extends z.ZodType>(answer: unknown, schema: S, t: string): z.infer<S> => {
    const parsed = schema.safeParse(answer)
    if (!parsed.success) throw new MalformedMessageError(`${peer} answered a ${t} request with a malformed message`)
    const failed = parsed.data as { ok?: boolean, reason?: string, message?: string }
    if (failed.ok === false && failed.reason === SESSION_REQUEST_FAILED) throw new Error(`${peer} failed to answer a ${t} request: ${failed.message ?? ''}`)
    return parsed.data
  }
  const ask = async <S extends z.ZodType>(message: Exclude<Request, { t: 'result' | 'cancel' }>, schema: S, { signal }: AbortOptions): Promise<z.infer<S>> => {
    const viaSession = await options.sessions?.ask(peer, message, { signal })
    if (viaSession != null) return sessionAnswer(viaSession.answer, schema, message.t)
    const stream = await dialFramed(host, peerIdFromString(peer), options.protocol, { signal, maxMessageBytes: options.maxFrameBytes })
    try {
      await stream.write(message, { signal })
      const answer = await stream.read(schema, { signal })
      await stream.close({ signal }).catch(() => {})
      return answer
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      throw err
    }
  }
  return {
    bid: async (task, bidder, record, opts) => ask({ t: 'bid', task, bidder, record }, Ack, opts),
    decline: async (task, reason, opts) => ask({ t: 'decline', task, reason }, Ack, opts),
    claim: async (task, round, opts) => {
      const answer = await ask({ t: 'claim', task, round }, ClaimResponse, opts)
      if (!answer.ok) throw refused(answer)
      return { input: answer.input, leaseMs: answer.leaseMs }
    },
    renew: async (task, round, opts) => {
      const answer = await ask({ t: 'renew', task, round }, RenewResponse, opts)
      if (!answer.ok) throw refused(answer)
      return { leaseMs: answer.leaseMs }
    },
    abandon: async (task, round, reason, opts) => {
      const answer = await ask({ t: 'abandon', task, round, reason }, Ack, opts)
      if (!answer.ok) throw refused(answer)
    },
    logs: async (request, opts) => {
      const answer = await ask(request, Ack, opts)
      if (!answer.ok) throw refused(answer)
    },
    deliver: async (request, record, { signal }) => {
      // a small result on the session: its verdict, then the confirmation as a request of its own
      const viaSession = options.sessions != null && fitsSession(request) ? await options.sessions.ask(peer, request, { signal }) : undefined
      if (viaSession != null) {
        const verdict = sessionAnswer(viaSession.answer, ResultResponse, 'result')
        if (!verdict.ok) {
          await record(false)
          return false
        }
        const recorded = await record(verdict.accepted)
        // not confirmed (no session now, or it failed): the submitter notes that it was not, as when a stream fails
        await options.sessions?.ask(peer, { ...recorded, task: request.task, round: request.round }, { signal }).catch(() => undefined)
        return verdict.accepted
      }
      const stream = await dialFramed(host, peerIdFromString(peer), options.protocol, { signal, maxMessageBytes: options.maxFrameBytes })
      try {
        await stream.write(request, { signal })
        const verdict = await stream.read(ResultResponse, { signal })
        if (!verdict.ok) {
          // the submitter no longer knows the task: nothing to deliver, but the run is recorded
          await record(false)
          await stream.close({ signal }).catch(() => {})
          return false
        }
        const recorded = await record(verdict.accepted)
        await stream.write(recorded, { signal })
        await stream.read(Ack, { signal }).catch(() => {})
        await stream.close({ signal }).catch(() => {})
        return verdict.accepted
      } catch (err) {
        stream.abort(err instanceof Error ? err : new Error(String(err)))
        throw err
      }
    }
  }
}

export interface ServeSubmitterOptions {
  protocol: string
  maxFrameBytes: number
  /** How long an executor has to say where it recorded an accepted result. */
  recordConfirmMs: number
  gate?: PeerGate
  log: ProtocolLog
  /** The winner's side of the protocol (a cancel); refused as an unknown task without it. */
  winner?: WinnerHandlers
}

/** Serves the submitter's side: one request and its answer per stream (three legs for a result). */
export async function serveSubmitter (host: ProtocolHost, handlers: SubmitterHandlers, options: ServeSubmitterOptions): Promise<ServedProtocol> {
  return serveProtocol(host, options.protocol, async (stream, { peer, signal }) => {
    const request = await stream.read(PlacementRequest, { signal })
    const from = peer.toString()
    switch (request.t) {
      case 'bid':
      case 'claim':
      case 'renew':
      case 'abandon':
      case 'logs':
      case 'decline':
        await stream.write(await answerOneShot(handlers, from, request), { signal })
        return
      case 'cancel':
        await stream.write(options.winner?.cancel(from, request.task, request.round, request.reason) ?? refusal('UnknownTask', `task ${request.task} does not run here`), { signal })
        return
      case 'result': {
        const verdict = await judgeResult(handlers, from, request)
        await stream.write(verdict, { signal })
        const recorded = await stream.readOrEnd(RecordedMessage, { signal: AbortSignal.any([signal, AbortSignal.timeout(options.recordConfirmMs)]) }).catch(() => null)
        handlers.recorded(from, request, recorded, verdict.ok && verdict.accepted)
        if (recorded != null) await stream.write({ ok: true }, { signal })
      }
    }
  }, { log: options.log, gate: options.gate, maxMessageBytes: options.maxFrameBytes, timeoutMs: options.recordConfirmMs + 30_000, maxInboundStreams: 256 })
}

type OneShotRequest = Exclude<SessionRequestBody, { t: 'result' | 'recorded' }>

/** The answer to a one-shot request, on a stream of its own or on a session. */
async function answerOneShot (handlers: SubmitterHandlers, from: string, request: OneShotRequest): Promise<AckAnswer | ClaimAnswer | RenewAnswer> {
  switch (request.t) {
    case 'bid': return handlers.bid(from, request.task, request.bidder, request.record, 'stream')
    case 'claim': return handlers.claim(from, request.task, request.round)
    case 'renew': return handlers.renew(from, request.task, request.round)
    case 'abandon': return handlers.abandon(from, request.task, request.round, request.reason)
    case 'logs': return handlers.logs(from, request)
    case 'decline': return handlers.decline(from, request.task, request.reason)
  }
}

/** The most results answered on sessions that wait for their executor's ledger confirmation at once. */
export const MAX_AWAITED_CONFIRMATIONS = 1024

interface AwaitedConfirmation {
  from: string
  request: ResultRequest
  accepted: boolean
  timer: NodeJS.Timeout
}

/**
 * Results answered on a session, each waiting for its executor to say where it recorded the
 * run: the `recorded` request that follows, or nothing within `confirmMs`. What a result's own
 * stream keeps open between its second and third legs, kept here by executor, task and round.
 */
class AwaitedConfirmations {
  private readonly waiting = new Map<string, AwaitedConfirmation>()
  private readonly handlers: SubmitterHandlers
  private readonly confirmMs: number

  constructor (handlers: SubmitterHandlers, confirmMs: number) {
    this.handlers = handlers
    this.confirmMs = confirmMs
  }

  /** A result was answered: its confirmation is awaited. A delivery tried again awaits one confirmation, from its last try. */
  expect (from: string, request: ResultRequest, accepted: boolean): void {
    const key = confirmationKey(from, request.task, request.round)
    const before = this.waiting.get(key)
    if (before != null) clearTimeout(before.timer)
    this.waiting.delete(key)
    // bounded: the oldest is taken as not confirmed, as if its time were up
    if (this.waiting.size >= MAX_AWAITED_CONFIRMATIONS) this.settle(this.waiting.keys().next().value as string, null)
    const timer = setTimeout(() => { this.settle(key, null) }, this.confirmMs)
    timer.unref()
    this.waiting.set(key, { from, request, accepted, timer })
  }

  confirm (from: string, request: RecordedRequest): AckAnswer {
    const key = confirmationKey(from, request.task, request.round)
    if (!this.waiting.has(key)) return refusal('UnknownTask', `no result of task ${request.task} round ${request.round} from this device awaits its ledger record here`)
    const { task: _task, round: _round, ...recorded } = request
    this.settle(key, recorded)
    return { ok: true }
  }

  stop (): void {
    for (const held of this.waiting.values()) clearTimeout(held.timer)
    this.waiting.clear()
  }

  private settle (key: string, recorded: Recorded | null): void {
    const held = this.waiting.get(key)
    if (held == null) return
    clearTimeout(held.timer)
    this.waiting.delete(key)
    this.handlers.recorded(held.from, held.request, recorded, held.accepted)
  }
}

function confirmationKey (from: string, task: TaskId, round: number): string {
  return `${from} ${task} ${round}`
}

/**
 * Serves the submitter's requests on sessions (session.ts), beside `serveSubmitter`: the one-shot
 * requests, and a small result in two requests (the result, answered with the verdict; then
 * `recorded`, which says where the executor recorded the run).
 */
export async function serveSubmitterSessions (host: ProtocolHost, handlers: SubmitterHandlers, options: ServeSessionsOptions & { recordConfirmMs?: number }): Promise<ServedProtocol> {
  const { recordConfirmMs = RECORD_CONFIRM_MS, ...sessionOptions } = options
  const confirmations = new AwaitedConfirmations(handlers, recordConfirmMs)
  const served = await serveSessions(host, async (from, request) => {
    switch (request.t) {
      case 'result': {
        const verdict = await judgeResult(handlers, from, request)
        // a refused result is recorded by its executor and nothing more is said of it, as on a stream
        if (verdict.ok) confirmations.expect(from, request, verdict.accepted)
        return verdict
      }
      case 'recorded':
        return confirmations.confirm(from, request)
      default:
        return answerOneShot(handlers, from, request)
    }
  }, sessionOptions)
  return {
    protocol: served.protocol,
    stop: async () => {
      confirmations.stop()
      await served.stop()
    }
  }
}
