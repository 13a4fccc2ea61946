// The node's side of LLM calls: the router built from this device's backends, capability
// gossip (who holds which model), `/hive/llm/1.0.0`, the cloud keys this device holds, and the
// budget whose caps are a signed setting replicated in the reserved `hive.budget` context.
//
// Cloud keys live in `<data>/cloud.json`, mode 0600, and nowhere else: never gossiped, never
// in a context, a ledger record or a log line.

import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import {
  BUDGET_CONTEXT, budgetFromState, budgetToState, callPeer, capsOf, createBudget, createCloudClient, createEmbeddedBackend, createLlmRouter,
  createOllamaBackend, newer, openBudget, serveLlm, signBudget
} from '../protocol/llm/index.ts'
import { InvalidConfigError } from './errors.ts'
import type { BudgetBody, Budget, BudgetStatus, CloudProvider, LlmCallEvent, LlmRouter, LlmRouterInit, ModelBackend, ModelPrice, PeerCaller } from '../protocol/llm/index.ts'
import type { Capabilities } from '../protocol/capabilities/index.ts'
import type { PeerGate, RecordSigner, ServedProtocol } from '../protocol/index.ts'
import type { ContextStore } from '../crdt/index.ts'
import type { HiveLibp2p } from './libp2p.ts'
import type { Logger } from './logger.ts'
import { writePrivateFile } from './private-file.ts'

/** A provider key as this device holds it. */
export interface CloudKey {
  provider: string
  key: string
  baseUrl?: string
}

/** Where `cloud set openai` sends calls when no --base-url is given. */
export const OPENAI_BASE_URL = 'https://api.openai.com/v1'

export interface NodeLlmInit {
  dataDir: string
  /** This device's backends, Ollama first; default Ollama at `ollamaUrl`, then the embedded engine on `<data>/models`. */
  backends?: ModelBackend[]
  /** Ollama's base URL; null: never ask Ollama. */
  ollamaUrl?: string | null
  /** Builds a client for a provider's OpenAI-compatible API from a held key; default the real client. */
  cloudClient?: (key: CloudKey) => CloudProvider['backend']
  /** USD per million tokens, by model; else `llm.prices` in `<data>/config.json`. */
  prices?: Record<string, ModelPrice>
  router?: LlmRouterInit
  /** Longest one inbound peer call may run here. */
  serveTimeoutMs?: number
}

export interface NodeLlmComponents {
  libp2p: HiveLibp2p
  capabilities: Capabilities
  contexts: ContextStore
  gate: PeerGate
  signer: RecordSigner
  hiveId: () => string
  isMember: (peerId: string) => boolean
  members: () => number
  db: { get: (key: string) => Promise<string | undefined>, put: (key: string, value: string) => Promise<void> }
  log: Logger
  onCall?: (event: LlmCallEvent) => void
  /** Cloud caps per agent digest from the hive's budgets (micro-USD a day); the lower of it and the LLM setting's applies. */
  agentCaps?: () => Record<string, number>
}

const PROVIDER = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'a provider name: lowercase letters, digits, - and _')
const CloudFile = z.record(PROVIDER, z.strictObject({ key: z.string().min(1).max(4096), baseUrl: z.url().max(512).optional() }))
const Price = z.strictObject({ in: z.number().min(0).max(1e6), out: z.number().min(0).max(1e6) })
const ConfigFile = z.object({ llm: z.object({ prices: z.record(z.string().min(1).max(128), Price).optional() }).loose().optional() }).loose()
const SpendSchema = z.object({ day: z.string(), members: z.number().int().min(1), total: z.number().int().min(0), agents: z.record(z.string(), z.number().int().min(0)) })

/** `<data>/models`: the GGUF files the embedded engine loads. */
export function modelsDir (dataDir: string): string {
  return join(dataDir, 'models')
}

export function cloudKeysPath (dataDir: string): string {
  return join(dataDir, 'cloud.json')
}

async function readJson (file: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new InvalidConfigError(`${file} is not readable JSON: ${(err as Error).message}`)
  }
}

