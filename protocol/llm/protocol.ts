// `/hive/llm/1.0.0`: one member asks another to answer a chat or an embedding with a model the
// other holds. The byte-level description is in PROTOCOL.md beside this file.
//
// One stream per call. The caller sends one request frame; the server answers with token frames
// as they are made (a fast model's grouped, see `tokenFrames`), then one `done` (or `embedded`)
// frame, or one `error` frame; the answer is the token frames joined, never repeated. The caller
// cancels by sending a `cancel` frame or by resetting the stream; either aborts the model at
// once. A server answers only from its own device's models: it never forwards to another peer
// or to a cloud, so no call loops and no device spends another's budget.

import { z } from 'zod'
import { dialFramed, serveProtocol } from '../wire/serve.ts'
import { isPeerFault } from '../wire/errors.ts'
import { LLM_PROTOCOL } from '../wire/ids.ts'
import { LlmTooLargeError, LlmUnavailableError, ModelNotFoundError } from './errors.ts'
import type { InboundHandler, PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from '../wire/serve.ts'
import type { ChatRequest, ModelBackend } from './types.ts'
import type { PeerId } from '@libp2p/interface'

export { LLM_PROTOCOL }

// ---- bounds, stated once ----
/** Largest frame either side sends. */
export const MAX_LLM_FRAME_BYTES = 4 * 1024 * 1024
export const MAX_MODEL_NAME = 128
export const MAX_MODELS = 16
export const MAX_MESSAGES = 512
export const MAX_CONTENT_CHARS = 1024 * 1024
export const MAX_TOKENS = 32_768
export const MAX_STOP = 16
export const MAX_EMBED_TEXTS = 256
export const MAX_EMBED_TEXT_CHARS = 64 * 1024
/** Concurrent inbound calls per node; the engine answers them in turn anyway. */
export const MAX_INBOUND_CALLS = 16
/** Characters of one `token` frame. */
export const MAX_TOKEN_FRAME_CHARS = 64 * 1024
/** Characters of a whole chat answer, summed over its `token` frames; both sides hold to it. */
export const MAX_ANSWER_CHARS = 4 * 1024 * 1024
/** Longest a made token waits for others to share its frame (see `tokenFrames`). */
export const TOKEN_FLUSH_MS = 25

const ModelName = z.string().min(1).max(MAX_MODEL_NAME)

export const ChatRequestSchema = z.strictObject({
  models: z.array(ModelName).max(MAX_MODELS),
  messages: z.array(z.strictObject({
    role: z.enum(['system', 'user', 'assistant']),
    content: z.string().max(MAX_CONTENT_CHARS)
  })).min(1).max(MAX_MESSAGES),
  maxTokens: z.number().int().min(1).max(MAX_TOKENS),
  temperature: z.number().min(0).max(2).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  stop: z.array(z.string().min(1).max(64)).max(MAX_STOP).optional(),
  format: z.union([
    z.strictObject({ kind: z.literal('json') }),
    z.strictObject({ kind: z.literal('schema'), schema: z.string().max(64 * 1024) })
  ]).optional()
})

export const LlmRequestMessage = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('chat'), request: ChatRequestSchema }),
  z.strictObject({
    t: z.literal('embed'),
    model: ModelName,
    texts: z.array(z.string().max(MAX_EMBED_TEXT_CHARS)).min(1).max(MAX_EMBED_TEXTS)
  })
])
export type LlmRequestMessage = z.infer<typeof LlmRequestMessage>

export const CancelMessage = z.strictObject({ t: z.literal('cancel') })

const WIRE_ERRORS = ['ModelNotFound', 'LlmUnavailable', 'LlmTooLarge'] as const

export const LlmResponseMessage = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('token'), text: z.string().max(MAX_TOKEN_FRAME_CHARS) }),
  z.strictObject({
    t: z.literal('done'),
    model: ModelName,
    tokensIn: z.number().int().min(0),
    tokensOut: z.number().int().min(0),
    finish: z.enum(['stop', 'length', 'cancelled'])
  }),
  z.strictObject({
    t: z.literal('embedded'),
    model: ModelName,
    vectors: z.array(z.array(z.number()).max(16_384)).max(MAX_EMBED_TEXTS),
    tokensIn: z.number().int().min(0)
  }),
  z.strictObject({ t: z.literal('error'), code: z.enum(WIRE_ERRORS), message: z.string().max(1024) })
])
export type LlmResponseMessage = z.infer<typeof LlmResponseMessage>

