// The waterfall every chat and embed call of the hive runs through, whoever calls (an agent in
// the sandbox, `hive-node ask`):
//
//   0. allowlist: the acceptable models are the request's, narrowed to the caller's `allow`
//      list; a request for nothing the caller may use is refused (LlmNotPermitted).
//   1. this device: the first backend (Ollama before the embedded engine) holding an acceptable
//      model, in the request's order of preference.
//   2. another member holding one, by capability gossip: a device with a GPU first, then the
//      least loaded; over `/hive/llm/1.0.0`. A peer that fails (unreachable, reset, silent for
//      `idleTimeoutMs`) is cooled down for `cooldownMs`, and the next route is tried.
//   3. a cloud provider: only when the caller may leave the hive (`llm:cloud`, `--cloud`), this
//      device holds the provider's key, and the budget reserves the worst case first.
//
// The router is the only retry loop: each route is tried once per call. The caller's signal
// (an agent's deadline) aborts whichever route is running.

import { BudgetExceededError, LlmNotPermittedError, LlmUnavailableError, ModelNotFoundError } from './errors.ts'
import { estimatePromptTokens } from './budget.ts'
import type { Budget } from './budget.ts'
import type { LlmRequestMessage, LocalModels, PeerChatAnswer, PeerEmbedAnswer } from './protocol.ts'
import type { ChatRequest, ChatResult, EmbedResult, LlmCaller, LlmRoute, LlmService, ModelBackend, ModelInfo } from './types.ts'

/** What the router needs to know of a member, from capability gossip. */
export interface LlmPeer {
  peerId: string
  name: string
  models: string[]
  /** Load per core, and hive tasks running there. */
  load: number
  running: number
  gpus: number
}

/** A cloud provider whose key this device holds, through a client that speaks its API. */
export interface CloudProvider {
  provider: string
  backend: Pick<ModelBackend, 'chat' | 'embed'>
}

export interface PeerCaller {
  (peerId: string, message: LlmRequestMessage & { t: 'chat' }, options: { signal?: AbortSignal, onToken?: (text: string) => void, timeoutMs: number, idleMs: number }): Promise<PeerChatAnswer>
  (peerId: string, message: LlmRequestMessage & { t: 'embed' }, options: { signal?: AbortSignal, timeoutMs: number, idleMs: number }): Promise<PeerEmbedAnswer>
}

/** One call as the router saw it: where it ran and what it used. */
export interface LlmCallEvent {
  route: LlmRoute
  kind: 'chat' | 'embed'
  model: string
  tokensIn: number
  tokensOut: number
  costMicroUsd: number
  agent?: string
  task?: string
  /** Routes tried before this one and why they failed. */
  skipped: string[]
}

export interface LlmRouterInit {
  /** Longest a peer call may take. Default 5 min. */
  peerTimeoutMs?: number
  /** Longest a peer may be silent mid-call. Default 30 s. */
  idleTimeoutMs?: number
  /** How long a failed peer is left out. Default 30 s. */
  cooldownMs?: number
  /** How long a backend's model list is reused. Default 5 s. */
  modelsCacheMs?: number
}

export interface LlmRouterComponents {
  /** This device's backends, Ollama first. */
  backends: () => ModelBackend[]
  /** Live members other than this device. */
  peers: () => LlmPeer[]
  callPeer: PeerCaller
  /** Providers whose keys this device holds. */
  cloud: () => CloudProvider[]
  budget: Budget
  log?: { debug: (message: string) => void, warn: (message: string) => void }
  onCall?: (event: LlmCallEvent) => void
  now?: () => number
}

/** A caller that also hears which route each attempt takes (for `ask`'s stream). */
export interface RouterCaller extends LlmCaller {
  onRoute?: (route: LlmRoute) => void
}

export interface LlmRouter extends LlmService, LocalModels {
  chat: (request: ChatRequest, caller: RouterCaller) => Promise<ChatResult>
  embed: (model: string, texts: string[], caller: RouterCaller) => Promise<EmbedResult>
  /** Every model this device's backends hold. */
  localModels: (options?: { signal?: AbortSignal }) => Promise<ModelInfo[]>
  /** Peers left out after a failure, and until when. */
  cooldowns: () => Array<{ peerId: string, until: number }>
}

