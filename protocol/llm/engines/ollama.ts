// An Ollama server on the device, through its HTTP API: `/api/tags` lists models, `/api/chat`
// streams an answer as NDJSON (one JSON object a line, the last with `done: true` and the token
// counts), `/api/embed` embeds. Two traps of that API are handled here: an error after streaming
// began arrives as one `{"error": …}` line while the status stays 200, and a model the server
// lacks is a 404 whose body says so. Every answer is read within bounds and validated.

import { z } from 'zod'
import { LlmUnavailableError, ModelNotFoundError } from '../errors.ts'
import { RequestInvalidError } from './errors.ts'
import { boundedLines, boundedText, fetchOrUnavailable, isAbortOf, parseJson } from './http.ts'
import { httpGet } from '../../wire/http-get.ts'
import { LIST_TIMEOUT_MS, MODEL_NAME_MAX, RESPONSE_MAX_BYTES } from './limits.ts'
import type { ChatRequest, FinishReason, ModelBackend, ModelInfo } from '../types.ts'

export const OLLAMA_DEFAULT_URL = 'http://127.0.0.1:11434'

export interface OllamaBackendInit {
  /** Default http://127.0.0.1:11434. */
  baseUrl?: string
  /** How long listing the models may take. */
  listTimeoutMs?: number
}

export interface OllamaBackend extends ModelBackend {
  readonly source: 'ollama'
  readonly baseUrl: string
}

const Tags = z.object({
  models: z.array(z.object({
    name: z.string().min(1).max(MODEL_NAME_MAX),
    size: z.number().int().nonnegative().optional()
  }).loose()).max(10_000)
}).loose()

const ChatLine = z.union([
  z.object({ error: z.string() }).loose(),
  z.object({
    message: z.object({ content: z.string().optional() }).loose().optional(),
    done: z.boolean(),
    done_reason: z.string().optional(),
    prompt_eval_count: z.number().int().nonnegative().optional(),
    eval_count: z.number().int().nonnegative().optional()
  }).loose()
])

const Embed = z.object({
  embeddings: z.array(z.array(z.number())),
  prompt_eval_count: z.number().int().nonnegative().optional()
}).loose()

const ErrorBody = z.object({ error: z.string() }).loose()

