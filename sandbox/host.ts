// The host side of one run's calls: the agent's context and its model calls, each checked
// against the run's grants and bounds before anything is asked. The worker blocks the agent while
// a call is answered here; the pool aborts `signal` when the run ends (done, deadline, abort), so
// a slow model call is cancelled rather than left running for nobody.

import {
  LLM_LIMITS, WitChatRequestSchema, WitEmbedRequestSchema, acceptChat, acceptEmbed, checkChat, checkEmbed,
  llmError, llmErrorOf, summarizeCalls, witRoute
} from './llm.ts'
import { KV_LIMITS } from './kv.ts'
import { netError } from './net.ts'
import type { AgentContext } from './context.ts'
import type { AgentKvStore } from './kv.ts'
import type { NetRun, NetRunReport } from './net.ts'
import type { AgentLlm, AgentLlmCall, AgentLlmCaller, AgentLlmRoute, AgentLlmUsage, RunLlmReport } from './llm.ts'
import type { Permission } from './wit.ts'
import type { HostCall, HostReply } from './worker-protocol.ts'

/** Conversation entries one call may return, and their text together (the newest are kept). */
export const MAX_CONVERSATION_ENTRIES = 1000
export const MAX_CONVERSATION_CHARS = 4 * 1024 * 1024

export interface RunHostInit {
  grants: readonly Permission[]
  context: AgentContext
  maxContextValueChars: number
  /** The agent's digest and task, for the model port's per-agent accounting. */
  agent: string
  task?: string
  /** The manifest's `models`. */
  allow?: readonly string[]
  llm?: AgentLlm
  /** Each answered model call, as it is answered. */
  onLlmCall?: (call: AgentLlmCall) => void
  /** The run's http requests: its origins and its count. Without it the run holds no origin. */
  net?: NetRun
  /** The agent's kv store, opened at its first use. */
  kv?: () => Promise<AgentKvStore>
}

/** The port's answer, or the run's end, whichever comes first: a port that ignores its signal holds nothing up. */
async function untilEnd<T> (answer: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw new Error('the run ended')
  let onAbort!: () => void
  const ended = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new Error('the run ended')) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([answer, ended])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

export interface RunHost {
  handle: (call: HostCall, signal: AbortSignal) => Promise<HostReply>
  /** The run's answered model calls so far. */
  llm: () => RunLlmReport
  /** The run's http requests so far, per origin. */
  net: () => NetRunReport
}

const CONTEXT_NEEDS: Record<string, Permission> = { get: 'context:read', conversation: 'context:read', set: 'context:write', append: 'context:write' }

