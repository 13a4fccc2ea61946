// The cloud client against a loopback server speaking the OpenAI chat-completions API: what is
// sent (the key, the limits, usage requested), tokens streamed, usage settled to the provider's
// own counts, refusals mapped to the hive's errors, cancellation and bounds.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { STREAM_LINE_MAX_BYTES } from '../../../protocol/llm/engines/limits.ts'
import { createCloudClient } from '../../../protocol/llm/engines/openai.ts'
import { startFakeOpenAi } from '../../helpers/fake-openai.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { AddressInfo } from 'node:net'
import type { CloudClient } from '../../../protocol/llm/engines/openai.ts'
import type { ChatRequest } from '../../../protocol/llm/types.ts'
import type { FakeOpenAi } from '../../helpers/fake-openai.ts'

const KEY = 'sk-test-0123456789'
const ask = (over: Partial<ChatRequest> = {}): ChatRequest => ({
  models: ['gpt-test'], messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello hive agent' }], maxTokens: 50, temperature: 0.2, seed: 7, ...over
})

describe('cloud client (OpenAI-compatible)', () => {
  let fake: FakeOpenAi
  let client: CloudClient
  before(async () => {
    fake = await startFakeOpenAi({ apiKey: KEY })
    client = createCloudClient({ provider: 'openai', baseUrl: fake.url, apiKey: KEY })
  })
  after(async () => { await fake.stop() })

  it('streams the answer and takes its token counts from the provider\'s usage event', async () => {
    const chunks: string[] = []
    const result = await client.chat('gpt-test', ask(), { onToken: t => chunks.push(t) })
    assert.ok(chunks.length > 5)
    assert.equal(chunks.join(''), result.text)
    assert.equal(result.finish, 'stop')
    assert.equal(result.model, 'gpt-test')
    assert.equal(result.usageReported, true)
    const billed = fake.usage.at(-1)
    assert.equal(result.tokensIn, billed?.prompt_tokens)
    assert.equal(result.tokensOut, billed?.completion_tokens)
    const sent = fake.requests.at(-1)
    assert.equal(sent?.path, '/v1/chat/completions')
    assert.equal(sent?.authorization, `Bearer ${KEY}`)
    assert.deepEqual(sent?.body, {
      model: 'gpt-test',
      messages: ask().messages,
      max_tokens: 50,
      temperature: 0.2,
      seed: 7,
      stream: true,
      stream_options: { include_usage: true }
    })
  })

  it('stops at maxTokens and at a stop sequence, and asks for JSON output', async () => {
    const short = await client.chat('gpt-test', ask({ maxTokens: 3 }), {})
    assert.equal(short.finish, 'length')
    assert.equal(short.tokensOut, 3)
    const stopped = await client.chat('gpt-test', ask({ stop: [' cloud'] }), {})
    assert.equal(stopped.finish, 'stop')
    assert.ok(!stopped.text.includes('cloud'))
    const schema = { type: 'object', properties: { a: { type: 'string' } } }
    await client.chat('gpt-test', ask({ format: { kind: 'schema', schema: JSON.stringify(schema) } }), {})
    assert.deepEqual(fake.requests.at(-1)?.body?.response_format, { type: 'json_schema', json_schema: { name: 'output', schema, strict: true } })
    await client.chat('gpt-test', ask({ format: { kind: 'json' } }), {})
    assert.deepEqual(fake.requests.at(-1)?.body?.response_format, { type: 'json_object' })
    const other = createCloudClient({ provider: 'openai', baseUrl: fake.url, apiKey: KEY, maxTokensField: 'max_completion_tokens' })
    assert.equal((await other.chat('gpt-test', ask({ maxTokens: 2 }), {})).tokensOut, 2)
    assert.equal(fake.requests.at(-1)?.body?.max_completion_tokens, 2)
  })

  it('estimates tokens when the provider reports no usage, and says so', async () => {
    fake.options.reportUsage = false
    try {
      const result = await client.chat('gpt-test', ask(), {})
      assert.equal(result.usageReported, false)
      assert.ok(result.tokensIn > 0 && result.tokensOut > 0)
    } finally {
      delete fake.options.reportUsage
    }
  })

  it('maps a refused key, rate limits, server failures and unknown models to the hive\'s errors', async () => {
    const wrong = createCloudClient({ provider: 'openai', baseUrl: fake.url, apiKey: 'sk-wrong' })
    await assert.rejects(wrong.chat('gpt-test', ask(), {}), { name: 'LlmUnavailable', message: /refused the API key \(401/ })
    assert.equal(fake.requests.at(-1)?.authorization, 'Bearer sk-wrong')
    await assert.rejects(client.chat('gpt-nope', ask(), {}), { name: 'ModelNotFound', message: /gpt-nope/ })
    const cases: Array<[FakeOpenAi['options']['fail'], RegExp, string]> = [
      [{ status: 429, message: 'Rate limit reached', retryAfterSeconds: 20 }, /429: Rate limit reached\); retry after 20 s/, 'LlmUnavailable'],
      [{ status: 403, message: 'Country not supported' }, /refused the API key \(403/, 'LlmUnavailable'],
      [{ status: 500, message: 'boom' }, /500: boom/, 'LlmUnavailable'],
      [{ status: 503, message: 'overloaded' }, /503: overloaded/, 'LlmUnavailable'],
      [{ status: 400, message: 'too long', code: 'context_length_exceeded' }, /too long/, 'LlmTooLarge'],
      [{ status: 400, message: 'bad temperature' }, /bad temperature/, 'RequestInvalid']
    ]
    for (const [fail, message, name] of cases) {
      fake.options.fail = fail
      try {
        await assert.rejects(client.chat('gpt-test', ask(), {}), { name, message }, `status ${fail?.status}`)
      } finally {
        delete fake.options.fail
      }
    }
  })

  it('fails on an error event in the middle of the stream', async () => {
    fake.options.failAfterChunks = 2
    try {
      const chunks: string[] = []
      await assert.rejects(client.chat('gpt-test', ask(), { onToken: t => chunks.push(t) }), { name: 'LlmUnavailable', message: /while answering/ })
      assert.equal(chunks.length, 2)
    } finally {
      delete fake.options.failAfterChunks
    }
  })

  it('cancels: the partial answer comes back and the connection is closed', async () => {
    const before = fake.cancelled
    const controller = new AbortController()
    let n = 0
    const result = await client.chat('gpt-test', ask(), { signal: controller.signal, onToken: () => { if (++n === 2) controller.abort() } })
    assert.equal(result.finish, 'cancelled')
    assert.ok(result.tokensOut >= 2 && result.tokensOut < 17)
    await waitFor(() => fake.cancelled === before + 1, { message: 'the provider saw the hang-up' })
  })

  it('embeds, in the order of the texts', async () => {
    const { vectors, tokensIn } = await client.embed('gpt-test', ['hello hive', 'agent'], {})
    assert.equal(vectors.length, 2)
    assert.notDeepEqual(vectors[0], vectors[1])
    assert.equal(tokensIn, 3)
  })

  it('refuses a provider that does not answer, sends an endless line, or ends without [DONE]', async () => {
    const closed = createServer()
    await new Promise<void>(resolve => closed.listen(0, '127.0.0.1', resolve))
    const { port: gonePort } = closed.address() as AddressInfo
    await new Promise<void>(resolve => closed.close(() => { resolve() }))
    await assert.rejects(createCloudClient({ provider: 'x', baseUrl: `http://127.0.0.1:${gonePort}/v1`, apiKey: KEY }).chat('m', ask(), {}), { name: 'LlmUnavailable' })
    const replies = [
      'data: {"choices":[{"delta":{"content":"' + 'x'.repeat(STREAM_LINE_MAX_BYTES + 10),
      'data: {"choices":[{"delta":{"content":"hi"}}]}\n\n',
      'data: not json\n\n'
    ]
    for (const reply of replies) {
      const server = createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'text/event-stream' }); res.end(reply) })
      await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
      const { port } = server.address() as AddressInfo
      try {
        await assert.rejects(createCloudClient({ provider: 'x', baseUrl: `http://127.0.0.1:${port}/v1`, apiKey: KEY }).chat('m', ask(), {}), { name: 'LlmUnavailable' }, reply.slice(0, 40))
      } finally {
        server.closeAllConnections()
        await new Promise<void>(resolve => server.close(() => { resolve() }))
      }
    }
  })
})