/** Ollama names `llama3` and `llama3:latest` alike. */
export function sameModel (a: string, b: string): boolean {
  if (a === b) return true
  const bare = (m: string): string => m.endsWith(':latest') ? m.slice(0, -':latest'.length) : m
  return bare(a) === bare(b)
}

function holds (held: string[], acceptable: string[]): string | undefined {
  if (acceptable.length === 0) return held[0]
  for (const want of acceptable) {
    const match = held.find(h => sameModel(h, want))
    if (match != null) return match
  }
  return undefined
}

/** The request's models narrowed to the caller's allowlist. */
export function acceptableModels (requested: string[], allow?: string[]): string[] {
  if (allow == null) return requested
  if (requested.length === 0) return [...allow]
  const out = requested.filter(m => allow.some(a => sameModel(a, m)))
  if (out.length === 0) {
    throw new LlmNotPermittedError(`the agent may use only ${allow.join(', ')}, and asked for ${requested.join(', ')}; add the model to the manifest's models list`)
  }
  return out
}

function describe (route: LlmRoute): string {
  return route.kind === 'local' ? 'local' : route.kind === 'peer' ? `peer ${route.device}` : `cloud ${route.provider}`
}

export function createLlmRouter (init: LlmRouterInit, components: LlmRouterComponents): LlmRouter {
  const peerTimeoutMs = init.peerTimeoutMs ?? 300_000
  const idleMs = init.idleTimeoutMs ?? 30_000
  const cooldownMs = init.cooldownMs ?? 30_000
  const cacheMs = init.modelsCacheMs ?? 5_000
  const now = components.now ?? Date.now
  const cooling = new Map<string, number>()
  const listed = new WeakMap<ModelBackend, { at: number, models: ModelInfo[] }>()

  async function modelsOf (backend: ModelBackend, signal?: AbortSignal): Promise<ModelInfo[]> {
    const cached = listed.get(backend)
    if (cached != null && now() - cached.at < cacheMs) return cached.models
    try {
      const models = await backend.models({ signal })
      listed.set(backend, { at: now(), models })
      return models
    } catch (err) {
      // a backend that is not there (no Ollama running) is asked again only when the cache
      // lapses, not on every capability report and every call
      components.log?.debug(`llm: ${backend.source} did not list its models: ${(err as Error).message}`)
      if (signal?.aborted !== true) listed.set(backend, { at: now(), models: [] })
      return []
    }
  }

  async function find (models: string[], options: { signal?: AbortSignal } = {}): Promise<{ backend: ModelBackend, model: string } | undefined> {
    for (const backend of components.backends()) {
      const held = (await modelsOf(backend, options.signal)).map(m => m.name)
      const model = holds(held, models)
      if (model != null) return { backend, model }
    }
    return undefined
  }

  function candidatePeers (models: string[]): Array<{ peer: LlmPeer, model: string }> {
    const t = now()
    for (const [peer, until] of cooling) if (until <= t) cooling.delete(peer)
    const out: Array<{ peer: LlmPeer, model: string }> = []
    for (const peer of components.peers()) {
      if (cooling.has(peer.peerId)) continue
      const model = holds(peer.models, models)
      if (model != null) out.push({ peer, model })
    }
    // a GPU answers faster than any CPU; among equals, the least busy
    return out.sort((a, b) => (b.peer.gpus > 0 ? 1 : 0) - (a.peer.gpus > 0 ? 1 : 0) ||
      (a.peer.load + a.peer.running) - (b.peer.load + b.peer.running) || a.peer.name.localeCompare(b.peer.name))
  }

  function cool (peerId: string): void {
    cooling.set(peerId, now() + cooldownMs)
  }

  function cloudModel (models: string[]): string | undefined {
    if (models.length > 0) return models.find(m => components.budget.price(m) != null) ?? models[0]
    return undefined
  }

  /** Runs the waterfall with one attempt function per route kind. */
  async function waterfall<T> (kind: 'chat' | 'embed', models: string[], caller: RouterCaller, attempt: {
    local: (backend: ModelBackend, model: string) => Promise<T>
    peer: (peer: LlmPeer, model: string) => Promise<T>
    cloud: (provider: CloudProvider, model: string) => Promise<T>
  }): Promise<T> {
    const skipped: string[] = []
    let failure: Error | undefined
    const signal = caller.signal
    signal?.throwIfAborted()

    const local = await find(models, { signal })
    if (local != null) {
      caller.onRoute?.({ kind: 'local' })
      try {
        return await attempt.local(local.backend, local.model)
      } catch (err) {
        if (signal?.aborted === true) throw signal.reason
        failure = err as Error
        skipped.push(`local ${local.backend.source}: ${failure.name}: ${failure.message}`)
        components.log?.warn(`llm: local ${local.backend.source} failed on ${local.model}: ${failure.message}`)
      }
    }

    for (const { peer, model } of candidatePeers(models)) {
      caller.onRoute?.({ kind: 'peer', peer: peer.peerId, device: peer.name })
      try {
        return await attempt.peer(peer, model)
      } catch (err) {
        if (signal?.aborted === true) throw signal.reason
        failure = err as Error
        skipped.push(`peer ${peer.name}: ${failure.name}: ${failure.message}`)
        // a peer whose gossip was stale is no fault of its own
        if (!(err instanceof ModelNotFoundError)) cool(peer.peerId)
        components.log?.debug(`llm: peer ${peer.name} failed on ${model}: ${failure.message}`)
      }
    }

    const providers = components.cloud()
    if (caller.cloud && providers.length > 0) {
      const model = cloudModel(models)
      if (model == null) {
        skipped.push('cloud: the request names no model, and a cloud call needs one')
      } else {
        for (const provider of providers) {
          caller.onRoute?.({ kind: 'cloud', provider: provider.provider })
          try {
            return await attempt.cloud(provider, model)
          } catch (err) {
            if (signal?.aborted === true) throw signal.reason
            failure = err as Error
            skipped.push(`cloud ${provider.provider}: ${failure.name}: ${failure.message}`)
            if (err instanceof BudgetExceededError) break
          }
        }
      }
    } else if (caller.cloud) {
      skipped.push('cloud: this device holds no provider key (hive-node cloud set)')
    }

    const wanted = models.length > 0 ? models.join(', ') : 'any model'
    if (failure instanceof BudgetExceededError) throw failure
    if (failure != null) {
      throw new LlmUnavailableError(`no route answered the ${kind} call for ${wanted}: ${skipped.join('; ')}`)
    }
    throw new ModelNotFoundError(`no device in the hive holds ${wanted}${caller.cloud ? '' : ' (and the call may not use a cloud)'}${skipped.length > 0 ? `: ${skipped.join('; ')}` : ''}; ` +
      'add one with "hive-node models add FILE.gguf" or pull it into Ollama')
  }

  function emit (event: Omit<LlmCallEvent, 'agent' | 'task'>, caller: RouterCaller): void {
    components.onCall?.({ ...event, ...(caller.agent != null ? { agent: caller.agent } : {}), ...(caller.task != null ? { task: caller.task } : {}) })
  }

  return {
    find,
    async localModels (options = {}) {
      const out: ModelInfo[] = []
      for (const backend of components.backends()) out.push(...await modelsOf(backend, options.signal))
      return out
    },
    cooldowns () {
      const t = now()
      return [...cooling].filter(([, until]) => until > t).map(([peerId, until]) => ({ peerId, until }))
    },
    async chat (request, caller) {
      const models = acceptableModels(request.models, caller.allow)
      const req: ChatRequest = { ...request, models }
      const signal = caller.signal
      const onToken = caller.onToken
      return waterfall<ChatResult>('chat', models, caller, {
        local: async (backend, model) => {
          const r = await backend.chat(model, req, { ...(signal != null ? { signal } : {}), ...(onToken != null ? { onToken } : {}) })
          const result: ChatResult = { ...r, route: { kind: 'local' }, costMicroUsd: 0 }
          emit({ route: result.route, kind: 'chat', model: r.model, tokensIn: r.tokensIn, tokensOut: r.tokensOut, costMicroUsd: 0, skipped: [] }, caller)
          return result
        },
        peer: async (peer, model) => {
          const r = await components.callPeer(peer.peerId, { t: 'chat', request: { ...req, models: [model] } }, {
            ...(signal != null ? { signal } : {}), ...(onToken != null ? { onToken } : {}), timeoutMs: peerTimeoutMs, idleMs
          })
          const route: LlmRoute = { kind: 'peer', peer: peer.peerId, device: peer.name }
          emit({ route, kind: 'chat', model: r.model, tokensIn: r.tokensIn, tokensOut: r.tokensOut, costMicroUsd: 0, skipped: [] }, caller)
          return { text: r.text, model: r.model, tokensIn: r.tokensIn, tokensOut: r.tokensOut, finish: r.finish, route, costMicroUsd: 0 }
        },
        cloud: async (provider, model) => {
          const promptTokens = estimatePromptTokens(req.messages)
          const reservation = components.budget.reserve({ ...(caller.agent != null ? { agent: caller.agent } : {}), model, promptTokens, maxTokens: req.maxTokens })
          let streamed = 0
          let r
          try {
            r = await provider.backend.chat(model, { ...req, models: [model] }, {
              ...(signal != null ? { signal } : {}),
              onToken: (text) => { streamed++; onToken?.(text) }
            })
          } catch (err) {
            // nothing came back: nothing was billed; something did: count the worst case
            if (streamed === 0) components.budget.release(reservation)
            else await components.budget.settle(reservation, { tokensIn: promptTokens, tokensOut: req.maxTokens })
            throw err
          }
          const costMicroUsd = await components.budget.settle(reservation, { tokensIn: r.tokensIn, tokensOut: r.tokensOut })
          const route: LlmRoute = { kind: 'cloud', provider: provider.provider }
          emit({ route, kind: 'chat', model: r.model, tokensIn: r.tokensIn, tokensOut: r.tokensOut, costMicroUsd, skipped: [] }, caller)
          return { ...r, route, costMicroUsd }
        }
      })
    },
    async embed (model, texts, caller) {
      const models = acceptableModels([model], caller.allow)
      const signal = caller.signal
      return waterfall<EmbedResult>('embed', models, caller, {
        local: async (backend, held) => {
          const r = await backend.embed(held, texts, { ...(signal != null ? { signal } : {}) })
          emit({ route: { kind: 'local' }, kind: 'embed', model: held, tokensIn: r.tokensIn, tokensOut: 0, costMicroUsd: 0, skipped: [] }, caller)
          return { model: held, vectors: r.vectors, tokensIn: r.tokensIn, route: { kind: 'local' } }
        },
        peer: async (peer, held) => {
          const r = await components.callPeer(peer.peerId, { t: 'embed', model: held, texts }, { ...(signal != null ? { signal } : {}), timeoutMs: peerTimeoutMs, idleMs })
          const route: LlmRoute = { kind: 'peer', peer: peer.peerId, device: peer.name }
          emit({ route, kind: 'embed', model: r.model, tokensIn: r.tokensIn, tokensOut: 0, costMicroUsd: 0, skipped: [] }, caller)
          return { model: r.model, vectors: r.vectors, tokensIn: r.tokensIn, route }
        },
        cloud: async (provider, held) => {
          const promptTokens = estimatePromptTokens(texts.map(content => ({ content })))
          const reservation = components.budget.reserve({ ...(caller.agent != null ? { agent: caller.agent } : {}), model: held, promptTokens, maxTokens: 0 })
          let r
          try {
            r = await provider.backend.embed(held, texts, { ...(signal != null ? { signal } : {}) })
          } catch (err) {
            components.budget.release(reservation)
            throw err
          }
          const costMicroUsd = await components.budget.settle(reservation, { tokensIn: r.tokensIn, tokensOut: 0 })
          const route: LlmRoute = { kind: 'cloud', provider: provider.provider }
          emit({ route, kind: 'embed', model: held, tokensIn: r.tokensIn, tokensOut: 0, costMicroUsd, skipped: [] }, caller)
          return { model: held, vectors: r.vectors, tokensIn: r.tokensIn, route }
        }
      })
    }
  }
}

export { describe as describeRoute }