/** Finds, among this device's backends, one that holds an acceptable model. */
export interface LocalModels {
  find: (models: string[], options?: { signal?: AbortSignal }) => Promise<{ backend: ModelBackend, model: string } | undefined>
}

export interface LlmServerInit {
  log: ProtocolLog
  gate: PeerGate
  /** Longest one call may run on this device. Default 10 min. */
  callTimeoutMs?: number
  onPeerFault?: (peer: PeerId, err: Error) => void
  /** Told of each call served (tests, metrics). */
  onServed?: (event: { peer: string, kind: 'chat' | 'embed', model?: string, error?: string }) => void
}

function wireError (err: unknown): { code: typeof WIRE_ERRORS[number], message: string } {
  const e = err instanceof Error ? err : new Error(String(err))
  const code = (WIRE_ERRORS as readonly string[]).includes(e.name) ? e.name as typeof WIRE_ERRORS[number] : 'LlmUnavailable'
  return { code, message: e.message.slice(0, 1024) }
}

/** Cuts text into pieces of at most `max` characters, never inside a surrogate pair. */
export function textPieces (text: string, max = MAX_TOKEN_FRAME_CHARS): string[] {
  const pieces: string[] = []
  let at = 0
  while (at < text.length) {
    let end = Math.min(text.length, at + max)
    const code = text.charCodeAt(end - 1)
    if (end < text.length && end - at > 1 && code >= 0xd800 && code <= 0xdbff) end--
    pieces.push(text.slice(at, end))
    at = end
  }
  return pieces
}

/** A chat's tokens on their way out as `token` frames. */
export interface TokenFrames {
  /** Everything pushed so far, sent or waiting. */
  readonly text: string
  push: (text: string) => void
  /**
   * Stops the timer, waits for a write under way, and hands back the text not sent yet, for
   * the call's last write; rejects if a write failed.
   */
  finish: () => Promise<string>
  /** Drops what waits and sends nothing more. */
  cancel: () => void
}

/**
 * Groups a chat's tokens into frames, at most one frame per `flushMs`. A token made when no
 * frame went out for `flushMs` leaves at once, so a model slower than one token per `flushMs`
 * (most models on most devices) streams token by token, as made, and the first token is never
 * held. Tokens made sooner wait together for the next frame, never longer than `flushMs`: a
 * fast model costs a frame (its encoding, encryption, a socket write and the other side's
 * decoding) per `flushMs` instead of one per token.
 */
export function tokenFrames (write: (text: string) => Promise<void>, options: { flushMs: number, maxFrameChars?: number }): TokenFrames {
  const maxChars = options.maxFrameChars ?? MAX_TOKEN_FRAME_CHARS
  let text = ''
  let pending = ''
  let lastSent = -Infinity
  let timer: ReturnType<typeof setTimeout> | undefined
  let writing: Promise<void> | undefined
  let failed: unknown
  let stopped = false

  const send = (): void => {
    clearTimeout(timer)
    timer = undefined
    if (writing != null || pending === '' || stopped || failed != null) return
    const pieces = textPieces(pending, maxChars)
    pending = ''
    lastSent = performance.now()
    writing = (async () => { for (const piece of pieces) await write(piece) })()
      .catch((err: unknown) => { failed = err })
      .finally(() => { writing = undefined; schedule() })
  }
  function schedule (): void {
    if (writing != null || timer != null || pending === '' || stopped) return
    const wait = lastSent + options.flushMs - performance.now()
    if (wait <= 0 || pending.length >= maxChars) send()
    else timer = setTimeout(send, wait)
  }
  return {
    get text () { return text },
    push (piece) {
      if (piece === '' || stopped) return
      text += piece
      pending += piece
      schedule()
    },
    async finish () {
      stopped = true
      clearTimeout(timer)
      timer = undefined
      while (writing != null) await writing
      if (failed != null) throw failed
      const rest = pending
      pending = ''
      return rest
    },
    cancel () {
      stopped = true
      pending = ''
      clearTimeout(timer)
      timer = undefined
    }
  }
}

