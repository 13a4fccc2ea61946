// The embedded engine: llama.cpp inside hive-node (through node-llama-cpp), answering from the
// GGUF files in the device's models folder. It is the model source that needs nothing installed.
//
// Memory is the reason for its shape. The native library is imported on the first call, never
// at start-up, so an idle node pays nothing for it; one model is kept loaded and reused, and is
// unloaded after a quiet spell. Calls take turns on that model (one generation at a time, in
// arrival order; a call cancelled while it waits leaves the queue), so a second model can only
// replace the first between two turns, never under a running generation.
//
// The engine only ever uses binaries shipped in the installed packages: it never downloads or
// builds llama.cpp (`build: 'never'`, `skipDownload`).

import { stat } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { LlmTooLargeError, LlmUnavailableError, ModelNotFoundError } from '../errors.ts'
import { RequestInvalidError } from './errors.ts'
import { EMBEDDED_CONTEXT_TOKENS, EMBEDDED_IDLE_UNLOAD_MS, MODEL_FILE_NAME_PATTERN, MODEL_NAME_MAX } from './limits.ts'
import { listModelFiles, modelPath } from './models-dir.ts'
import type { ChatRequest, FinishReason, ModelBackend, ModelInfo } from '../types.ts'
import type { ChatHistoryItem, Llama, LlamaContext, LlamaEmbeddingContext, LlamaGrammar, LlamaModel } from 'node-llama-cpp'

type Nlc = typeof import('node-llama-cpp')

export interface EmbeddedBackendInit {
  /** The device's models folder: `<data dir>/models`. */
  modelsDir: string
  /** CPU threads for llama.cpp; default: all cores but one (at most 8), so the node stays responsive. */
  threads?: number
  /** Tokens of one context, capped by what the model was trained for. */
  contextTokens?: number
  /** Unload the model after this long without a call; 0 keeps it loaded. */
  idleUnloadMs?: number
  /**
   * 'auto' uses a GPU build when one is installed (see the README) and falls back to the CPU;
   * false always uses the CPU.
   */
  gpu?: 'auto' | false
}

export interface EmbeddedStatus {
  /** The native engine has been imported and started. */
  engineLoaded: boolean
  /** The model held in memory, if any. */
  model?: string
}

export interface EmbeddedBackend extends ModelBackend {
  readonly source: 'embedded'
  status: () => EmbeddedStatus
}

interface Loaded {
  name: string
  model: LlamaModel
  context: LlamaContext
  embedding?: LlamaEmbeddingContext
}

interface Engine {
  nlc: Nlc
  llama: Llama
  json?: LlamaGrammar
}

/** Creates the embedded backend; nothing is loaded until the first chat or embed. */
export function createEmbeddedBackend (init: EmbeddedBackendInit): EmbeddedBackend {
  return new Embedded(init)
}

class Embedded implements EmbeddedBackend {
  readonly source = 'embedded' as const
  private readonly init: EmbeddedBackendInit
  private engine?: Promise<Engine>
  private loaded?: Loaded
  private queue: Promise<void> = Promise.resolve()
  /** Calls queued or running; the idle countdown starts only when none is left. */
  private pending = 0
  private idleTimer?: NodeJS.Timeout
  private closed = false

  constructor (init: EmbeddedBackendInit) {
    this.init = { ...init, threads: init.threads ?? Math.max(1, Math.min(8, availableParallelism() - 1)) }
  }

  status (): EmbeddedStatus {
    return { engineLoaded: this.engine != null, ...(this.loaded != null ? { model: this.loaded.name } : {}) }
  }

  async models (options: { signal?: AbortSignal } = {}): Promise<ModelInfo[]> {
    return await listModelFiles(this.init.modelsDir, options)
  }

