// The hive's LLM vocabulary: what an agent (or `hive-node ask`) asks for, what comes back, and
// where it ran. Shared by the model backends on one device (Ollama, the embedded engine), the
// cloud client, the waterfall that picks a route, and `/hive/llm/1.0.0`, which carries these
// shapes between members. Nothing here does I/O.

/** Who speaks in a chat. */
export type LlmRole = 'system' | 'user' | 'assistant'

export interface LlmMessage {
  role: LlmRole
  content: string
}

/** One chat call, as the agent or the CLI states it. */
export interface ChatRequest {
  /** Acceptable models, most preferred first; empty means any model the route holds. */
  models: string[]
  messages: LlmMessage[]
  /** Upper bound of generated tokens; also what a cloud budget reserves. */
  maxTokens: number
  temperature?: number
  seed?: number
  stop?: string[]
  /** Constrain the output: any JSON, or JSON matching a JSON-schema (given as its text). */
  format?: { kind: 'json' } | { kind: 'schema', schema: string }
}

/** Where a call was answered. */
export type LlmRoute =
  | { kind: 'local' }
  | { kind: 'peer', peer: string, device: string }
  | { kind: 'cloud', provider: string }

export type FinishReason = 'stop' | 'length' | 'cancelled'

export interface ChatResult {
  text: string
  /** The model that answered (one of the request's `models` when those were given). */
  model: string
  tokensIn: number
  tokensOut: number
  finish: FinishReason
  route: LlmRoute
  /** Spend of a cloud call, in millionths of a US dollar; 0 inside the hive. */
  costMicroUsd: number
}

export interface EmbedResult {
  model: string
  vectors: number[][]
  tokensIn: number
  route: LlmRoute
}

/** A model one device holds. */
export interface ModelInfo {
  name: string
  sizeBytes: number
  source: 'ollama' | 'embedded'
}

/** One source of models on a device: an Ollama server, or the engine inside hive-node. */
export interface ModelBackend {
  readonly source: 'ollama' | 'embedded'
  models: (options?: { signal?: AbortSignal }) => Promise<ModelInfo[]>
  /** `model` is one this backend listed. Tokens are handed to `onToken` as they are made. */
  chat: (model: string, request: ChatRequest, options: { signal?: AbortSignal, onToken?: (text: string) => void }) =>
    Promise<Omit<ChatResult, 'route' | 'costMicroUsd'>>
  embed: (model: string, texts: string[], options: { signal?: AbortSignal }) => Promise<{ vectors: number[][], tokensIn: number }>
  close: () => Promise<void>
}

/** Who is calling and what they may do: the waterfall's inputs besides the request. */
export interface LlmCaller {
  /** The agent's digest, for per-agent budgets; absent for `hive-node ask`. */
  agent?: string
  task?: string
  /** The run holds `llm:cloud`, or the CLI passed `--cloud`. */
  cloud: boolean
  /** The manifest's `models` allowlist; absent means any model. */
  allow?: string[]
  signal?: AbortSignal
  onToken?: (text: string) => void
}

/** The waterfall as the sandbox and the CLI see it. */
export interface LlmService {
  chat: (request: ChatRequest, caller: LlmCaller) => Promise<ChatResult>
  embed: (model: string, texts: string[], caller: LlmCaller) => Promise<EmbedResult>
}

/** What one run's LLM calls add up to, per route kind: written into the run's ledger record. */
export interface LlmUsage {
  route: LlmRoute['kind']
  calls: number
  tokensIn: number
  tokensOut: number
}
