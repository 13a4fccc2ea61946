// The contract every model backend keeps (the embedded engine, the Ollama client, and any later
// one, such as a peer's models over the hive): run `runModelBackendTests` against each. Output of
// a random-weight model is noise, so the suite compares a backend's runs with each other.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { ChatRequest, ModelBackend } from '../../protocol/llm/types.ts'

export interface ModelBackendSetup {
  backend: ModelBackend
  /** A model the backend holds. */
  model: string
  stop?: () => Promise<void>
}

const ask = (over: Partial<ChatRequest> = {}): ChatRequest => ({
  models: [], messages: [{ role: 'user', content: 'hello hive agent' }], maxTokens: 24, temperature: 0, seed: 1, ...over
})

export function runModelBackendTests (name: string, setup: () => Promise<ModelBackendSetup>): void {
  describe(`model backend contract: ${name}`, () => {
    let s: ModelBackendSetup
    before(async () => { s = await setup() })
    after(async () => { await s.stop?.() })

    it('lists the model, as its own source', async () => {
      const models = await s.backend.models()
      const model = models.find(m => m.name === s.model)
      assert.ok(model, `${s.model} listed`)
      assert.equal(model.source, s.backend.source)
      assert.ok(model.sizeBytes > 0)
    })

    it('streams tokens that add up to the answer, stops at maxTokens, and repeats at temperature 0', async () => {
      const chunks: string[] = []
      const first = await s.backend.chat(s.model, ask(), { onToken: t => chunks.push(t) })
      assert.ok(chunks.length > 1, `${chunks.length} chunks`)
      assert.equal(chunks.join(''), first.text)
      assert.equal(first.model, s.model)
      assert.equal(first.finish, 'length')
      assert.equal(first.tokensOut, 24)
      assert.ok(first.tokensIn > 0)
      const again = await s.backend.chat(s.model, ask(), {})
      assert.equal(again.text, first.text)
      assert.equal(again.tokensIn, first.tokensIn)
      const shorter = await s.backend.chat(s.model, ask({ maxTokens: 5 }), {})
      assert.equal(shorter.tokensOut, 5)
      assert.ok(first.text.startsWith(shorter.text))
    })

    it('cancels mid-generation: the partial answer comes back marked cancelled', async () => {
      const full = await s.backend.chat(s.model, ask({ maxTokens: 60 }), {})
      const controller = new AbortController()
      let n = 0
      const cut = await s.backend.chat(s.model, ask({ maxTokens: 60 }), { signal: controller.signal, onToken: () => { if (++n === 3) controller.abort() } })
      assert.equal(cut.finish, 'cancelled')
      assert.ok(cut.tokensOut < 60, `${cut.tokensOut} tokens`)
      assert.ok(full.text.startsWith(cut.text))
    })

    it('a call whose signal already fired generates nothing', async () => {
      const result = await s.backend.chat(s.model, ask(), { signal: AbortSignal.abort() })
      assert.equal(result.finish, 'cancelled')
      assert.equal(result.tokensOut, 0)
      assert.equal(result.text, '')
    })

    it('refuses a model it does not hold with ModelNotFound', async () => {
      await assert.rejects(s.backend.chat('no-such-model', ask(), {}), { name: 'ModelNotFound' })
      await assert.rejects(s.backend.embed('no-such-model', ['x'], {}), { name: 'ModelNotFound' })
    })

    it('embeds: one vector per text, the same text gives the same vector', async () => {
      const { vectors, tokensIn } = await s.backend.embed(s.model, ['hello hive', 'the agent', 'hello hive'], {})
      assert.equal(vectors.length, 3)
      assert.ok((vectors[0]?.length ?? 0) > 0)
      assert.deepEqual(vectors[0], vectors[2])
      assert.notDeepEqual(vectors[0], vectors[1])
      assert.ok(tokensIn > 0)
    })
  })
}
