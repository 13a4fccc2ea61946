// What the hive adds to a model call: the embedded engine on a generated tiny model called
// directly (the baseline), the same engine through the router on its own device (local route),
// and from a second node over `/hive/llm/1.0.0` (peer route), two real nodes on loopback in one
// process, all in the same run and on the same engine instance.
//   per call      wall time of one chat (maxTokens tokens, temperature 0, fixed seed)
//   first token   from the call to the first token handed to the caller
//   tokens/s      tokens after the first / time from the first token to the end
//
// `npm run bench -- llm`, or `node test/bench/llm.bench.ts` for this one alone.

import { createEmbeddedBackend } from '../../protocol/llm/index.ts'
import { tinyModelsDir } from '../helpers/gguf.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { median, printTable } from './table.ts'
import type { BenchResult } from './table.ts'
import type { ChatRequest } from '../../protocol/llm/index.ts'

const CALLS = 12
const MAX_TOKENS = 96

interface Sample { totalMs: number, firstMs: number, tokensPerS: number }

async function measure (call: (onToken: (t: string) => void) => Promise<{ tokensOut: number }>): Promise<Sample[]> {
  const samples: Sample[] = []
  for (let i = 0; i < CALLS + 2; i++) {
    const start = performance.now()
    let first: number | undefined
    const result = await call(() => { first ??= performance.now() })
    const end = performance.now()
    if (i < 2) continue // warm-up: the model loads on the first call
    const f = first ?? end
    samples.push({ totalMs: end - start, firstMs: f - start, tokensPerS: end > f ? (result.tokensOut - 1) / ((end - f) / 1000) : 0 })
  }
  return samples
}

export async function run (): Promise<BenchResult> {
  const models = await tinyModelsDir(['tiny'])
  const engine = createEmbeddedBackend({ modelsDir: models.modelsDir, threads: 1, idleUnloadMs: 0 })
  const mesh = await startMesh(2, {
    label: 'bench-llm',
    init: (i) => ({ capabilities: { intervalMs: 500, ollamaUrl: null }, llm: { backends: i === 0 ? [engine] : [] } })
  })
  try {
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]]
    await waitFor(() => b.capabilities.get(a!.peerId.toString())?.caps.models.includes('tiny'), { message: 'the second node hears of the model' })
    const request: ChatRequest = { models: ['tiny'], messages: [{ role: 'user', content: 'tell the hive a long story' }], maxTokens: MAX_TOKENS, temperature: 0, seed: 1 }
    // interleave the three ways call by call, so a change in the machine's load hits all alike
    const direct: Sample[] = []
    const local: Sample[] = []
    const peer: Sample[] = []
    for (let round = 0; round < 2; round++) {
      direct.push(...await measure(async (onToken) => engine.chat('tiny', request, { onToken })))
      local.push(...await measure(async (onToken) => a!.llm.router.chat(request, { cloud: false, onToken })))
      peer.push(...await measure(async (onToken) => b!.llm.router.chat(request, { cloud: false, onToken })))
    }
    const m = (s: Sample[], k: keyof Sample): number => median(s.map(x => x[k]))
    const d = { total: m(direct, 'totalMs'), first: m(direct, 'firstMs'), rate: m(direct, 'tokensPerS') }
    const note = `median of ${direct.length}, ${MAX_TOKENS} tokens`
    return {
      title: `llm: the hive's added cost per call (embedded engine, tiny generated model, ${MAX_TOKENS} tokens a call)`,
      rows: [
        { metric: 'per call, engine directly', value: d.total, unit: 'ms', note },
        { metric: 'per call, local route', value: m(local, 'totalMs'), unit: 'ms', baseline: { label: 'engine', value: d.total }, note: `added ${(m(local, 'totalMs') - d.total).toFixed(2)} ms` },
        { metric: 'per call, peer route', value: m(peer, 'totalMs'), unit: 'ms', baseline: { label: 'engine', value: d.total }, note: `added ${(m(peer, 'totalMs') - d.total).toFixed(2)} ms` },
        { metric: 'first token, engine directly', value: d.first, unit: 'ms', note },
        { metric: 'first token, local route', value: m(local, 'firstMs'), unit: 'ms', baseline: { label: 'engine', value: d.first } },
        { metric: 'first token, peer route', value: m(peer, 'firstMs'), unit: 'ms', baseline: { label: 'engine', value: d.first } },
        { metric: 'tokens/s, engine directly', value: d.rate, unit: 'tok/s', note },
        { metric: 'tokens/s, local route', value: m(local, 'tokensPerS'), unit: 'tok/s', baseline: { label: 'engine', value: d.rate } },
        { metric: 'tokens/s, peer route', value: m(peer, 'tokensPerS'), unit: 'tok/s', baseline: { label: 'engine', value: d.rate }, note: 'goal ≥ 0.9×' }
      ]
    }
  } finally {
    await mesh.stop()
    await models.remove()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printTable(await run())
