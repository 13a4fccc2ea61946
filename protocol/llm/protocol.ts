// `/hive/llm/1.0.0`: one member asks another to answer a chat or an embedding with a model the
// other holds. The byte-level description is in PROTOCOL.md beside this file.
//
// One stream per call. The caller sends one request frame; the server answers with token frames
// as they are made, then one `done` (or `embedded`) frame, or one `error` frame. The caller
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
  z.strictObject({ t: z.literal('token'), text: z.string().max(64 * 1024) }),
  z.strictObject({
    t: z.literal('done'),
    text: z.string().max(MAX_LLM_FRAME_BYTES),
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
        // one frame per token while the stream keeps up; tokens made during a write go out
        // together in the next frame, so a fast model is not slowed to the pace of the frames
        let pending = ''
        let writing: Promise<void> | undefined
        const flush = async (): Promise<void> => {
          while (pending !== '' && !callSignal.aborted) {
            const text = pending.length > 60_000 ? pending.slice(0, 60_000) : pending
            pending = pending.slice(text.length)
            await stream.write({ t: 'token', text }, { signal: callSignal })
          }
        }
        const result = await found.backend.chat(found.model, message.request as ChatRequest, {
          signal: callSignal,
          onToken: (text) => {
            pending += text
            writing ??= flush().finally(() => { writing = undefined })
          }
        })
        while (writing != null) await writing
        await flush()
        await stream.write({ t: 'done', text: result.text, model: result.model, tokensIn: result.tokensIn, tokensOut: result.tokensOut, finish: result.finish }, { signal: callSignal })
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

export type PeerChatAnswer = Extract<LlmResponseMessage, { t: 'done' }>
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
  try {
    await stream.write(message, { signal: callSignal })
    for (;;) {
      const answer = await stream.read(LlmResponseMessage, { signal: AbortSignal.any([callSignal, AbortSignal.timeout(options.idleMs)]) })
      if (answer.t === 'token') {
        if (message.t === 'chat') options.onToken?.(answer.text)
        continue
      }
      if (answer.t === 'error') throw answerError(answer.code, answer.message, name)
      if ((answer.t === 'done') !== (message.t === 'chat')) throw new LlmUnavailableError(`${name} answered a ${message.t} call with ${answer.t}`)
      finished = true
      return answer
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
      await stream.close({ signal: AbortSignal.timeout(2_000) }).catch(() => { stream.abort(new Error('close timed out')) })
    } else {
      stream.abort(new Error('model call ended'))
    }
  }
}
