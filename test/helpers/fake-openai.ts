// A loopback stand-in for a cloud provider with an OpenAI-compatible API — the one model source
// that cannot exist here. It speaks the real protocol: `POST /v1/chat/completions` (server-sent
// events with `data: [DONE]`, the usage event when `stream_options.include_usage` is set, or one
// JSON completion), `POST /v1/embeddings`, `GET /v1/models`, the provider's error bodies and
// statuses (401 for a wrong key, 404 for an unknown model, 429 with Retry-After, 5xx). It
// records every request, the key it carried and the usage it reported, so tests can assert what
// was sent, what was billed, and that nothing was sent when the hive refused a call.
// Its answers are a fixed list of words, cut at max_tokens or a stop sequence.

import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FakeOpenAiOptions {
  apiKey: string
  models?: string[]
  /** The words of every answer, one token each. */
  reply?: string[]
  /** Honour `stream_options.include_usage` (a provider that never reports usage: false). */
  reportUsage?: boolean
  /** Answer every request with this error. */
  fail?: { status: number, message?: string, code?: string, retryAfterSeconds?: number }
  /** Send an error event after this many content chunks. */
  failAfterChunks?: number
}

export interface RecordedRequest {
  path: string
  authorization: string | undefined
  body: Record<string, unknown> | undefined
}

export interface FakeOpenAi {
  /** The API's base URL, `http://127.0.0.1:PORT/v1`. */
  url: string
  requests: RecordedRequest[]
  /** The usage reported for each completed chat, in order. */
  usage: Array<{ prompt_tokens: number, completion_tokens: number }>
  /** Streams the client hung up on before the end. */
  cancelled: number
  options: FakeOpenAiOptions
  stop: () => Promise<void>
}

const BODY_MAX = 1024 * 1024
const DEFAULT_REPLY = 'the hive asked the cloud and the cloud answered with these few plain words for a test'.split(' ')

interface ChatBody {
  model?: string
  messages?: Array<{ role: string, content: string }>
  max_tokens?: number
  max_completion_tokens?: number
  stop?: string | string[]
  stream?: boolean
  stream_options?: { include_usage?: boolean }
}

