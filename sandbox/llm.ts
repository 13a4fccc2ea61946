// The `hive:agent/llm` host interface: the port the sandbox calls for an agent's model calls, the
// bounds every request and answer must keep, and the translation between the agent's WIT values
// and the port's shapes. The sandbox routes nothing itself: whatever implements `AgentLlm` (the
// node's waterfall) picks local, peer or cloud. The types here are the sandbox's own, kept
// structurally equal to the hive's LLM vocabulary so the node can hand its router in directly.

import { z } from 'zod'

/** Bounds of one call, stated once: the manifest, the host check and the README use these. */
export const LLM_LIMITS = {
  /** Models a manifest's `models` allowlist or one request may name. */
  maxModels: 32,
  maxModelNameChars: 256,
  maxMessages: 256,
  /** All message contents, stop sequences and the schema of one chat, together. */
  maxPromptChars: 512 * 1024,
  maxTokens: 32_768,
  maxStop: 8,
  maxStopChars: 256,
  maxEmbedTexts: 256,
  /** All texts of one embed call, together. */
  maxEmbedChars: 512 * 1024,
  /** Longest answer handed to the agent; a longer one is cut and reported as finish `length`. */
  maxAnswerChars: 1024 * 1024,
  maxVectorDims: 16_384,
  /** Calls kept one by one in a run's result; further calls are only counted. */
  maxCallRecords: 1000,
  /** Longest error message handed to the agent. */
  maxErrorChars: 1000
} as const

export type AgentLlmRole = 'system' | 'user' | 'assistant'

export interface AgentLlmMessage {
  role: AgentLlmRole
  content: string
}

/** One chat as the agent asked for it (after the host's checks). */
export interface AgentChatRequest {
  /** Acceptable models, most preferred first; empty means any. */
  models: string[]
  messages: AgentLlmMessage[]
  maxTokens: number
  temperature?: number
  seed?: number
  stop?: string[]
  format?: { kind: 'json' } | { kind: 'schema', schema: string }
}

export type AgentLlmRoute =
  | { kind: 'local' }
  | { kind: 'peer', peer: string, device: string }
  | { kind: 'cloud', provider: string }

export interface AgentChatResult {
  text: string
  model: string
  tokensIn: number
  tokensOut: number
  finish: 'stop' | 'length' | 'cancelled'
  route: AgentLlmRoute
}

export interface AgentEmbedResult {
  model: string
  vectors: number[][]
  tokensIn: number
  route: AgentLlmRoute
}

/** Who calls and what the run may do; `signal` aborts when the run ends for any reason. */
export interface AgentLlmCaller {
  /** The agent's digest. */
  agent: string
  /** The task the run belongs to, when the node gave one. */
  task?: string
  /** The run holds `llm:cloud`: the port may answer from a cloud provider. */
  cloud: boolean
  /** The manifest's `models`; absent means any model. */
  allow?: string[]
  signal: AbortSignal
}

/**
 * Where an agent's model calls go. A failure is thrown as an error whose `name` is one of
 * `ModelNotFound`, `BudgetExceeded`, `LlmNotPermitted`, `LlmUnavailable`, `LlmTooLarge`; any other
 * error reaches the agent as `unavailable`.
 */
export interface AgentLlm {
  chat: (request: AgentChatRequest, caller: AgentLlmCaller) => Promise<AgentChatResult>
  embed: (model: string, texts: string[], caller: AgentLlmCaller) => Promise<AgentEmbedResult>
}

/** One call of a run, as `RunResult.llm.calls` lists it. */
export interface AgentLlmCall {
  op: 'chat' | 'embed'
  route: AgentLlmRoute
  model: string
  tokensIn: number
  tokensOut: number
  /** Wall-clock time of the call, from the agent's request to the answer. */
  ms: number
}

/** A run's calls added up per route kind: the ledger's `LlmUsage`. */
export interface AgentLlmUsage {
  route: AgentLlmRoute['kind']
  calls: number
  tokensIn: number
  tokensOut: number
}

export interface RunLlmReport {
  /** Each answered call in order (at most `LLM_LIMITS.maxCallRecords`). */
  calls: AgentLlmCall[]
  /** Every answered call, per route kind, in the order local, peer, cloud; kinds unused are left out. */
  usage: AgentLlmUsage[]
}

/** The cases of the WIT `error` variant. */
export type LlmErrorCase = 'model-not-found' | 'budget-exceeded' | 'not-permitted' | 'unavailable' | 'too-large' | 'invalid-input'

/** An error as the agent receives it (jco's shape of a WIT variant). */
export interface WitLlmError {
  tag: LlmErrorCase
  val: string
}

