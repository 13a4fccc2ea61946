// What the hive adds to a model call: the embedded engine on a generated tiny model called
// directly (the baseline), the same engine through the router on its own device (local route),
// and from a second node over `/hive/llm/1.0.0` (peer route), two real nodes on loopback in one
// process, all in the same run and on the same engine instance.
//   per call      wall time of one chat (maxTokens tokens, temperature 0, fixed seed)
//   first token   from the call to the first token handed to the caller
//   tokens/s      tokens after the first / time from the first token to the end; every call
//                 of every way makes the same tokens (checked), counted by the engine
//
// `npm run bench -- llm`, or `node test/bench/llm.bench.ts` for this one alone.

import { createEmbeddedBackend } from '../../protocol/llm/index.ts'
import { tinyModelsDir } from '../helpers/gguf.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { median, printTable } from './table.ts'
import type { BenchResult } from './table.ts'
import type { ChatRequest } from '../../protocol/llm/index.ts'

const CALLS = 24
const WARMUP = 2
const MAX_TOKENS = 96

interface Sample { totalMs: number, firstMs: number, tokensPerS: number, pieces: number, text: string, tokensOut: number }
type Call = (onToken: (t: string) => void) => Promise<{ tokensOut: number, text: string }>

async function sample (call: Call): Promise<Sample> {
  const start = performance.now()
  let first: number | undefined
  let pieces = 0
  const result = await call(() => { first ??= performance.now(); pieces++ })
  const end = performance.now()
  const f = first ?? end
  return { totalMs: end - start, firstMs: f - start, tokensPerS: end > f ? (result.tokensOut - 1) / ((end - f) / 1000) : 0, pieces, text: result.text, tokensOut: result.tokensOut }
}

/**
 * Runs the ways call by call, in turn, each round starting with a different one: a change in
 * the machine's load (it is shared) hits all of them alike, and none always runs first.
 */
async function measure (ways: Call[]): Promise<Sample[][]> {
  const samples: Sample[][] = ways.map(() => [])
  for (let i = 0; i < WARMUP; i++) for (const way of ways) await sample(way) // the model loads on the first call
  for (let round = 0; round < CALLS; round++) {
    for (let k = 0; k < ways.length; k++) {
      const w = (round + k) % ways.length
      samples[w]!.push(await sample(ways[w]!))
    }
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
    const [direct, local, peer] = await measure([
      async (onToken) => engine.chat('tiny', request, { onToken }),
      async (onToken) => a!.llm.router.chat(request, { cloud: false, onToken }),
      async (onToken) => b!.llm.router.chat(request, { cloud: false, onToken })
    ]) as [Sample[], Sample[], Sample[]]
    // the ways are compared only if they did the same work: the same tokens of the same model
    for (const s of [...direct, ...local, ...peer]) {
      if (s.tokensOut !== MAX_TOKENS || s.text !== direct[0]!.text) throw new Error(`a call made other tokens (${s.tokensOut} tokens): the ways would not be comparable`)
    }
    const m = (s: Sample[], k: 'totalMs' | 'firstMs' | 'tokensPerS' | 'pieces'): number => median(s.map(x => x[k]))
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
        { metric: 'tokens/s, peer route', value: m(peer, 'tokensPerS'), unit: 'tok/s', baseline: { label: 'engine', value: d.rate }, note: `goal ≥ 0.9×; ${m(peer, 'pieces')} token frames a call (the engine streams ${m(direct, 'pieces')} pieces)` }
      ]
    }
  } finally {
    await mesh.stop()
    await models.remove()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printTable(await run())