/** Serves this device's models to the hive's members. */
export async function serveLlm (host: ProtocolHost, local: LocalModels, init: LlmServerInit): Promise<ServedProtocol> {
  const handler: InboundHandler = async (stream, { peer, signal }) => {
    const message = await stream.read(LlmRequestMessage, { signal })
    const cancelled = new AbortController()
    const callSignal = AbortSignal.any([signal, cancelled.signal])
    let peerFault: Error | undefined
    // any frame after the request (a cancel, or garbage), an end or a reset stops the model
    stream.readOrEnd(CancelMessage, { signal: callSignal }).then(
      () => { cancelled.abort(new Error('the caller cancelled')) },
      (err: Error) => { if (isPeerFault(err)) peerFault = err; cancelled.abort(err) }
    )
    const report = (model?: string, error?: string): void => {
      init.onServed?.({ peer: peer.toString(), kind: message.t, ...(model != null ? { model } : {}), ...(error != null ? { error } : {}) })
    }
    const models = message.t === 'chat' ? message.request.models : [message.model]
    let found
    try {
      found = await local.find(models, { signal: callSignal })
    } catch (err) {
      found = undefined
      init.log.debug(`llm: listing local models failed: ${(err as Error).message}`)
    }
    if (found == null) {
      report(undefined, 'ModelNotFound')
      await stream.write({ t: 'error', code: 'ModelNotFound', message: `this device holds none of ${models.join(', ') || 'any model'}` }, { signal })
      return
    }
    try {
      if (message.t === 'chat') {
        // an answer longer than the bound stops the model and is refused as too large; the
        // caller's own cancel stays apart from it, so the caller is told why
        const tooLong = new AbortController()
        const frames = tokenFrames(async (text) => { await stream.write({ t: 'token', text }, { signal: callSignal }) }, { flushMs: TOKEN_FLUSH_MS })
        const tooLarge = (): Error => new LlmTooLargeError(`the answer grew past ${MAX_ANSWER_CHARS} characters; ask for fewer tokens`)
        try {
          const result = await found.backend.chat(found.model, message.request as ChatRequest, {
            signal: AbortSignal.any([callSignal, tooLong.signal]),
            onToken: (text) => {
              if (tooLong.signal.aborted) return
              if (frames.text.length + text.length > MAX_ANSWER_CHARS) tooLong.abort()
              else frames.push(text)
            }
          }).catch((err: unknown) => { throw tooLong.signal.aborted && !callSignal.aborted ? tooLarge() : err })
          callSignal.throwIfAborted()
          if (tooLong.signal.aborted || result.text.length > MAX_ANSWER_CHARS) throw tooLarge()
          // the caller rebuilds the answer from the token frames alone: send what the answer
          // has beyond what was streamed, and refuse one that does not continue its stream
          if (!result.text.startsWith(frames.text)) throw new LlmUnavailableError('the model\'s answer differs from the tokens it streamed')
          const rest = await frames.finish() + result.text.slice(frames.text.length)
          const done = { t: 'done', model: result.model, tokensIn: result.tokensIn, tokensOut: result.tokensOut, finish: result.finish }
          // the last tokens and `done` leave in one write
          await stream.writeAll([...textPieces(rest).map(text => ({ t: 'token', text })), done], { signal: callSignal })
        } finally {
          // nothing of this call goes out after its last frame (an error frame included)
          frames.cancel()
        }
      } else {
        const result = await found.backend.embed(found.model, message.texts, { signal: callSignal })
        await stream.write({ t: 'embedded', model: found.model, vectors: result.vectors, tokensIn: result.tokensIn }, { signal: callSignal })
      }
      report(found.model)
    } catch (err) {
      if (peerFault != null) throw peerFault
      if (callSignal.aborted) {
        report(found.model, 'cancelled')
        return
      }
      report(found.model, (err as Error).name)
      await stream.write({ t: 'error', ...wireError(err) }, { signal })
    }
    if (peerFault != null) throw peerFault
  }
  return serveProtocol(host, LLM_PROTOCOL, handler, {
    log: init.log,
    gate: init.gate,
    maxMessageBytes: MAX_LLM_FRAME_BYTES,
    timeoutMs: init.callTimeoutMs ?? 600_000,
    maxInboundStreams: MAX_INBOUND_CALLS,
    ...(init.onPeerFault != null ? { onPeerFault: init.onPeerFault } : {})
  })
}

