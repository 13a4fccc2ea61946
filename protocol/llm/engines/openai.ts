// A cloud provider with an OpenAI-compatible chat-completions API: `POST {base}/chat/completions`
// streamed as server-sent events (`data: {chunk}` … `data: [DONE]`), with
// `stream_options.include_usage` so the last event carries the provider's own token counts, which
// budgets settle to. `POST {base}/embeddings` embeds. The API key goes in the Authorization
// header of each request and nowhere else. Every answer is read within bounds and validated, and
// the provider's refusals are mapped to the hive's error codes with the provider's own message.

import { z } from 'zod'
import { LlmTooLargeError, LlmUnavailableError, ModelNotFoundError } from '../errors.ts'
import { RequestInvalidError } from './errors.ts'
import { boundedLines, boundedText, fetchOrUnavailable, isAbortOf, parseJson } from './http.ts'
import type { ChatRequest, ChatResult, FinishReason } from '../types.ts'

export interface CloudClientInit {
  /** The provider's name as routes and budgets show it, e.g. `openai`. */
  provider: string
  /** The API's base URL, up to and including the version, e.g. `https://api.openai.com/v1`. */
  baseUrl: string
  apiKey: string
  /** The request field that bounds the answer: `max_tokens` (most compatible servers) or `max_completion_tokens`. */
  maxTokensField?: 'max_tokens' | 'max_completion_tokens'
}

export interface CloudClient {
  readonly provider: string
  chat: (model: string, request: ChatRequest, options: { signal?: AbortSignal, onToken?: (text: string) => void }) =>
    Promise<Omit<ChatResult, 'route' | 'costMicroUsd'> & { usageReported: boolean }>
  embed: (model: string, texts: string[], options: { signal?: AbortSignal }) => Promise<{ vectors: number[][], tokensIn: number }>
}

const Usage = z.object({ prompt_tokens: z.number().int().nonnegative(), completion_tokens: z.number().int().nonnegative().optional() }).loose()

const StreamError = z.object({ error: z.object({ message: z.string().optional() }).loose() }).loose()

const Chunk = z.object({
  model: z.string().optional(),
  choices: z.array(z.object({
    delta: z.object({ content: z.string().nullish() }).loose().optional(),
    finish_reason: z.string().nullish()
  }).loose()).max(16),
  usage: Usage.nullish()
}).loose()

const Embeddings = z.object({
  data: z.array(z.object({ embedding: z.array(z.number()), index: z.number().int().nonnegative() }).loose()),
  usage: Usage.optional()
}).loose()

const ErrorBody = z.object({ error: z.object({ message: z.string().optional(), code: z.string().nullish(), type: z.string().nullish() }).loose() }).loose()

/** A rough count for a provider that reports no usage: about four characters a token. */
export function estimateTokens (text: string): number {
  return Math.ceil(text.length / 4)
}

