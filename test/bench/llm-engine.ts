// Measuring a model backend's own speed: the "engine directly" baseline that LLM benchmarks
// compare the hive's routes with, measured in the same run. A call's figures are its wall time,
// the time to its first streamed token, and its tokens per second (all generated tokens over
// the whole call, prompt included, as a caller experiences it; and the decode rate after the
// first token).

import { median } from './table.ts'
import type { ChatRequest, ModelBackend } from '../../protocol/llm/types.ts'

/** Anything that answers a chat the way a model backend does (a backend, the waterfall, a peer route). */
export type ChatFn = (request: ChatRequest, options: { signal?: AbortSignal, onToken?: (text: string) => void }) =>
  Promise<{ tokensOut: number }>

export interface EngineFigures {
  calls: number
  /** Median wall time of one call. */
  callMs: number
  /** Median time from the call to its first streamed token. */
  firstTokenMs: number
  /** Median of tokensOut / call time. */
  tokensPerSecond: number
  /** Median of (tokensOut − 1) / (call time − first token time): generation speed alone. */
  decodeTokensPerSecond: number
  tokensOut: number
}

/** The request every measurement uses unless told otherwise: greedy, seeded, fixed length. */
export function benchRequest (maxTokens = 64, over: Partial<ChatRequest> = {}): ChatRequest {
  return { models: [], messages: [{ role: 'user', content: 'hello hive agent, tell me about the device' }], maxTokens, temperature: 0, seed: 1, ...over }
}

/** Runs `calls` chats one after another (after `warmup` unmeasured ones) and returns the medians. */
export async function measureChat (chat: ChatFn, options: { calls?: number, warmup?: number, request?: ChatRequest } = {}): Promise<EngineFigures> {
  const calls = options.calls ?? 10
  const request = options.request ?? benchRequest()
  for (let i = 0; i < (options.warmup ?? 1); i++) await chat(request, {})
  const callMs: number[] = []
  const firstMs: number[] = []
  const rate: number[] = []
  const decode: number[] = []
  let tokensOut = 0
  for (let i = 0; i < calls; i++) {
    const start = performance.now()
    let first: number | undefined
    const result = await chat(request, { onToken: () => { first ??= performance.now() } })
    const end = performance.now()
    const ms = end - start
    const toFirst = (first ?? end) - start
    callMs.push(ms)
    firstMs.push(toFirst)
    rate.push(result.tokensOut / (ms / 1000))
    if (result.tokensOut > 1 && ms > toFirst) decode.push((result.tokensOut - 1) / ((ms - toFirst) / 1000))
    tokensOut = result.tokensOut
  }
  return {
    calls,
    callMs: median(callMs),
    firstTokenMs: median(firstMs),
    tokensPerSecond: median(rate),
    decodeTokensPerSecond: decode.length > 0 ? median(decode) : 0,
    tokensOut
  }
}

/** The engine-directly baseline: `model` on `backend`, with no hive in between. */
export async function engineTokensPerSecond (backend: ModelBackend, model: string, options: { calls?: number, warmup?: number, request?: ChatRequest } = {}): Promise<EngineFigures> {
  return await measureChat(async (request, callOptions) => await backend.chat(model, request, callOptions), options)
}
