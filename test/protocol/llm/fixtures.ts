// A small in-test model backend for the routing logic: answers with a fixed token list, counts
// its calls, and can hang until aborted (a slow model) or fail. The real engines have their own
// tests; these check only where the waterfall sends a call.

import type { ChatRequest, ModelBackend, ModelInfo } from '../../../protocol/llm/index.ts'

export interface TestBackend extends ModelBackend {
  calls: Array<{ model: string, request: ChatRequest }>
  /** Makes the next calls hang until aborted, after sending `afterTokens` tokens. */
  hang: (afterTokens?: number) => void
  /** Makes the next calls fail with this error. */
  fail: (err: Error | undefined) => void
  /** Resolves when a call has started. */
  started: () => Promise<void>
  /** Calls ended by their signal while the model was still at work. */
  aborted: number
}

export function testBackend (source: 'ollama' | 'embedded', models: string[], tokens = ['a', 'b', 'c']): TestBackend {
  const calls: TestBackend['calls'] = []
  let hangAfter: number | undefined
  let failure: Error | undefined
  let onStart = Promise.withResolvers<void>()
  const backend: TestBackend = {
    aborted: 0,
    source,
    calls,
    hang (after = 1) { hangAfter = after },
    fail (err) { failure = err },
    started: async () => onStart.promise,
    async models (): Promise<ModelInfo[]> {
      return models.map(name => ({ name, sizeBytes: 1000, source }))
    },
    async chat (model, request, options) {
      calls.push({ model, request })
      onStart.resolve()
      onStart = Promise.withResolvers<void>()
      if (failure != null) throw failure
      const n = Math.min(tokens.length, request.maxTokens)
      for (let i = 0; i < n; i++) {
        options.signal?.throwIfAborted()
        if (hangAfter != null && i === hangAfter) {
          await new Promise((_resolve, reject) => {
            const signal = options.signal
            if (signal == null) return
            signal.addEventListener('abort', () => { backend.aborted++; reject(signal.reason) }, { once: true })
          })
        }
        options.onToken?.(tokens[i]!)
        await new Promise(resolve => setImmediate(resolve))
      }
      const prompt = request.messages.map(m => m.content).join(' ')
      return { text: tokens.slice(0, n).join(''), model, tokensIn: prompt.split(/\s+/).length, tokensOut: n, finish: n < tokens.length ? 'length' : 'stop' }
    },
    async embed (_model, texts) {
      return { vectors: texts.map(t => [t.length, 1]), tokensIn: texts.length }
    },
    async close () {}
  }
  return backend
}

export interface Instrumented extends ModelBackend {
  calls: number
  /** Calls ended by their signal while the model was still at work. */
  aborted: number
  /** Calls that have stopped streaming after their `hang` tokens were sent. */
  stalled: number
  /** Makes the next calls stop streaming after `afterTokens` tokens and wait until aborted (a stalled model). */
  hang: (afterTokens: number) => void
}

/**
 * Wraps a real backend (the embedded engine) so a test can count its calls and stall it after a
 * few tokens. The model itself runs for real; a stall aborts its generation and then waits, as a
 * stuck device would, until the caller's signal ends the call.
 */
export function instrument (inner: ModelBackend): Instrumented {
  let hangAfter: number | undefined
  const wrapped: Instrumented = {
    source: inner.source,
    calls: 0,
    aborted: 0,
    stalled: 0,
    hang (after) { hangAfter = after },
    models: async (options) => inner.models(options),
    embed: async (model, texts, options) => inner.embed(model, texts, options),
    close: async () => { await inner.close() },
    async chat (model, request, options) {
      wrapped.calls++
      const stall = hangAfter
      if (stall == null) return inner.chat(model, request, options)
      const signal = options.signal
      const stop = new AbortController()
      let sent = 0
      const stalled = Promise.withResolvers<never>()
      const run = inner.chat(model, request, {
        signal: signal != null ? AbortSignal.any([signal, stop.signal]) : stop.signal,
        onToken: (text) => {
          if (sent >= stall) return
          sent++
          options.onToken?.(text)
          if (sent === stall) { wrapped.stalled++; stop.abort(new Error('stalled')) }
        }
      }).catch(() => undefined)
      signal?.addEventListener('abort', () => { wrapped.aborted++; stalled.reject(signal.reason) }, { once: true })
      await run
      return stalled.promise
    }
  }
  return wrapped
}