export interface NodeLlm {
  readonly router: LlmRouter
  readonly budget: Budget
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Signs and replicates new caps; `agents` entries of 0 remove that agent's cap. */
  setBudget: (change: { dayMicroUsd?: number, agents?: Record<string, number> }) => Promise<BudgetStatus>
  budgetSetting: () => BudgetBody | undefined
  cloudSet: (key: CloudKey) => Promise<void>
  cloudRemove: (provider: string) => Promise<boolean>
  /** Providers held, with their base URLs; never the keys. */
  cloudList: () => Array<{ provider: string, baseUrl?: string }>
}

export function createNodeLlm (init: NodeLlmInit, components: NodeLlmComponents): NodeLlm {
  const { libp2p, capabilities, log } = components
  const backends = init.backends ?? [
    ...(init.ollamaUrl === null ? [] : [createOllamaBackend(init.ollamaUrl != null ? { baseUrl: init.ollamaUrl } : {})]),
    createEmbeddedBackend({ modelsDir: modelsDir(init.dataDir) })
  ]
  const cloudClient = init.cloudClient ?? ((key: CloudKey) => createCloudClient({
    provider: key.provider,
    baseUrl: key.baseUrl ?? (key.provider === 'openai' ? OPENAI_BASE_URL : ''),
    apiKey: key.key
  }))
  let prices: Record<string, ModelPrice> = init.prices ?? {}
  let keys: Record<string, { key: string, baseUrl?: string }> = {}
  let providers: CloudProvider[] = []
  let setting: BudgetBody | undefined
  let served: ServedProtocol | undefined
  let stopUpdates: (() => void) | undefined
  let reading: Promise<void> = Promise.resolve()

  const budget = createBudget({
    caps: () => {
      const caps = capsOf(setting)
      for (const [agent, micro] of Object.entries(components.agentCaps?.() ?? {})) caps.agents[agent] = Math.min(micro, caps.agents[agent] ?? micro)
      return caps
    },
    members: components.members,
    prices: () => prices,
    store: {
      load: async () => {
        const raw = await components.db.get('spend')
        if (raw == null) return undefined
        const parsed = SpendSchema.safeParse(JSON.parse(raw))
        return parsed.success ? parsed.data : undefined
      },
      save: async (spend) => { await components.db.put('spend', JSON.stringify(spend)) }
    }
  })

  const peerCall = (async (peerId: string, message: Parameters<typeof callPeer>[2], options: Parameters<typeof callPeer>[3]) =>
    callPeer(libp2p, peerIdFromString(peerId), message as never, options)) as unknown as PeerCaller

  const router = createLlmRouter(init.router ?? {}, {
    backends: () => backends,
    peers: () => capabilities.view()
      .filter(e => !e.self && components.isMember(e.peerId) && e.caps.models.length > 0)
      .map(e => ({ peerId: e.peerId, name: e.caps.name, models: e.caps.models, load: e.caps.load / Math.max(1, e.caps.cores), running: e.caps.running, gpus: e.caps.gpus?.length ?? 0 })),
    callPeer: peerCall,
    cloud: () => providers,
    budget,
    log: log.child('llm'),
    ...(components.onCall != null ? { onCall: components.onCall } : {})
  })

  function rebuildProviders (): void {
    providers = Object.entries(keys).map(([provider, k]) => ({ provider, backend: cloudClient({ provider, key: k.key, ...(k.baseUrl != null ? { baseUrl: k.baseUrl } : {}) }) }))
  }

  /** Adopts the newest valid setting from members of this hive, never an older one than held. */
  async function readSetting (): Promise<void> {
    const ctx = components.contexts.get(BUDGET_CONTEXT)
    if (ctx == null) return
    for (const [key, value] of Object.entries(ctx.view().state)) {
      if (!key.startsWith('budget/')) continue
      const entry = budgetFromState(value)
      if (entry == null) continue
      try {
        const body = await openBudget(entry)
        if (body.hive !== components.hiveId() || !components.isMember(body.by) || `budget/${body.by}` !== key) continue
        if (newer(body, setting)) {
          setting = body
          await components.db.put('setting', JSON.stringify(budgetToState(entry)))
        }
      } catch (err) {
        log.debug(`llm: ignoring budget entry ${key}: ${(err as Error).message}`)
      }
    }
  }

  function scheduleRead (): void {
    reading = reading.then(readSetting).catch((err: Error) => { log.warn(`llm: reading the budget setting failed: ${err.message}`) })
  }

  return {
    router,
    budget,
    async start () {
      const config = ConfigFile.safeParse(await readJson(join(init.dataDir, 'config.json')) ?? {})
      if (!config.success) throw new InvalidConfigError(`config.json: llm.prices must map model names to { in, out } in USD per million tokens: ${config.error.issues[0]?.message ?? ''}`)
      if (init.prices == null) prices = config.data.llm?.prices ?? {}
      const cloud = CloudFile.safeParse(await readJson(cloudKeysPath(init.dataDir)) ?? {})
      if (!cloud.success) throw new InvalidConfigError(`${cloudKeysPath(init.dataDir)} is damaged; remove it and set the keys again with "hive-node cloud set"`)
      keys = cloud.data
      rebuildProviders()
      await budget.start()
      const stored = await components.db.get('setting')
      if (stored != null) {
        const entry = budgetFromState(JSON.parse(stored))
        if (entry != null) setting = await openBudget(entry).catch(() => undefined)
      }
      // the context is made by the first budget set here or arrives from a member that set one:
      // a device that never sets a budget does not list an empty settings context among its own
      stopUpdates = components.contexts.events.update.add((event) => { if (event.id === BUDGET_CONTEXT) scheduleRead() })
      scheduleRead()
      await reading
      served = await serveLlm(libp2p, router, {
        log: log.child('llm'),
        gate: components.gate,
        ...(init.serveTimeoutMs != null ? { callTimeoutMs: init.serveTimeoutMs } : {})
      })
    },
    async stop () {
      stopUpdates?.()
      await served?.stop()
      await reading
      await Promise.all(backends.map(async b => { await b.close().catch(() => {}) }))
    },
    async setBudget (change) {
      await reading
      const agents = { ...(setting?.agents ?? {}) }
      for (const [agent, micro] of Object.entries(change.agents ?? {})) {
        if (micro === 0) delete agents[agent]
        else agents[agent] = micro
      }
      const day = change.dayMicroUsd ?? setting?.day
      const entry = await signBudget({
        hive: components.hiveId(),
        at: Math.max(Date.now(), (setting?.at ?? 0) + 1),
        ...(day != null ? { day } : {}),
        agents
      }, components.signer)
      const ctx = await components.contexts.open(BUDGET_CONTEXT)
      await ctx.set(`budget/${components.signer.peerId}`, budgetToState(entry))
      scheduleRead()
      await reading
      return budget.status()
    },
    budgetSetting: () => setting,
    async cloudSet (key) {
      PROVIDER.parse(key.provider)
      if (key.baseUrl == null && key.provider !== 'openai') throw new InvalidConfigError(`give the base URL of ${key.provider}'s OpenAI-compatible API with --base-url`)
      keys = { ...keys, [key.provider]: { key: key.key, ...(key.baseUrl != null ? { baseUrl: key.baseUrl } : {}) } }
      await writePrivateFile(cloudKeysPath(init.dataDir), JSON.stringify(keys, null, 2) + '\n')
      rebuildProviders()
    },
    async cloudRemove (provider) {
      if (keys[provider] == null) return false
      const { [provider]: _gone, ...rest } = keys
      keys = rest
      await writePrivateFile(cloudKeysPath(init.dataDir), JSON.stringify(keys, null, 2) + '\n')
      rebuildProviders()
      return true
    },
    cloudList: () => Object.entries(keys).map(([provider, k]) => ({ provider, ...(k.baseUrl != null ? { baseUrl: k.baseUrl } : {}) }))
  }
}