/** The port's error codes (the hive's LLM error classes' names) and the WIT case each becomes. */
const CASE_OF_CODE: Record<string, LlmErrorCase> = {
  ModelNotFound: 'model-not-found',
  BudgetExceeded: 'budget-exceeded',
  LlmNotPermitted: 'not-permitted',
  LlmUnavailable: 'unavailable',
  LlmTooLarge: 'too-large'
}

function bound (message: string): string {
  return message.length > LLM_LIMITS.maxErrorChars ? message.slice(0, LLM_LIMITS.maxErrorChars) + '…' : message
}

export function llmError (tag: LlmErrorCase, message: string): WitLlmError {
  return { tag, val: bound(message) }
}

/** What a failure of the port becomes for the agent. */
export function llmErrorOf (err: unknown): WitLlmError {
  const name = err instanceof Error ? err.name : ''
  const message = err instanceof Error ? err.message : String(err)
  const tag = CASE_OF_CODE[name]
  if (tag !== undefined) return llmError(tag, message)
  return llmError('unavailable', `the model call failed: ${message}`)
}

// The agent's request as jco lifts it from the component (records camelCased, enums as strings,
// variants as { tag, val }, options as undefined). The worker runs agent code, so this is parsed
// like any input; a malformed request is `invalid-input`, an oversized one `too-large`.
export const WitChatRequestSchema = z.object({
  models: z.array(z.string()),
  messages: z.array(z.object({ role: z.enum(['system', 'user', 'assistant']), content: z.string() })),
  maxTokens: z.number(),
  temperature: z.number().optional(),
  seed: z.number().optional(),
  stop: z.array(z.string()),
  format: z.union([
    z.object({ tag: z.literal('json') }),
    z.object({ tag: z.literal('schema'), val: z.string() })
  ]).optional()
})
export type WitChatRequest = z.infer<typeof WitChatRequestSchema>

export const WitEmbedRequestSchema = z.object({
  model: z.string(),
  texts: z.array(z.string())
})

export interface LlmPolicy {
  /** The manifest's allowlist. */
  allow?: readonly string[]
}

/**
 * Checks a chat request against the bounds and the allowlist, and returns the port's request,
 * or the error the agent gets. An empty `models` under an allowlist means any allowed model.
 */
export function checkChat (req: WitChatRequest, policy: LlmPolicy): { ok: true, request: AgentChatRequest } | { ok: false, error: WitLlmError } {
  const L = LLM_LIMITS
  const fail = (tag: LlmErrorCase, message: string): { ok: false, error: WitLlmError } => ({ ok: false, error: llmError(tag, message) })
  if (req.models.length > L.maxModels) return fail('too-large', `the request names ${req.models.length} models; at most ${L.maxModels} are allowed`)
  if (req.models.some(m => m.length === 0 || m.length > L.maxModelNameChars)) return fail('invalid-input', `a model name must be 1 to ${L.maxModelNameChars} characters`)
  if (req.messages.length === 0) return fail('invalid-input', 'the request has no messages; give at least one')
  if (req.messages.length > L.maxMessages) return fail('too-large', `the request has ${req.messages.length} messages; at most ${L.maxMessages} are allowed`)
  if (!Number.isInteger(req.maxTokens) || req.maxTokens < 1) return fail('invalid-input', 'max-tokens must be at least 1')
  if (req.maxTokens > L.maxTokens) return fail('too-large', `max-tokens is ${req.maxTokens}; at most ${L.maxTokens} are allowed`)
  if (req.temperature !== undefined && !(req.temperature >= 0 && req.temperature <= 2)) return fail('invalid-input', 'temperature must be between 0 and 2')
  if (req.stop.length > L.maxStop || req.stop.some(s => s.length > L.maxStopChars)) {
    return fail('too-large', `at most ${L.maxStop} stop sequences of at most ${L.maxStopChars} characters are allowed`)
  }
  if (req.stop.some(s => s.length === 0)) return fail('invalid-input', 'a stop sequence must not be empty')
  const chars = req.messages.reduce((n, m) => n + m.content.length, 0) + req.stop.reduce((n, s) => n + s.length, 0) +
    (req.format?.tag === 'schema' ? req.format.val.length : 0)
  if (chars > L.maxPromptChars) return fail('too-large', `the request holds ${chars} characters of messages, stop sequences and schema; at most ${L.maxPromptChars} are allowed`)
  let models = req.models
  if (policy.allow !== undefined) {
    const outside = models.filter(m => !policy.allow?.includes(m))
    if (outside.length > 0) return fail('not-permitted', `model ${outside.map(m => `"${m}"`).join(', ')} is not in the agent's manifest "models" (${policy.allow.join(', ')})`)
    if (models.length === 0) models = [...policy.allow]
  }
  const request: AgentChatRequest = { models, messages: req.messages, maxTokens: req.maxTokens }
  if (req.temperature !== undefined) request.temperature = req.temperature
  if (req.seed !== undefined) request.seed = req.seed
  if (req.stop.length > 0) request.stop = req.stop
  if (req.format !== undefined) request.format = req.format.tag === 'json' ? { kind: 'json' } : { kind: 'schema', schema: req.format.val }
  return { ok: true, request }
}