export async function startFakeOpenAi (options: FakeOpenAiOptions): Promise<FakeOpenAi> {
  const requests: RecordedRequest[] = []
  const usage: FakeOpenAi['usage'] = []
  const state = { cancelled: 0 }
  const models = (): string[] => options.models ?? ['gpt-test']

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(err => {
      if (!res.headersSent) fail(res, 500, (err as Error).message, 'server_error')
      else res.end()
    })
  })

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const body = req.method === 'POST' ? await readJson(req) : undefined
    requests.push({ path, authorization: req.headers.authorization, body })
    if (req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return fail(res, 401, 'Incorrect API key provided.', 'invalid_api_key')
    }
    if (options.fail != null) {
      const f = options.fail
      if (f.retryAfterSeconds != null) res.setHeader('retry-after', String(f.retryAfterSeconds))
      return fail(res, f.status, f.message ?? `failure ${f.status}`, f.code ?? null)
    }
    if (req.method === 'GET' && path === '/v1/models') {
      return json(res, 200, { object: 'list', data: models().map(id => ({ id, object: 'model', created: 0, owned_by: 'test' })) })
    }
    const model = typeof body?.model === 'string' ? body.model : ''
    if ((path === '/v1/chat/completions' || path === '/v1/embeddings') && !models().includes(model)) {
      return fail(res, 404, `The model \`${model}\` does not exist or you do not have access to it.`, 'model_not_found')
    }
    if (req.method === 'POST' && path === '/v1/chat/completions') return await chat(req, res, body as ChatBody)
    if (req.method === 'POST' && path === '/v1/embeddings') return embeddings(res, body as { model: string, input: string | string[] })
    fail(res, 404, `Unknown request URL: ${req.method} ${path}.`, 'unknown_url')
  }

  async function chat (req: IncomingMessage, res: ServerResponse, body: ChatBody): Promise<void> {
    const model = body.model ?? ''
    const limit = body.max_completion_tokens ?? body.max_tokens ?? 1 << 30
    const stops = typeof body.stop === 'string' ? [body.stop] : body.stop ?? []
    const promptTokens = (body.messages ?? []).reduce((n, m) => n + 4 + m.content.split(/\s+/).filter(Boolean).length, 0)
    const words = options.reply ?? DEFAULT_REPLY
    const tokens: string[] = []
    let finish: 'stop' | 'length' = 'stop'
    let text = ''
    for (const [i, word] of words.entries()) {
      if (tokens.length >= limit) { finish = 'length'; break }
      const token = i === 0 ? word : ` ${word}`
      const next = text + token
      const at = stops.map(s => next.indexOf(s)).filter(i => i >= 0).sort((a, b) => a - b)[0]
      if (at != null) { if (at > text.length) tokens.push(next.slice(text.length, at)); break }
      tokens.push(token)
      text = next
    }
    const reported = { prompt_tokens: promptTokens, completion_tokens: tokens.length, total_tokens: promptTokens + tokens.length }
    const id = `chatcmpl-${requests.length}`
    const created = Math.floor(Date.now() / 1000)
    if (body.stream !== true) {
      usage.push(reported)
      return json(res, 200, {
        id, object: 'chat.completion', created, model,
        choices: [{ index: 0, message: { role: 'assistant', content: tokens.join('') }, finish_reason: finish }],
        usage: reported
      })
    }
    let open = true
    res.on('close', () => { if (!res.writableEnded) { open = false; state.cancelled++ } })
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    const event = async (data: unknown): Promise<void> => {
      res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`)
      // One event per turn of the event loop, as a provider's tokens arrive one by one.
      await new Promise(resolve => setImmediate(resolve))
    }
    const chunk = (delta: object, finishReason: string | null): object =>
      ({ id, object: 'chat.completion.chunk', created, model, choices: [{ index: 0, delta, finish_reason: finishReason }], usage: null })
    await event(chunk({ role: 'assistant', content: '' }, null))
    for (const [i, token] of tokens.entries()) {
      if (!open) return
      if (options.failAfterChunks != null && i >= options.failAfterChunks) {
        await event({ error: { message: 'The server had an error while processing your request.', type: 'server_error', code: null } })
        res.end()
        return
      }
      await event(chunk({ content: token }, null))
    }
    if (!open) return
    await event(chunk({}, finish))
    if (body.stream_options?.include_usage === true && options.reportUsage !== false) {
      await event({ id, object: 'chat.completion.chunk', created, model, choices: [], usage: reported })
    }
    usage.push(reported)
    await event('[DONE]')
    res.end()
  }

  function embeddings (res: ServerResponse, body: { model: string, input: string | string[] }): void {
    const input = typeof body.input === 'string' ? [body.input] : body.input
    const data = input.map((text, index) => ({ object: 'embedding', index, embedding: vectorOf(text) }))
    const tokens = input.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0)
    json(res, 200, { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } })
  }

  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    usage,
    get cancelled () { return state.cancelled },
    options,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

/** A deterministic 8-dimensional vector of a text (its character codes folded). */
function vectorOf (text: string): number[] {
  const v = new Array<number>(8).fill(0)
  for (let i = 0; i < text.length; i++) v[i % 8] = (v[i % 8] ?? 0) + text.charCodeAt(i) / 1000
  return v
}

function json (res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

function fail (res: ServerResponse, status: number, message: string, code: string | null): void {
  const type = status === 401 ? 'invalid_request_error' : status === 429 ? 'rate_limit_exceeded' : status >= 500 ? 'server_error' : 'invalid_request_error'
  json(res, status, { error: { message, type, param: null, code } })
}

async function readJson (req: IncomingMessage): Promise<Record<string, unknown>> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > BODY_MAX) throw new Error('request body too large')
    parts.push(chunk)
  }
  return JSON.parse(Buffer.concat(parts).toString('utf8')) as Record<string, unknown>
}
