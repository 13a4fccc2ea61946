// The embedded engine on real llama.cpp and a generated model: streaming, limits, stop
// sequences, cancellation, turns, JSON output, embeddings and errors. Random weights make noise,
// so the tests compare runs with each other, never with expected wording.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createEmbeddedBackend } from '../../../protocol/llm/engines/embedded.ts'
import { waitFor } from '../../helpers/wait.ts'
import { tinyModelsDir } from '../../helpers/gguf.ts'
import { runModelBackendTests } from '../../helpers/model-backend-contract.ts'
import type { EmbeddedBackend } from '../../../protocol/llm/engines/embedded.ts'
import type { ChatRequest } from '../../../protocol/llm/types.ts'
import type { TinyModelsDir } from '../../helpers/gguf.ts'

const ask = (over: Partial<ChatRequest> = {}): ChatRequest => ({
  models: [],
  messages: [{ role: 'user', content: 'hello hive agent' }],
  maxTokens: 24,
  temperature: 0,
  seed: 1,
  ...over
})

runModelBackendTests('embedded engine', async () => {
  const dir = await tinyModelsDir(['tiny'])
  const backend = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1 })
  return { backend, model: 'tiny', stop: async () => { await backend.close(); await dir.remove() } }
})

describe('embedded engine', () => {
  let dir: TinyModelsDir
  let engine: EmbeddedBackend
  before(async () => {
    dir = await tinyModelsDir(['tiny', 'other'])
    engine = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1 })
  })
  after(async () => {
    await engine.close()
    await dir.remove()
  })

  it('lists the GGUF files of the models folder without starting the engine', async () => {
    const models = await engine.models()
    assert.deepEqual(models.map(m => m.name), ['other', 'tiny'])
    assert.ok(models.every(m => m.source === 'embedded' && m.sizeBytes > 100_000))
    assert.equal(engine.status().engineLoaded, false)
  })

  it('streams tokens that add up to the answer, within maxTokens, and repeats at temperature 0', async () => {
    const chunks: string[] = []
    const first = await engine.chat('tiny', ask(), { onToken: t => chunks.push(t) })
    assert.equal(engine.status().engineLoaded, true)
    assert.equal(engine.status().model, 'tiny')
    assert.ok(chunks.length > 1, `${chunks.length} chunks`)
    assert.equal(chunks.join(''), first.text)
    assert.equal(first.model, 'tiny')
    assert.equal(first.finish, 'length')
    assert.equal(first.tokensOut, 24)
    assert.ok(first.tokensIn > 3)
    const again = await engine.chat('tiny', ask(), {})
    assert.equal(again.text, first.text)
    assert.equal(again.tokensIn, first.tokensIn)
    const longer = await engine.chat('tiny', ask({ messages: [{ role: 'system', content: 'be brief' }, ...ask().messages] }), {})
    assert.ok(longer.tokensIn > first.tokensIn, 'a system message adds prompt tokens')
  })

  it('stops at a stop sequence and leaves it out', async () => {
    const full = await engine.chat('tiny', ask({ maxTokens: 40 }), {})
    const stop = [...full.text].slice(8, 11).join('')
    const at = full.text.indexOf(stop)
    assert.ok(stop.length > 0 && at >= 0)
    const stopped = await engine.chat('tiny', ask({ maxTokens: 40, stop: [stop] }), {})
    assert.equal(stopped.finish, 'stop')
    assert.equal(stopped.text, full.text.slice(0, at))
    assert.ok(stopped.tokensOut < full.tokensOut)
  })

  it('takes concurrent calls in turns with the same answers, and a call cancelled while waiting drops out', async () => {
    const solo = await engine.chat('tiny', ask(), {})
    const waiting = new AbortController()
    const calls = [
      engine.chat('tiny', ask(), {}),
      engine.chat('tiny', ask(), { signal: waiting.signal }),
      engine.chat('tiny', ask(), {})
    ]
    waiting.abort()
    const [a, b, c] = await Promise.all(calls)
    assert.equal(a?.text, solo.text)
    assert.equal(c?.text, solo.text)
    assert.equal(b?.finish, 'cancelled')
    assert.equal(b?.tokensOut, 0)
  })

  it('switches models between calls', async () => {
    const other = await engine.chat('other', ask(), {})
    assert.equal(other.model, 'other')
    assert.equal(engine.status().model, 'other')
    const tiny = await engine.chat('tiny', ask(), {})
    assert.notEqual(other.text, tiny.text, 'different weights, different noise')
  })

  it('constrains the output to a JSON-schema', async () => {
    const schema = JSON.stringify({ type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'], additionalProperties: false })
    const result = await engine.chat('tiny', ask({ maxTokens: 40, format: { kind: 'schema', schema } }), {})
    assert.equal(result.finish, 'stop')
    const parsed = JSON.parse(result.text) as { ok: unknown }
    assert.equal(typeof parsed.ok, 'boolean')
    await assert.rejects(engine.chat('tiny', ask({ format: { kind: 'schema', schema: '{nope' } }), {}), { name: 'RequestInvalid' })
  })

  it('refuses a maxTokens that llama.cpp would read as no bound', async () => {
    await assert.rejects(engine.chat('tiny', ask({ maxTokens: 0 }), {}), { name: 'RequestInvalid' })
    await assert.rejects(engine.chat('tiny', ask({ maxTokens: 1.5 }), {}), { name: 'RequestInvalid' })
  })

  it('refuses a name that is not a file name in the models folder', async () => {
    await assert.rejects(engine.chat('../tiny', ask(), {}), { name: 'ModelNotFound' })
    await assert.rejects(engine.chat('/etc/passwd', ask(), {}), { name: 'ModelNotFound' })
  })

  it('unloads the model after a quiet spell and loads it again on the next call', async () => {
    const quick = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1, idleUnloadMs: 20 })
    try {
      const first = await quick.chat('tiny', ask({ maxTokens: 4 }), {})
      await waitFor(() => quick.status().model === undefined, { message: 'model unloaded when idle' })
      assert.equal(quick.status().engineLoaded, true)
      const second = await quick.chat('tiny', ask({ maxTokens: 4 }), {})
      assert.equal(second.text, first.text)
    } finally {
      await quick.close()
    }
  })

  it('close waits for the running call, and refuses calls after it', async () => {
    const closing = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1 })
    const running = closing.chat('tiny', ask({ maxTokens: 30 }), {})
    await waitFor(() => closing.status().engineLoaded)
    await closing.close()
    assert.equal((await running).tokensOut, 30)
    assert.equal(closing.status().model, undefined)
    await assert.rejects(closing.chat('tiny', ask(), {}), { name: 'LlmUnavailable' })
  })

  it('refuses a prompt larger than the context', async () => {
    const small = createEmbeddedBackend({ modelsDir: dir.modelsDir, threads: 1, contextTokens: 64 })
    try {
      await assert.rejects(small.chat('tiny', ask({ messages: [{ role: 'user', content: 'hive '.repeat(1000) }] }), {}), { name: 'LlmTooLarge' })
    } finally {
      await small.close()
    }
  })
})
