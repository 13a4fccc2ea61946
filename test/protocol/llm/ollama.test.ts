// The Ollama backend against a server that speaks Ollama's API on the real embedded engine. The
// official `ollama` client reads the same server, so both clients and the engine itself must
// agree token for token: that keeps the fake's wire format and our parser honest together.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { Ollama } from 'ollama'
import { createEmbeddedBackend } from '../../../protocol/llm/engines/embedded.ts'
import { STREAM_LINE_MAX_BYTES } from '../../../protocol/llm/engines/limits.ts'
import { createOllamaBackend } from '../../../protocol/llm/engines/ollama.ts'
import { startFakeOllama } from '../../helpers/fake-ollama.ts'
import { tinyModelsDir } from '../../helpers/gguf.ts'
import { runModelBackendTests } from '../../helpers/model-backend-contract.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { EmbeddedBackend } from '../../../protocol/llm/engines/embedded.ts'
import type { OllamaBackend } from '../../../protocol/llm/engines/ollama.ts'
import type { ChatRequest } from '../../../protocol/llm/types.ts'
import type { FakeOllama } from '../../helpers/fake-ollama.ts'
import type { TinyModelsDir } from '../../helpers/gguf.ts'

const messages = [{ role: 'user' as const, content: 'hello hive agent' }]
const ask = (over: Partial<ChatRequest> = {}): ChatRequest => ({ models: [], messages, maxTokens: 24, temperature: 0, seed: 1, ...over })
const officialOptions = { num_predict: 24, temperature: 0, seed: 1 }

runModelBackendTests('Ollama client on a server speaking Ollama\'s API', async () => {
  const dir = await tinyModelsDir(['tiny'])
  const engine = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1 })
  const server = await startFakeOllama(engine)
  return {
    backend: createOllamaBackend({ baseUrl: server.url }),
    model: 'tiny',
    stop: async () => { await server.stop(); await engine.close(); await dir.remove() }
  }
})