export function createRunHost (init: RunHostInit): RunHost {
  const calls: AgentLlmCall[] = []
  const usage = new Map<AgentLlmRoute['kind'], AgentLlmUsage>()
  const cloud = init.grants.includes('llm:cloud')

  function record (op: AgentLlmCall['op'], route: AgentLlmRoute, model: string, tokensIn: number, tokensOut: number, started: number): void {
    const call: AgentLlmCall = { op, route, model, tokensIn, tokensOut, ms: performance.now() - started }
    if (calls.length < LLM_LIMITS.maxCallRecords) calls.push(call)
    init.onLlmCall?.({ ...call })
    const u = usage.get(route.kind) ?? { route: route.kind, calls: 0, tokensIn: 0, tokensOut: 0 }
    u.calls++
    u.tokensIn += tokensIn
    u.tokensOut += tokensOut
    usage.set(route.kind, u)
  }

  function caller (signal: AbortSignal): AgentLlmCaller {
    return {
      agent: init.agent,
      ...(init.task !== undefined ? { task: init.task } : {}),
      cloud,
      ...(init.allow !== undefined ? { allow: [...init.allow] } : {}),
      signal
    }
  }

  async function context (call: Extract<HostCall, { op: 'get' | 'set' | 'append' | 'conversation' }>): Promise<HostReply> {
    const need = CONTEXT_NEEDS[call.op] as Permission
    if (!init.grants.includes(need)) return { ok: false, error: `permission "${need}" is not granted` }
    const ctx = init.context
    try {
      if (call.op === 'conversation') {
        if (ctx.readConversation === undefined) return { ok: false, error: 'this context cannot list its conversation' }
        const last = Math.min(Math.max(0, Math.floor(call.last)), MAX_CONVERSATION_ENTRIES)
        const entries = last === 0 ? [] : (await ctx.readConversation(last)).slice(-last)
        let chars = 0
        let from = entries.length
        while (from > 0 && chars + (entries[from - 1]?.text.length ?? 0) + (entries[from - 1]?.role.length ?? 0) <= MAX_CONVERSATION_CHARS) {
          from--
          chars += (entries[from]?.text.length ?? 0) + (entries[from]?.role.length ?? 0)
        }
        return { ok: true, value: entries.slice(from).map(e => ({ role: String(e.role), text: String(e.text) })) }
      }
      const [a = '', b = ''] = call.args
      if (a.length > init.maxContextValueChars || b.length > init.maxContextValueChars) {
        return { ok: false, error: `context keys and values are limited to ${init.maxContextValueChars} characters` }
      }
      if (call.op === 'get') return { ok: true, value: (await ctx.get(a)) ?? null }
      if (call.op === 'set') await ctx.set(a, b)
      else await ctx.append(a)
      return { ok: true }
    } catch (err) {
      return { ok: false, error: `context ${call.op} failed: ${err instanceof Error ? err.message : String(err)}` }
    }
  }

  async function chat (raw: unknown, signal: AbortSignal): Promise<HostReply> {
    const parsed = WitChatRequestSchema.safeParse(raw)
    if (!parsed.success) return { ok: false, error: llmError('invalid-input', 'the chat request is malformed') }
    const checked = checkChat(parsed.data, init.allow !== undefined ? { allow: init.allow } : {})
    if (!checked.ok) return { ok: false, error: checked.error }
    if (init.llm === undefined) return { ok: false, error: llmError('unavailable', 'this node has no model service') }
    const started = performance.now()
    let answer: unknown
    try {
      answer = await untilEnd(init.llm.chat(checked.request, caller(signal)), signal)
    } catch (err) {
      return { ok: false, error: llmErrorOf(err) }
    }
    const accepted = acceptChat(answer, cloud)
    if (!accepted.ok) return { ok: false, error: accepted.error }
    const r = accepted.result
    record('chat', r.route, r.model, r.tokensIn, r.tokensOut, started)
    return { ok: true, value: { text: r.text, model: r.model, tokensIn: r.tokensIn, tokensOut: r.tokensOut, finish: r.finish, route: witRoute(r.route) } }
  }

  async function embed (rawModel: unknown, rawTexts: unknown, signal: AbortSignal): Promise<HostReply> {
    const parsed = WitEmbedRequestSchema.safeParse({ model: rawModel, texts: rawTexts })
    if (!parsed.success) return { ok: false, error: llmError('invalid-input', 'the embed request is malformed') }
    const { model, texts } = parsed.data
    const refused = checkEmbed(model, texts, init.allow !== undefined ? { allow: init.allow } : {})
    if (refused !== undefined) return { ok: false, error: refused }
    if (init.llm === undefined) return { ok: false, error: llmError('unavailable', 'this node has no model service') }
    const started = performance.now()
    let answer: unknown
    try {
      answer = await untilEnd(init.llm.embed(model, texts, caller(signal)), signal)
    } catch (err) {
      return { ok: false, error: llmErrorOf(err) }
    }
    const accepted = acceptEmbed(answer, texts.length, cloud)
    if (!accepted.ok) return { ok: false, error: accepted.error }
    const r = accepted.result
    record('embed', r.route, r.model, r.tokensIn, 0, started)
    return { ok: true, value: { model: r.model, vectors: r.vectors, tokensIn: r.tokensIn, route: witRoute(r.route) } }
  }

  async function request (call: Extract<HostCall, { op: 'request' }>, signal: AbortSignal): Promise<HostReply> {
    if (!init.grants.includes('net') || init.net === undefined) return { ok: false, error: netError('not-permitted', 'this run holds no net: origin') }
    const { method, url, headers, body, options } = call
    const opts = (options ?? {}) as { timeoutMs?: unknown, maxBytes?: unknown }
    const okHeaders = Array.isArray(headers) && headers.every(h => typeof h?.name === 'string' && typeof h?.value === 'string')
    const okOpt = (v: unknown): boolean => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0)
    if (typeof method !== 'string' || typeof url !== 'string' || !okHeaders || !(body instanceof Uint8Array) || !okOpt(opts.timeoutMs) || !okOpt(opts.maxBytes)) {
      return { ok: false, error: netError('invalid-input', 'the request is malformed') }
    }
    const answer = await init.net.request({
      method,
      url,
      headers: headers as Array<{ name: string, value: string }>,
      body,
      ...(typeof opts.timeoutMs === 'number' ? { timeoutMs: opts.timeoutMs } : {}),
      ...(typeof opts.maxBytes === 'number' ? { maxBytes: opts.maxBytes } : {})
    }, signal)
    return answer.ok ? { ok: true, value: answer.value } : { ok: false, error: answer.error }
  }

  const KV_NEEDS: Record<string, Permission> = { 'kv-get': 'kv:read', 'kv-list': 'kv:read', 'kv-set': 'kv:write', 'kv-delete': 'kv:write' }

  async function kv (call: Extract<HostCall, { op: 'kv-get' | 'kv-set' | 'kv-delete' | 'kv-list' }>): Promise<HostReply> {
    const need = KV_NEEDS[call.op] as Permission
    if (!init.grants.includes(need) || init.kv === undefined) return { ok: false, error: `permission "${need}" is not granted` }
    const [a, b] = call.args
    if (typeof a !== 'string') return { ok: false, error: 'a key (or prefix) must be a string' }
    if (a.length > KV_LIMITS.maxKeyChars) return { ok: false, error: `kv keys are limited to ${KV_LIMITS.maxKeyChars} characters` }
    try {
      const store = await init.kv()
      switch (call.op) {
        case 'kv-get': return { ok: true, value: (await store.get(a)) ?? null }
        case 'kv-delete': return { ok: true, value: await store.delete(a) }
        case 'kv-set':
          if (typeof b !== 'string') return { ok: false, error: 'a value must be a string' }
          if (a.length === 0) return { ok: false, error: 'a kv key must not be empty' }
          if (b.length > KV_LIMITS.maxValueChars) return { ok: false, error: `kv values are limited to ${KV_LIMITS.maxValueChars} characters` }
          await store.set(a, b)
          return { ok: true }
        case 'kv-list': {
          const limit = typeof b === 'number' && Number.isInteger(b) && b >= 0 ? Math.min(b, KV_LIMITS.maxList) : KV_LIMITS.maxList
          return { ok: true, value: limit === 0 ? [] : (await store.list(a, limit)).slice(0, limit) }
        }
      }
    } catch (err) {
      return { ok: false, error: `kv ${call.op.slice(3)} failed: ${err instanceof Error ? err.message : String(err)}` }
    }
  }

  return {
    async handle (call, signal) {
      switch (call.op) {
        case 'request':
          return await request(call, signal)
        case 'kv-get':
        case 'kv-set':
        case 'kv-delete':
        case 'kv-list':
          return await kv(call)
        case 'chat':
        case 'embed':
          // The import is refused at load without `llm`; this holds should a grant change.
          if (!init.grants.includes('llm')) return { ok: false, error: llmError('not-permitted', 'permission "llm" is not granted') }
          return call.op === 'chat' ? await chat(call.request, signal) : await embed(call.model, call.texts, signal)
        default:
          return await context(call)
      }
    },
    llm () {
      return { calls: calls.map(c => ({ ...c })), usage: summarizeCalls(usage) }
    },
    net () {
      return init.net?.report() ?? { requests: 0, origins: [] }
    }
  }
}
