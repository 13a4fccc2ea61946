// A small server on loopback that speaks Ollama's documented HTTP API, backed by a real model
// backend (the embedded engine on a generated GGUF): `/api/version`, `/api/tags`, `/api/chat`
// (NDJSON stream by default, one object with `stream: false`), `/api/embed`, a 404 for a model
// it lacks, and, on request, an `{"error": …}` line in the middle of a 200 stream as Ollama sends
// when a model fails mid-answer. The official `ollama` client drives it in the conformance test,
// which is what keeps its wire format honest. A client that hangs up cancels the generation.

import { createHash } from 'node:crypto'
import { createServer } from 'node:http'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { ChatRequest, LlmMessage, ModelBackend } from '../../protocol/llm/types.ts'

export interface FakeOllamaOptions {
  /** Send `{"error": …}` after this many streamed chunks (status stays 200). */
  failAfterChunks?: number
}

export interface FakeOllama {
  url: string
  /** Every request's method, path and parsed JSON body, in arrival order. */
  requests: Array<{ method: string, path: string, body: unknown }>
  /** Chat generations cancelled because the client hung up. */
  cancelled: number
  options: FakeOllamaOptions
  stop: () => Promise<void>
}

const BODY_MAX = 1024 * 1024

interface ChatBody {
  model?: string
  messages?: LlmMessage[]
  stream?: boolean
  format?: unknown
  options?: { num_predict?: number, temperature?: number, seed?: number, stop?: string[] }
}

export async function startFakeOllama (backend: ModelBackend, options: FakeOllamaOptions = {}): Promise<FakeOllama> {
  const requests: FakeOllama['requests'] = []
  const state = { cancelled: 0 }
  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(err => {
      if (!res.headersSent) send(res, 500, { error: (err as Error).message })
      else res.end(JSON.stringify({ error: (err as Error).message }) + '\n')
    })
  })

  async function handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    const body = req.method === 'POST' ? await readJson(req) : undefined
    requests.push({ method: req.method ?? '', path, body })
    if (req.method === 'GET' && path === '/api/version') return send(res, 200, { version: '0.12.0' })
    if (req.method === 'GET' && path === '/api/tags') return send(res, 200, { models: await tags(backend) })
    if (req.method === 'POST' && path === '/api/chat') return await chat(req, res, body as ChatBody)
    if (req.method === 'POST' && path === '/api/embed') return await embed(res, body as { model?: string, input?: string | string[] })
    send(res, 404, { error: `${req.method} ${path} not found` })
  }

  async function chat (req: IncomingMessage, res: ServerResponse, body: ChatBody): Promise<void> {
    const model = body.model ?? ''
    if (!(await backend.models()).some(m => m.name === model)) return send(res, 404, { error: `model "${model}" not found, try pulling it first` })
    const o = body.options ?? {}
    const request: ChatRequest = {
      models: [model],
      messages: body.messages ?? [],
      maxTokens: o.num_predict ?? 128,
      ...(o.temperature != null ? { temperature: o.temperature } : {}),
      ...(o.seed != null ? { seed: o.seed } : {}),
      ...(o.stop != null ? { stop: o.stop } : {}),
      ...(body.format === 'json' ? { format: { kind: 'json' as const } } : body.format != null ? { format: { kind: 'schema' as const, schema: JSON.stringify(body.format) } } : {})
    }
    const controller = new AbortController()
    const onClose = (): void => { if (!res.writableEnded) { state.cancelled++; controller.abort() } }
    res.on('close', onClose)
    const started = process.hrtime.bigint()
    const line = (o: object): void => { res.write(JSON.stringify({ model, created_at: new Date().toISOString(), ...o }) + '\n') }
    const stream = body.stream ?? true
    let chunks = 0
    let failed = false
    if (stream) res.writeHead(200, { 'content-type': 'application/x-ndjson' })
    const result = await backend.chat(model, request, {
      signal: controller.signal,
      onToken: stream
        ? text => {
          if (failed) return
          if (options.failAfterChunks != null && chunks >= options.failAfterChunks) {
            failed = true
            res.end(JSON.stringify({ error: 'an error was encountered while running the model: unexpected EOF' }) + '\n')
            controller.abort()
            return
          }
          chunks++
          line({ message: { role: 'assistant', content: text }, done: false })
        }
        : undefined
    })
    res.off('close', onClose)
    if (failed || result.finish === 'cancelled') { res.end(); return }
    const elapsed = Number(process.hrtime.bigint() - started)
    const final = {
      done: true,
      done_reason: result.finish === 'length' ? 'length' : 'stop',
      total_duration: elapsed,
      load_duration: 0,
      prompt_eval_count: result.tokensIn,
      prompt_eval_duration: 0,
      eval_count: result.tokensOut,
      eval_duration: elapsed
    }
    if (stream) {
      line({ message: { role: 'assistant', content: '' }, ...final })
      res.end()
    } else {
      send(res, 200, { model, created_at: new Date().toISOString(), message: { role: 'assistant', content: result.text }, ...final })
    }
  }

  async function embed (res: ServerResponse, body: { model?: string, input?: string | string[] }): Promise<void> {
    const model = body.model ?? ''
    if (!(await backend.models()).some(m => m.name === model)) return send(res, 404, { error: `model "${model}" not found, try pulling it first` })
    const input = typeof body.input === 'string' ? [body.input] : body.input ?? []
    const started = process.hrtime.bigint()
    const { vectors, tokensIn } = await backend.embed(model, input, {})
    send(res, 200, { model, embeddings: vectors, total_duration: Number(process.hrtime.bigint() - started), load_duration: 0, prompt_eval_count: tokensIn })
  }

  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get cancelled () { return state.cancelled },
    options,
    stop: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
}

async function tags (backend: ModelBackend): Promise<object[]> {
  return (await backend.models()).map(m => ({
    name: m.name,
    model: m.name,
    modified_at: new Date(0).toISOString(),
    size: m.sizeBytes,
    digest: createHash('sha256').update(m.name).digest('hex'),
    details: { parent_model: '', format: 'gguf', family: 'llama', families: ['llama'], parameter_size: '0.1M', quantization_level: 'F32' }
  }))
}

function send (res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' })
  res.end(JSON.stringify(body))
}

async function readJson (req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength
    if (size > BODY_MAX) throw new Error('request body too large')
    parts.push(chunk)
  }
  return JSON.parse(Buffer.concat(parts).toString('utf8'))
}