export interface PeerCallOptions {
  signal?: AbortSignal
  onToken?: (text: string) => void
  /** Longest the whole call may take. */
  timeoutMs: number
  /** Longest the peer may stay silent (no frame) before the call is given up. */
  idleMs: number
}

/** A chat's `done` frame with the answer the caller put together from the token frames. */
export type PeerChatAnswer = Extract<LlmResponseMessage, { t: 'done' }> & { text: string }
export type PeerEmbedAnswer = Extract<LlmResponseMessage, { t: 'embedded' }>

function answerError (code: typeof WIRE_ERRORS[number], message: string, peer: string): Error {
  const text = `${peer}: ${message}`
  if (code === 'ModelNotFound') return new ModelNotFoundError(text)
  if (code === 'LlmTooLarge') return new LlmTooLargeError(text)
  return new LlmUnavailableError(text)
}

/**
 * Asks one peer. A dial failure, a reset, a malformed answer, silence longer than `idleMs` or a
 * call longer than `timeoutMs` is LlmUnavailableError; the caller's own abort is rethrown as it is.
 */
export async function callPeer (host: ProtocolHost, peer: PeerId, message: LlmRequestMessage & { t: 'chat' }, options: PeerCallOptions): Promise<PeerChatAnswer>
export async function callPeer (host: ProtocolHost, peer: PeerId, message: LlmRequestMessage & { t: 'embed' }, options: PeerCallOptions): Promise<PeerEmbedAnswer>
export async function callPeer (host: ProtocolHost, peer: PeerId, message: LlmRequestMessage, options: PeerCallOptions): Promise<PeerChatAnswer | PeerEmbedAnswer> {
  const name = peer.toString()
  const overall = AbortSignal.timeout(options.timeoutMs)
  const callSignal = options.signal != null ? AbortSignal.any([options.signal, overall]) : overall
  let stream
  try {
    stream = await dialFramed(host, peer, LLM_PROTOCOL, { signal: AbortSignal.any([callSignal, AbortSignal.timeout(options.idleMs)]), maxMessageBytes: MAX_LLM_FRAME_BYTES })
  } catch (err) {
    if (options.signal?.aborted === true) throw options.signal.reason
    throw new LlmUnavailableError(`could not reach ${name} for a model call: ${(err as Error).message}`)
  }
  let finished = false
  let text = ''
  try {
    await stream.write(message, { signal: callSignal })
    for (;;) {
      const answer = await stream.read(LlmResponseMessage, { signal: AbortSignal.any([callSignal, AbortSignal.timeout(options.idleMs)]) })
      if (answer.t === 'error') throw answerError(answer.code, answer.message, name)
      const expected = message.t === 'chat' ? ['token', 'done'] : ['embedded']
      if (!expected.includes(answer.t)) throw new LlmUnavailableError(`${name} answered a ${message.t} call with ${answer.t}`)
      if (answer.t === 'token') {
        if (text.length + answer.text.length > MAX_ANSWER_CHARS) throw new LlmUnavailableError(`${name} sent an answer longer than ${MAX_ANSWER_CHARS} characters`)
        text += answer.text
        options.onToken?.(answer.text)
        continue
      }
      finished = true
      return answer.t === 'done' ? { ...answer, text } : answer
    }
  } catch (err) {
    if (options.signal?.aborted === true) throw options.signal.reason
    const e = err as Error
    if (e instanceof ModelNotFoundError || e instanceof LlmTooLargeError || e instanceof LlmUnavailableError) throw e
    const why = overall.aborted
      ? `took longer than ${options.timeoutMs} ms`
      : e.name === 'TimeoutError' ? `was silent for ${options.idleMs} ms` : e.name === 'StreamClosed' ? 'the peer closed the call before answering' : `${e.name}: ${e.message}`
    throw new LlmUnavailableError(`the model call on ${name} failed: ${why}`)
  } finally {
    if (finished) {
      // the answer is complete at `done`: the caller has it while the stream closes behind it
      void stream.close({ signal: AbortSignal.timeout(2_000) }).catch(() => { stream.abort(new Error('close timed out')) })
    } else {
      stream.abort(new Error('model call ended'))
    }
  }
}