export function createCloudClient (init: CloudClientInit): CloudClient {
  const baseUrl = init.baseUrl.replace(/\/+$/, '')
  const what = `the ${init.provider} API at ${baseUrl}`
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${init.apiKey}` }

  async function post (path: string, body: unknown, signal: AbortSignal | undefined, model: string): Promise<Response> {
    const response = await fetchOrUnavailable(`${baseUrl}${path}`, {
      method: 'POST', headers, body: JSON.stringify(body), ...(signal != null ? { signal } : {})
    }, what, 'check the network and the provider\'s base URL')
    if (response.ok) return response
    const text = await boundedText(response, what).catch(() => '')
    const parsed = ErrorBody.safeParse(parseJsonOrNull(text))
    const message = parsed.success ? parsed.data.error.message ?? parsed.data.error.code ?? '' : text.slice(0, 200)
    const code = parsed.success ? parsed.data.error.code ?? '' : ''
    const status = response.status
    if (status === 401 || status === 403) {
      throw new LlmUnavailableError(`${what} refused the API key (${status}: ${message}): set a valid key with \`hive-node cloud set ${init.provider} --key-file FILE\``)
    }
    if (status === 429) {
      const retry = response.headers.get('retry-after')
      throw new LlmUnavailableError(`${what} is rate-limiting this key (429: ${message})${retry != null ? `; retry after ${retry} s` : ''}`)
    }
    if (status === 404) throw new ModelNotFoundError(`${what} has no model "${model}" (${message}): check the model's name with the provider`)
    if (code === 'context_length_exceeded') throw new LlmTooLargeError(`${what} says the request is too large for model "${model}" (${message}): shorten it`)
    if (status >= 400 && status < 500) throw new RequestInvalidError(`${what} refused the request (${status}: ${message})`)
    throw new LlmUnavailableError(`${what} failed (${status}: ${message}): try again later`)
  }

  return {
    provider: init.provider,

    async chat (model, request, options) {
      const { signal, onToken } = options
      const body = {
        model,
        messages: request.messages.map(m => ({ role: m.role, content: m.content })),
        [init.maxTokensField ?? 'max_tokens']: request.maxTokens,
        ...(request.temperature != null ? { temperature: request.temperature } : {}),
        ...(request.seed != null ? { seed: request.seed } : {}),
        ...(request.stop != null && request.stop.length > 0 ? { stop: request.stop } : {}),
        ...(request.format != null ? { response_format: responseFormat(request.format) } : {}),
        stream: true,
        stream_options: { include_usage: true }
      }
      let text = ''
      let chunks = 0
      let finish: FinishReason | undefined
      let usage: z.infer<typeof Usage> | undefined
      let answeredBy = model
      const promptChars = request.messages.reduce((n, m) => n + m.content.length, 0)
      const result = (ended: FinishReason): Awaited<ReturnType<CloudClient['chat']>> => ({
        text,
        model: answeredBy,
        tokensIn: usage?.prompt_tokens ?? Math.ceil(promptChars / 4),
        tokensOut: usage?.completion_tokens ?? Math.max(chunks, estimateTokens(text)),
        finish: ended,
        usageReported: usage != null
      })
      try {
        const response = await post('/chat/completions', body, signal, model)
        let data: string[] = []
        for await (const line of boundedLines(response.body, what)) {
          if (line.startsWith('data:')) { data.push(line.slice(line.startsWith('data: ') ? 6 : 5)); continue }
          if (line !== '' || data.length === 0) continue // comments, other fields, keep-alives
          const event = data.join('\n')
          data = []
          if (event === '[DONE]') return result(finish ?? 'stop')
          const json = parseJson(event, what)
          const failure = StreamError.safeParse(json)
          if (failure.success) throw new LlmUnavailableError(`${what} failed while answering: ${failure.data.error.message ?? 'no message'}`)
          const parsed = Chunk.safeParse(json)
          if (!parsed.success) throw new LlmUnavailableError(`${what} sent a chunk of an unknown shape: ${parsed.error.message}`)
          const chunk = parsed.data
          if (chunk.model != null && chunk.model !== '') answeredBy = chunk.model
          if (chunk.usage != null) usage = chunk.usage
          const choice = chunk.choices[0]
          const content = choice?.delta?.content ?? ''
          if (content !== '') {
            text += content
            chunks++
            onToken?.(content)
          }
          if (choice?.finish_reason != null) finish = choice.finish_reason === 'length' ? 'length' : 'stop'
        }
        throw new LlmUnavailableError(`${what} ended its answer without [DONE]`)
      } catch (err) {
        if (isAbortOf(err, signal)) return result('cancelled')
        throw err
      }
    },

    async embed (model, texts, options) {
      const response = await post('/embeddings', { model, input: texts }, options.signal, model)
      const parsed = Embeddings.safeParse(parseJson(await boundedText(response, what), what))
      if (!parsed.success) throw new LlmUnavailableError(`${what} sent embeddings of an unknown shape: ${parsed.error.message}`)
      const byIndex = new Map(parsed.data.data.map(item => [item.index, item.embedding]))
      const vectors = texts.map((_, i) => byIndex.get(i))
      if (parsed.data.data.length !== texts.length || vectors.includes(undefined)) {
        throw new LlmUnavailableError(`${what} sent ${parsed.data.data.length} embeddings for ${texts.length} texts`)
      }
      return { vectors: vectors as number[][], tokensIn: parsed.data.usage?.prompt_tokens ?? estimateTokens(texts.join(' ')) }
    }
  }
}

function responseFormat (format: NonNullable<ChatRequest['format']>): unknown {
  if (format.kind === 'json') return { type: 'json_object' }
  let schema: unknown
  try {
    schema = JSON.parse(format.schema)
  } catch (err) {
    throw new RequestInvalidError(`the output schema is not JSON (${(err as Error).message}): give a JSON-schema`)
  }
  return { type: 'json_schema', json_schema: { name: 'output', schema, strict: true } }
}

function parseJsonOrNull (text: string): unknown {
  try { return JSON.parse(text) } catch { return null }
}
