// Types of the hive:agent@0.1.0 host interfaces as a JS/TS agent sees them after
// `hive-node agent build`. Import only what the manifest's permissions grant.
// A host call that fails throws; the thrown value's `payload` holds the reason (a string for
// context calls, an `LlmError` for llm calls).

declare module 'hive:agent/log@0.1.0' {
  export type Level = 'debug' | 'info' | 'warn' | 'error'
  /** Needs permission "log". */
  export function log (level: Level, message: string): void
}

declare module 'hive:agent/context@0.1.0' {
  export interface Entry { role: string, text: string }
  /** The value stored under `key`, or undefined. Needs permission "context:read". */
  export function get (key: string): string | undefined
  /** Stores `value` under `key`. Needs permission "context:write". */
  export function set (key: string, value: string): void
  /** Appends one entry to the conversation. Needs permission "context:write". */
  export function append (text: string): void
  /** The last `last` entries of the conversation (at most 1000), oldest first. Needs permission "context:read". */
  export function conversation (last: number): Entry[]
}

declare module 'hive:agent/llm@0.1.0' {
  export type Role = 'system' | 'user' | 'assistant'
  export interface Message { role: Role, content: string }
  export type ResponseFormat = { tag: 'json' } | { tag: 'schema', val: string }
  export interface ChatRequest {
    /** Acceptable models, most preferred first; empty means any (within the manifest's "models"). */
    models: string[]
    messages: Message[]
    /** At least 1, at most 32768. */
    maxTokens: number
    /** 0 to 2; undefined leaves the model's default. */
    temperature?: number
    seed?: number
    stop: string[]
    format?: ResponseFormat
  }
  /** Where the call ran: this device, another member (its device name), or a cloud provider. */
  export type Route = { tag: 'local', val?: undefined } | { tag: 'peer', val: string } | { tag: 'cloud', val: string }
  export interface ChatResult {
    text: string
    model: string
    tokensIn: number
    tokensOut: number
    finish: 'stop' | 'length' | 'cancelled'
    route: Route
  }
  export interface EmbedResult { model: string, vectors: Float32Array[] | number[][], tokensIn: number, route: Route }
  /** The thrown value's `payload` when a call fails. */
  export type LlmError = { tag: 'model-not-found' | 'budget-exceeded' | 'not-permitted' | 'unavailable' | 'too-large' | 'invalid-input', val: string }
  /** Needs permission "llm"; a cloud route also needs "llm:cloud". */
  export function chat (request: ChatRequest): ChatResult
  /** One vector per text. Needs permission "llm". */
  export function embed (model: string, texts: string[]): EmbedResult
}

declare module 'hive:agent/http@0.1.0' {
  export interface Header { name: string, value: string }
  export interface Options { timeoutMs?: number, maxBytes?: number }
  export interface Response { status: number, headers: Header[], body: Uint8Array }
  /** The thrown value's `payload` when a request fails. */
  export type HttpError = { tag: 'not-permitted' | 'host-not-granted' | 'timeout' | 'too-large' | 'connection-failed' | 'invalid-input', val: string }
  /** Needs a "net:<origin>" permission for the URL's origin (and for each redirect's). */
  export function request (method: string, url: string, headers: Header[], body: Uint8Array, options: Options): Response
}

declare module 'hive:agent/kv@0.1.0' {
  /** The value stored under `key`, or undefined. Needs permission "kv:read". */
  export function get (key: string): string | undefined
  /** Needs permission "kv:write". */
  export function set (key: string, value: string): void
  /** True when the key was there. Needs permission "kv:write". */
  function _delete (key: string): boolean
  export { _delete as delete }
  /** Keys starting with `prefix`, in order, at most `limit`. Needs permission "kv:read". */
  export function list (prefix: string, limit: number): string[]
}