  async chat (model: string, request: ChatRequest, options: { signal?: AbortSignal, onToken?: (text: string) => void }): ReturnType<ModelBackend['chat']> {
    const { signal, onToken } = options
    const cancelled = { text: '', model, tokensIn: 0, tokensOut: 0, finish: 'cancelled' as const }
    // llama.cpp reads a bound of 0 as "no bound": refuse it rather than generate without end.
    if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < 1) {
      throw new RequestInvalidError(`maxTokens must be a whole number of at least 1, not ${request.maxTokens}`)
    }
    if (signal?.aborted === true) return cancelled
    try {
      return await this.turn(signal, async () => {
        const engine = await this.start()
        const loaded = await this.load(engine, model, signal)
        const sequence = loaded.context.getSequence()
        const chat = new engine.nlc.LlamaChat({ contextSequence: sequence, autoDisposeSequence: false })
        try {
          const history = toHistory(request)
          const tokensIn = chat.chatWrapper.generateContextState({ chatHistory: history }).contextText.tokenize(loaded.model.tokenizer).length
          if (tokensIn >= loaded.context.contextSize) {
            throw new LlmTooLargeError(`the prompt is ${tokensIn} tokens and model "${model}" holds ${loaded.context.contextSize} on this device: shorten the conversation`)
          }
          const grammar = await grammarFor(engine, request.format)
          const response = await chat.generateResponse(history, {
            signal,
            stopOnAbortSignal: true,
            maxTokens: request.maxTokens,
            temperature: request.temperature ?? 0.8,
            ...(request.seed != null ? { seed: request.seed } : {}),
            ...(request.stop != null && request.stop.length > 0 ? { customStopTriggers: request.stop } : {}),
            ...(grammar != null ? { grammar } : {}),
            ...(onToken != null ? { onTextChunk: onToken } : {})
          })
          // Every sampled token, also those held back as the start of a stop sequence or of a
          // UTF-8 character: the sequence is this call's own, so its meter counts only this call.
          const tokensOut = sequence.tokenMeter.usedOutputTokens
          return { text: response.response, model, tokensIn, tokensOut, finish: finishOf(response.metadata.stopReason, signal) }
        } finally {
          chat.dispose({ disposeSequence: false })
          await sequence.dispose()
        }
      })
    } catch (err) {
      if (signal != null && isAbort(err, signal)) return cancelled
      throw err
    }
  }

  async embed (model: string, texts: string[], options: { signal?: AbortSignal }): Promise<{ vectors: number[][], tokensIn: number }> {
    const { signal } = options
    signal?.throwIfAborted()
    return await this.turn(signal, async () => {
      const engine = await this.start()
      const loaded = await this.load(engine, model, signal)
      loaded.embedding ??= await loaded.model.createEmbeddingContext({
        contextSize: loaded.context.contextSize,
        ...(this.init.threads != null ? { threads: this.init.threads } : {}),
        ...(signal != null ? { createSignal: signal } : {})
      })
      const vectors: number[][] = []
      let tokensIn = 0
      for (const text of texts) {
        signal?.throwIfAborted()
        const tokens = loaded.model.tokenize(text)
        if (tokens.length > loaded.context.contextSize) {
          throw new LlmTooLargeError(`a text to embed is ${tokens.length} tokens and model "${model}" takes ${loaded.context.contextSize}: split it`)
        }
        tokensIn += tokens.length
        const embedding = await loaded.embedding.getEmbeddingFor(tokens)
        vectors.push([...embedding.vector])
      }
      return { vectors, tokensIn }
    })
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.idleTimer)
    await this.turn(undefined, async () => { await this.unload() })
    const engine = await this.engine?.catch(() => undefined)
    this.engine = undefined
    await engine?.llama.dispose()
  }

  /** Runs `fn` when every earlier call has finished; a signal fired while waiting drops out. */
  private async turn<T> (signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    const before = this.queue
    const { promise: done, resolve: release } = Promise.withResolvers<void>()
    this.queue = done
    this.pending++
    clearTimeout(this.idleTimer)
    try {
      await raceAbort(before, signal)
      return await fn()
    } finally {
      // The next call starts only after both this one and the one before it are done.
      void before.then(() => {
        this.pending--
        release()
        this.scheduleIdleUnload()
      })
    }
  }

  private scheduleIdleUnload (): void {
    const ms = this.init.idleUnloadMs ?? EMBEDDED_IDLE_UNLOAD_MS
    if (ms <= 0 || this.loaded == null || this.closed || this.pending > 0) return
    clearTimeout(this.idleTimer)
    this.idleTimer = setTimeout(() => {
      void this.turn(undefined, async () => { await this.unload() }).catch(() => {})
    }, ms)
    this.idleTimer.unref()
  }

  private async start (): Promise<Engine> {
    if (this.closed) throw new LlmUnavailableError('the embedded engine is closed')
    this.engine ??= (async () => {
      const nlc = await import('node-llama-cpp')
      const llama = await nlc.getLlama({
        build: 'never',
        skipDownload: true,
        usePrebuiltBinaries: true,
        progressLogs: false,
        gpu: this.init.gpu ?? 'auto',
        logLevel: nlc.LlamaLogLevel.error,
        ...(this.init.threads != null ? { maxThreads: this.init.threads } : {})
      })
      return { nlc, llama }
    })()
    try {
      return await this.engine
    } catch (err) {
      this.engine = undefined
      throw new LlmUnavailableError(`the embedded engine cannot start on this device (${(err as Error).message}): reinstall with npm ci, or run an Ollama server instead`, { cause: err })
    }
  }

  private async load (engine: Engine, name: string, signal: AbortSignal | undefined): Promise<Loaded> {
    if (this.loaded?.name === name) return this.loaded
    if (name.length === 0 || name.length > MODEL_NAME_MAX || !MODEL_FILE_NAME_PATTERN.test(name)) {
      throw new ModelNotFoundError(`no model "${name.slice(0, MODEL_NAME_MAX)}" on this device: model names are GGUF file names in the models folder`)
    }
    const path = modelPath(this.init.modelsDir, name)
    if (!await stat(path).then(s => s.isFile(), () => false)) {
      throw new ModelNotFoundError(`no model "${name}" on this device: add its GGUF file with \`hive-node models add FILE.gguf\``)
    }
    await this.unload()
    let model: LlamaModel | undefined
    try {
      model = await engine.llama.loadModel({ modelPath: path, ...(signal != null ? { loadSignal: signal } : {}) })
      const contextSize = Math.min(this.init.contextTokens ?? EMBEDDED_CONTEXT_TOKENS, model.trainContextSize)
      const context = await model.createContext({
        contextSize,
        sequences: 1,
        ...(this.init.threads != null ? { threads: this.init.threads } : {}),
        ...(signal != null ? { createSignal: signal } : {})
      })
      this.loaded = { name, model, context }
      return this.loaded
    } catch (err) {
      await model?.dispose()
      if (signal?.aborted === true) throw err
      throw new LlmUnavailableError(`model "${name}" could not be loaded (${(err as Error).message}): check that its GGUF file is whole and of an architecture llama.cpp knows`, { cause: err })
    }
  }

  private async unload (): Promise<void> {
    const loaded = this.loaded
    this.loaded = undefined
    if (loaded == null) return
    await loaded.embedding?.dispose()
    await loaded.context.dispose()
    await loaded.model.dispose()
  }
}

