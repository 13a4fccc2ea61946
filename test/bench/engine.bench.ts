// Model backends on one device: the embedded engine (llama.cpp on a generated GGUF) called
// directly, against the same engine reached through Ollama's HTTP API (our client, a loopback
// server speaking that API on the engine): what the NDJSON hop costs per call and per token.
// The tiny model's weights are random; the figures are about the plumbing, not a real model.
//
// `npm run bench -- engine`, or `node test/bench/engine.bench.ts` for this one alone.

import { createEmbeddedBackend } from '../../protocol/llm/engines/embedded.ts'
import { createOllamaBackend } from '../../protocol/llm/engines/ollama.ts'
import { startFakeOllama } from '../helpers/fake-ollama.ts'
import { tinyModelsDir } from '../helpers/gguf.ts'
import { engineTokensPerSecond } from './llm-engine.ts'
import { printTable } from './table.ts'
import type { BenchResult } from './table.ts'

const CALLS = 10

export async function run (): Promise<BenchResult> {
  const dir = await tinyModelsDir(['tiny'])
  const engine = createEmbeddedBackend({ modelsDir: dir.modelsDir })
  const fake = await startFakeOllama(engine)
  try {
    const loadStart = performance.now()
    await engine.chat('tiny', { models: [], messages: [{ role: 'user', content: 'hi' }], maxTokens: 1 }, {})
    const firstCallMs = performance.now() - loadStart
    const direct = await engineTokensPerSecond(engine, 'tiny', { calls: CALLS })
    const wire = await engineTokensPerSecond(createOllamaBackend({ baseUrl: fake.url }), 'tiny', { calls: CALLS })
    const base = (label: string, value: number): { label: string, value: number } => ({ label, value })
    return {
      title: `model backends: tiny GGUF, ${direct.tokensOut} tokens a call, median of ${CALLS} calls`,
      rows: [
        { metric: 'first call (import engine, load model, 1 token)', value: firstCallMs, unit: 'ms' },
        { metric: 'engine directly: call', value: direct.callMs, unit: 'ms' },
        { metric: 'engine directly: first token', value: direct.firstTokenMs, unit: 'ms' },
        { metric: 'engine directly: tokens/s', value: direct.tokensPerSecond, unit: 'tok/s' },
        { metric: 'via Ollama API: call', value: wire.callMs, unit: 'ms', baseline: base('direct', direct.callMs) },
        { metric: 'via Ollama API: first token', value: wire.firstTokenMs, unit: 'ms', baseline: base('direct', direct.firstTokenMs) },
        { metric: 'via Ollama API: tokens/s', value: wire.tokensPerSecond, unit: 'tok/s', baseline: base('direct', direct.tokensPerSecond) }
      ]
    }
  } finally {
    await fake.stop()
    await engine.close()
    await dir.remove()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable(await run())
}