export function createOllamaBackend (init: OllamaBackendInit = {}): OllamaBackend {
  const baseUrl = (init.baseUrl ?? OLLAMA_DEFAULT_URL).replace(/\/+$/, '')
  const what = `the Ollama server at ${baseUrl}`
  const hint = 'start Ollama (`ollama serve`) or check its address'

  async function post (path: string, body: unknown, signal: AbortSignal | undefined, model: string): Promise<Response> {
    const response = await fetchOrUnavailable(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      ...(signal != null ? { signal } : {})
    }, what, hint)
    if (response.ok) return response
    const text = await boundedText(response, what).catch(() => '')
    const parsed = ErrorBody.safeParse(parseJsonOrNull(text))
    const message = parsed.success ? parsed.data.error : text.slice(0, 200)
    if (response.status === 404) throw new ModelNotFoundError(`${what} has no model "${model}" (${message}): pull it with \`ollama pull ${model}\``)
    if (response.status === 400) throw new RequestInvalidError(`${what} refused the request: ${message}`)
    throw new LlmUnavailableError(`${what} answered ${response.status}: ${message}`)
  }

  return {
    source: 'ollama',
    baseUrl,

    async models (options = {}): Promise<ModelInfo[]> {
      const timeout = AbortSignal.timeout(init.listTimeoutMs ?? LIST_TIMEOUT_MS)
      const signal = options.signal != null ? AbortSignal.any([options.signal, timeout]) : timeout
      // listed at start and for every capability report: over node:http, so a node that never
      // chats does not carry fetch's HTTP client (protocol/wire/http-get.ts)
      let answer
      try {
        answer = await httpGet(`${baseUrl}/api/tags`, { signal, maxBytes: RESPONSE_MAX_BYTES })
      } catch (err) {
        if (timeout.aborted && options.signal?.aborted !== true) throw new LlmUnavailableError(`${what} did not list its models within ${init.listTimeoutMs ?? LIST_TIMEOUT_MS} ms`)
        if (options.signal?.aborted === true) throw err
        const why = (err as { code?: string }).code ?? (err as Error).message
        throw new LlmUnavailableError(`${what} does not answer (${why}): ${hint}`, { cause: err })
      }
      if (answer.status < 200 || answer.status >= 300) throw new LlmUnavailableError(`${what} answered ${answer.status} to a model list`)
      if (answer.text == null) throw new LlmUnavailableError(`${what} sent more than ${RESPONSE_MAX_BYTES} bytes: it is misbehaving`)
      const tags = Tags.safeParse(parseJson(answer.text, what))
      if (!tags.success) throw new LlmUnavailableError(`${what} sent a model list of an unknown shape: ${tags.error.message}`)
      return tags.data.models.map(m => ({ name: m.name, sizeBytes: m.size ?? 0, source: 'ollama' as const }))
    },

    async chat (model, request, options) {
      const { signal, onToken } = options
      const body = {
        model,
        messages: request.messages.map(m => ({ role: m.role, content: m.content })),
        stream: true,
        options: {
          num_predict: request.maxTokens,
          ...(request.temperature != null ? { temperature: request.temperature } : {}),
          ...(request.seed != null ? { seed: request.seed } : {}),
          ...(request.stop != null && request.stop.length > 0 ? { stop: request.stop } : {})
        },
        ...(request.format != null ? { format: formatOf(request.format) } : {})
      }
      let text = ''
      let chunks = 0
      try {
        const response = await post('/api/chat', body, signal, model)
        for await (const line of boundedLines(response.body, what)) {
          if (line.trim() === '') continue
          const parsed = ChatLine.safeParse(parseJson(line, what))
          if (!parsed.success) throw new LlmUnavailableError(`${what} sent a chat line of an unknown shape: ${parsed.error.message}`)
          const chunk = parsed.data
          if ('error' in chunk) throw new LlmUnavailableError(`${what} failed while answering: ${chunk.error}`)
          const content = chunk.message?.content ?? ''
          if (content !== '') {
            text += content
            chunks++
            onToken?.(content)
          }
          if (chunk.done) {
            return { text, model, tokensIn: chunk.prompt_eval_count ?? 0, tokensOut: chunk.eval_count ?? chunks, finish: finishOf(chunk.done_reason) }
          }
        }
        throw new LlmUnavailableError(`${what} ended its answer before saying it was done`)
      } catch (err) {
        if (isAbortOf(err, signal)) return { text, model, tokensIn: 0, tokensOut: chunks, finish: 'cancelled' }
        throw err
      }
    },

    async embed (model, texts, options) {
      const response = await post('/api/embed', { model, input: texts }, options.signal, model)
      const parsed = Embed.safeParse(parseJson(await boundedText(response, what), what))
      if (!parsed.success) throw new LlmUnavailableError(`${what} sent embeddings of an unknown shape: ${parsed.error.message}`)
      if (parsed.data.embeddings.length !== texts.length) {
        throw new LlmUnavailableError(`${what} sent ${parsed.data.embeddings.length} embeddings for ${texts.length} texts`)
      }
      return { vectors: parsed.data.embeddings, tokensIn: parsed.data.prompt_eval_count ?? 0 }
    },

    async close () {}
  }
}

function formatOf (format: NonNullable<ChatRequest['format']>): unknown {
  if (format.kind === 'json') return 'json'
  try {
    return JSON.parse(format.schema)
  } catch (err) {
    throw new RequestInvalidError(`the output schema is not JSON (${(err as Error).message}): give a JSON-schema`)
  }
}

function finishOf (reason: string | undefined): FinishReason {
  return reason === 'length' ? 'length' : 'stop'
}

function parseJsonOrNull (text: string): unknown {
  try { return JSON.parse(text) } catch { return null }
}