export function checkEmbed (model: string, texts: string[], policy: LlmPolicy): WitLlmError | undefined {
  const L = LLM_LIMITS
  if (model.length === 0 || model.length > L.maxModelNameChars) return llmError('invalid-input', `a model name must be 1 to ${L.maxModelNameChars} characters`)
  if (texts.length === 0) return llmError('invalid-input', 'give at least one text to embed')
  if (texts.length > L.maxEmbedTexts) return llmError('too-large', `${texts.length} texts; at most ${L.maxEmbedTexts} are allowed in one call`)
  const chars = texts.reduce((n, t) => n + t.length, 0)
  if (chars > L.maxEmbedChars) return llmError('too-large', `the texts hold ${chars} characters; at most ${L.maxEmbedChars} are allowed in one call`)
  if (policy.allow !== undefined && !policy.allow.includes(model)) {
    return llmError('not-permitted', `model "${model}" is not in the agent's manifest "models" (${policy.allow.join(', ')})`)
  }
  return undefined
}

// What the port answers is checked too: it may relay a peer's or a provider's answer.
const RouteSchema = z.union([
  z.object({ kind: z.literal('local') }),
  z.object({ kind: z.literal('peer'), peer: z.string().max(LLM_LIMITS.maxModelNameChars), device: z.string().max(LLM_LIMITS.maxModelNameChars) }),
  z.object({ kind: z.literal('cloud'), provider: z.string().max(LLM_LIMITS.maxModelNameChars) })
])
const Count = z.int().min(0).max(2 ** 32 - 1)
const ChatResultSchema = z.object({
  text: z.string(),
  model: z.string().max(LLM_LIMITS.maxModelNameChars),
  tokensIn: Count,
  tokensOut: Count,
  finish: z.enum(['stop', 'length', 'cancelled']),
  route: RouteSchema
})
const EmbedResultSchema = z.object({
  model: z.string().max(LLM_LIMITS.maxModelNameChars),
  vectors: z.array(z.array(z.number()).max(LLM_LIMITS.maxVectorDims)).max(LLM_LIMITS.maxEmbedTexts),
  tokensIn: Count,
  route: RouteSchema
})

/** A route as the agent sees it. */
export type WitRoute = { tag: 'local' } | { tag: 'peer', val: string } | { tag: 'cloud', val: string }

export function witRoute (route: AgentLlmRoute): WitRoute {
  if (route.kind === 'local') return { tag: 'local' }
  if (route.kind === 'peer') return { tag: 'peer', val: route.device }
  return { tag: 'cloud', val: route.provider }
}

/** The port's chat answer, checked and bounded; a cloud answer for a run without `llm:cloud` is refused. */
export function acceptChat (value: unknown, cloud: boolean): { ok: true, result: AgentChatResult } | { ok: false, error: WitLlmError } {
  const parsed = ChatResultSchema.safeParse(value)
  if (!parsed.success) return { ok: false, error: llmError('unavailable', 'the model route answered with a malformed result') }
  const result = parsed.data
  if (result.route.kind === 'cloud' && !cloud) return { ok: false, error: llmError('not-permitted', 'only a cloud route could answer, and the agent\'s manifest lacks "llm:cloud"') }
  if (result.text.length > LLM_LIMITS.maxAnswerChars) {
    return { ok: true, result: { ...result, text: result.text.slice(0, LLM_LIMITS.maxAnswerChars), finish: 'length' } }
  }
  return { ok: true, result }
}

export function acceptEmbed (value: unknown, texts: number, cloud: boolean): { ok: true, result: AgentEmbedResult } | { ok: false, error: WitLlmError } {
  const parsed = EmbedResultSchema.safeParse(value)
  if (!parsed.success || parsed.data.vectors.length !== texts) {
    return { ok: false, error: llmError('unavailable', 'the model route answered with malformed vectors') }
  }
  if (parsed.data.route.kind === 'cloud' && !cloud) return { ok: false, error: llmError('not-permitted', 'only a cloud route could answer, and the agent\'s manifest lacks "llm:cloud"') }
  return { ok: true, result: parsed.data }
}

/** Adds a run's calls up per route kind. */
export function summarizeCalls (counts: Map<AgentLlmRoute['kind'], AgentLlmUsage>): AgentLlmUsage[] {
  return (['local', 'peer', 'cloud'] as const).flatMap(k => { const u = counts.get(k); return u !== undefined ? [{ ...u }] : [] })
}