describe('Ollama backend', () => {
  let dir: TinyModelsDir
  let engine: EmbeddedBackend
  let fake: FakeOllama
  let ours: OllamaBackend
  let official: Ollama
  before(async () => {
    dir = await tinyModelsDir(['tiny', 'other'])
    engine = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1 })
    fake = await startFakeOllama(engine)
    ours = createOllamaBackend({ baseUrl: fake.url })
    official = new Ollama({ host: fake.url })
  })
  after(async () => {
    await fake.stop()
    await engine.close()
    await dir.remove()
  })

  it('lists the same models as the official client', async () => {
    const listed = await official.list()
    const mine = await ours.models()
    assert.deepEqual(mine.map(m => m.name), listed.models.map(m => m.name))
    assert.deepEqual(mine.map(m => m.sizeBytes), listed.models.map(m => m.size))
    assert.deepEqual(mine.map(m => m.name), ['other', 'tiny'])
    assert.ok(mine.every(m => m.source === 'ollama'))
  })

  it('streams the same tokens as the official client and as the engine itself', async () => {
    const direct = await engine.chat('tiny', ask(), {})
    const parts = []
    for await (const part of await official.chat({ model: 'tiny', messages, stream: true, options: officialOptions })) parts.push(part)
    const last = parts.at(-1)
    assert.equal(last?.done, true)
    assert.equal(last?.done_reason, 'length')
    assert.equal(last?.eval_count, 24)
    const officialText = parts.map(p => p.message.content).join('')

    const chunks: string[] = []
    const mine = await ours.chat('tiny', ask(), { onToken: t => chunks.push(t) })
    assert.equal(mine.text, direct.text)
    assert.equal(officialText, direct.text)
    assert.ok(chunks.length > 1)
    assert.equal(chunks.join(''), mine.text)
    assert.equal(mine.tokensOut, 24)
    assert.equal(mine.tokensIn, direct.tokensIn)
    assert.equal(mine.finish, 'length')
    assert.equal(mine.model, 'tiny')

    const whole = await official.chat({ model: 'tiny', messages, stream: false, options: officialOptions })
    assert.equal(whole.message.content, direct.text)
    assert.equal(whole.prompt_eval_count, direct.tokensIn)
  })

  it('sends the limits, stop sequences and format the way Ollama reads them', async () => {
    const full = await ours.chat('tiny', ask({ maxTokens: 40 }), {})
    const stop = [...full.text].slice(8, 11).join('')
    const stopped = await ours.chat('tiny', ask({ maxTokens: 40, stop: [stop] }), {})
    assert.equal(stopped.finish, 'stop')
    assert.equal(stopped.text, full.text.slice(0, full.text.indexOf(stop)))
    const sent = fake.requests.filter(r => r.path === '/api/chat').at(-1)?.body as { stream: boolean, options: { num_predict: number, stop: string[], seed: number, temperature: number } }
    assert.deepEqual(sent.options, { num_predict: 40, temperature: 0, seed: 1, stop: [stop] })
    assert.equal(sent.stream, true)
    const schema = { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false }
    const json = await ours.chat('tiny', ask({ maxTokens: 40, format: { kind: 'schema', schema: JSON.stringify(schema) } }), {})
    assert.deepEqual((fake.requests.at(-1)?.body as { format: unknown }).format, schema)
    assert.equal(typeof (JSON.parse(json.text) as { ok: unknown }).ok, 'boolean')
  })

  it('embeds like the official client', async () => {
    const theirs = await official.embed({ model: 'tiny', input: ['hello hive', 'the agent'] })
    const mine = await ours.embed('tiny', ['hello hive', 'the agent'], {})
    assert.equal(mine.vectors.length, 2)
    assert.deepEqual(mine.vectors, theirs.embeddings)
    assert.ok(mine.tokensIn > 0)
  })

  it('maps a 404 to ModelNotFound, where the official client sees status 404', async () => {
    await assert.rejects(official.chat({ model: 'missing', messages }), (err: { status_code?: number }) => err.status_code === 404)
    await assert.rejects(ours.chat('missing', ask(), {}), { name: 'ModelNotFound' })
    await assert.rejects(ours.embed('missing', ['x'], {}), { name: 'ModelNotFound' })
  })

  it('fails on an error line in the middle of a 200 stream instead of waiting for done', async () => {
    fake.options.failAfterChunks = 2
    try {
      await assert.rejects(async () => {
        for await (const part of await official.chat({ model: 'tiny', messages, stream: true, options: officialOptions })) assert.ok(part)
      }, /unexpected EOF/)
      const chunks: string[] = []
      await assert.rejects(ours.chat('tiny', ask(), { onToken: t => chunks.push(t) }), { name: 'LlmUnavailable', message: /unexpected EOF/ })
      assert.equal(chunks.length, 2)
    } finally {
      delete fake.options.failAfterChunks
    }
  })

  it('cancels: the partial answer comes back and the server stops generating', async () => {
    const full = await ours.chat('tiny', ask({ maxTokens: 60 }), {})
    const before = fake.cancelled
    const controller = new AbortController()
    let n = 0
    const cut = await ours.chat('tiny', ask({ maxTokens: 60 }), { signal: controller.signal, onToken: () => { if (++n === 3) controller.abort() } })
    assert.equal(cut.finish, 'cancelled')
    assert.ok(full.text.startsWith(cut.text))
    assert.ok(cut.tokensOut < 60)
    await waitFor(() => fake.cancelled === before + 1, { message: 'the server saw the hang-up' })
  })

  it('reports a server that does not answer as LlmUnavailable', async () => {
    const closed = createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    const { port } = closed.address() as AddressInfo
    await new Promise<void>(resolve => closed.close(() => { resolve() }))
    const gone = createOllamaBackend({ baseUrl: `http://127.0.0.1:${port}` })
    await assert.rejects(gone.models(), { name: 'LlmUnavailable' })
    await assert.rejects(gone.chat('tiny', ask(), {}), { name: 'LlmUnavailable' })
    await assert.rejects(gone.embed('tiny', ['x'], {}), { name: 'LlmUnavailable' })
  })

  it('refuses a server that sends an endless line, garbage, or ends a stream early', async () => {
    const cases: Record<string, (res: ServerResponse) => void> = {
      '/long': res => { res.write('{"message":{"content":"'); res.end('x'.repeat(STREAM_LINE_MAX_BYTES + 10)) },
      '/garbage': res => { res.end('not json at all\n') },
      '/early': res => { res.end(JSON.stringify({ message: { content: 'hi' }, done: false }) + '\n') },
      '/shape': res => { res.end(JSON.stringify({ done: 'maybe' }) + '\n') }
    }
    for (const [name, reply] of Object.entries(cases)) {
      const server: Server = createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'application/x-ndjson' }); reply(res) })
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      const { port } = server.address() as AddressInfo
      try {
        await assert.rejects(createOllamaBackend({ baseUrl: `http://127.0.0.1:${port}` }).chat('tiny', ask(), {}), { name: 'LlmUnavailable' }, name)
      } finally {
        server.closeAllConnections()
        await new Promise<void>(resolve => server.close(() => { resolve() }))
      }
    }
  })
})
