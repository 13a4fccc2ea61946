// Against a real Ollama on this device, when one answers at 127.0.0.1:11434 and holds a model;
// skipped, with the reason, otherwise.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Ollama } from 'ollama'
import { createOllamaBackend, OLLAMA_DEFAULT_URL } from '../../../protocol/llm/engines/ollama.ts'

async function probe (): Promise<{ model: string } | { skip: string }> {
  try {
    const response = await fetch(`${OLLAMA_DEFAULT_URL}/api/tags`, { signal: AbortSignal.timeout(2_000) })
    if (!response.ok) return { skip: `Ollama at ${OLLAMA_DEFAULT_URL} answered ${response.status}` }
    const { models } = await response.json() as { models?: Array<{ name: string }> }
    const model = models?.[0]?.name
    return model != null ? { model } : { skip: `Ollama at ${OLLAMA_DEFAULT_URL} holds no model (ollama pull one)` }
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message
    return { skip: `no Ollama answers at ${OLLAMA_DEFAULT_URL} (${cause})` }
  }
}

const found = await probe()

describe('a real Ollama', () => {
  it('lists, streams and counts tokens like the official client sees them', async (t) => {
    if ('skip' in found) { t.skip(found.skip); return }
    const ours = createOllamaBackend()
    const official = new Ollama({ host: OLLAMA_DEFAULT_URL })
    assert.deepEqual((await ours.models()).map(m => m.name), (await official.list()).models.map(m => m.name))
    const chunks: string[] = []
    const result = await ours.chat(found.model, {
      models: [found.model],
      messages: [{ role: 'user', content: 'Say hello.' }],
      maxTokens: 8,
      temperature: 0,
      seed: 1
    }, { onToken: c => chunks.push(c) })
    assert.equal(chunks.join(''), result.text)
    assert.ok(result.tokensOut > 0 && result.tokensOut <= 8)
    assert.ok(result.tokensIn > 0)
    await assert.rejects(ours.chat('hive-no-such-model-xyz', { models: [], messages: [{ role: 'user', content: 'x' }], maxTokens: 1 }, {}), { name: 'ModelNotFound' })
  })
})