function toHistory (request: ChatRequest): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = request.messages.map(m =>
    m.role === 'system'
      ? { type: 'system', text: m.content }
      : m.role === 'user'
        ? { type: 'user', text: m.content }
        : { type: 'model', response: [m.content] })
  // A history that ends with the assistant's words is continued; otherwise a new answer begins.
  if (history.at(-1)?.type !== 'model') history.push({ type: 'model', response: [] })
  return history
}

async function grammarFor (engine: Engine, format: ChatRequest['format']): Promise<LlamaGrammar | undefined> {
  if (format == null) return undefined
  if (format.kind === 'json') {
    engine.json ??= await engine.llama.getGrammarFor('json')
    return engine.json
  }
  let schema: unknown
  try {
    schema = JSON.parse(format.schema)
  } catch (err) {
    throw new RequestInvalidError(`the output schema is not JSON (${(err as Error).message}): give a JSON-schema`)
  }
  try {
    return await engine.llama.createGrammarForJsonSchema(schema as Parameters<Llama['createGrammarForJsonSchema']>[0])
  } catch (err) {
    throw new RequestInvalidError(`the output schema cannot be used by the embedded engine (${(err as Error).message}): use a simpler JSON-schema or format 'json'`)
  }
}

function finishOf (reason: string, signal: AbortSignal | undefined): FinishReason {
  if (reason === 'abort' || signal?.aborted === true) return 'cancelled'
  if (reason === 'maxTokens') return 'length'
  return 'stop'
}

function isAbort (err: unknown, signal: AbortSignal): boolean {
  if (!signal.aborted) return false
  return err === signal.reason || (err instanceof Error && (err.name === 'AbortError' || err.name === 'AbortSignal'))
}

async function raceAbort (promise: Promise<void>, signal: AbortSignal | undefined): Promise<void> {
  if (signal == null) { await promise; return }
  signal.throwIfAborted()
  const { promise: aborted, reject } = Promise.withResolvers<never>()
  const onAbort = (): void => { reject(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
