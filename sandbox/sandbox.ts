// The sandbox service: takes component bytes, judges them, compiles them once, and runs them in
// the worker pool under their manifest's limits with only the host functions they were granted.

import { availableParallelism } from 'node:os'
import { agentDigest, checkImports, checkWorld, inspectAgentBytes } from './agent.ts'
import { PAGE_BYTES, capMemory } from './binary.ts'
import { createTranspileCache, jcoVersion } from './cache.ts'
import { createMemoryContext } from './context.ts'
import { LimitNotAllowedError, SandboxNotRunningError } from './errors.ts'
import { createRunHost } from './host.ts'
import { NET_PREFIX, createNetRun, netOrigins, parseOrigin, parseRefusals, refusedOrigins } from './net.ts'
import { createWorkerPool } from './pool.ts'
import { PERMISSIONS, WIT_PACKAGE, WIT_VERSION, WORLD_NAME, heldPermissions } from './wit.ts'
import type { AgentDigest, AgentInfo } from './agent.ts'
import type { CacheEvent, CacheOutcome } from './cache.ts'
import type { AgentContext, AgentContexts } from './context.ts'
import type { AgentKv } from './kv.ts'
import type { AgentLlm, AgentLlmCall, RunLlmReport } from './llm.ts'
import type { NetRefusals, NetResolver, NetRunReport, Origin } from './net.ts'
import type { Manifest } from './manifest.ts'
import type { PoolStats } from './pool.ts'
import type { Permission } from './wit.ts'
import { wasm } from './wasm.ts'
import type { WasmModule } from './wasm.ts'

export interface SandboxInit {
  /** Where transpiled agents are cached (the node uses `<data>/agents-cache`). */
  cacheDir: string
  /** Idle workers kept warm (default 1). */
  warmWorkers?: number
  /**
   * Start the warm workers with the sandbox (default true). A node passes false, so a device
   * that never runs an agent holds no worker threads; the first run starts them.
   */
  prestartWorkers?: boolean
  /** Runs at once (default: the machine's parallelism). */
  maxConcurrentRuns?: number
  /**
   * Permissions this node grants at most (default: all, but `llm` and `llm:cloud` only with an
   * `llm` component). An agent gets its manifest's ∩ these.
   */
  allow?: readonly Permission[]
  /**
   * Ceilings on what a manifest may ask for (defaults: 10 minutes, 512 MiB). A wasm memory grows
   * slowly near a gigabyte (page by page to 1 GiB took ~9 s here), and a thread cannot be
   * terminated mid-grow, so the default keeps the worst case to a few seconds.
   */
  maxTimeoutMs?: number
  maxMemoryMiB?: number
  /** Longest input accepted, in characters (default 4 Mi). */
  maxInputChars?: number
  /** Agents kept compiled in memory (default 32). */
  maxLoadedAgents?: number
  /**
   * Origins this device refuses to agents whatever their manifest and task grant (`*`: all of
   * them). Checked at creation: a bad entry throws.
   */
  netRefuse?: NetRefusals
  /** Requests one run may make (default and ceiling NET_LIMITS.maxRequestsPerRun). */
  maxRequestsPerRun?: number
  /** Every log line of every run. */
  onLog?: (entry: AgentLogEntry) => void
  onCacheEvent?: (event: CacheEvent) => void
  /** Every run's outcome, when it ends (a run refused before it started included). */
  onRun?: (event: SandboxRunEvent) => void
}

/** One run as the sandbox saw it end. */
export interface SandboxRunEvent {
  /** The agent's manifest name, once known. */
  agent?: string
  ok: boolean
  durationMs: number
  /** Whether the worker already held the agent's code; only for runs that finished. */
  warm?: boolean
  /** The failure's code, its error's name (e.g. `AgentTimedOut`, `AgentFailed`). */
  code?: string
}

export interface SandboxComponents {
  /** Where contexts named by a run come from (the node's context store). */
  contexts?: AgentContexts
  /** Where agents' model calls go (the node's LLM router). Without it no agent holds `llm`. */
  llm?: AgentLlm
  /** Agents' kv stores, by agent name (the node's replicated store). Without it no agent holds kv. */
  kv?: AgentKv
  /** How agents' host names are resolved (default: the system's resolver). */
  resolve?: NetResolver
}

export interface AgentLogEntry {
  runId: number
  agent: string
  digest: AgentDigest
  level: 'debug' | 'info' | 'warn' | 'error'
  message: string
}

export interface LoadedAgent {
  readonly digest: AgentDigest
  readonly manifest: Manifest
  readonly info: AgentInfo
  /** Permissions the agent holds here: its manifest's, as far as this node allows. */
  readonly grants: readonly Permission[]
  /** How the compiled form was found the first time this sandbox loaded it. */
  readonly source: CacheOutcome
}

export interface RunOptions {
  input: string
  /** The context to run in, by id (opened through the `contexts` component). */
  contextId?: string
  /** Or the context itself. Without either, the run gets a fresh empty context. */
  context?: AgentContext
  /** A tighter deadline than the manifest's (never a looser one). */
  timeoutMs?: number
  /** The task this run belongs to, handed to the model port with each call. */
  task?: string
  /**
   * What the task grants (default: what the manifest asks). Only its `net:` origins matter here:
   * the run holds the manifest's origins that the task grants and this device does not refuse.
   */
  permissions?: readonly string[]
  signal?: AbortSignal
  onLog?: (entry: AgentLogEntry) => void
  /**
   * Each answered model call, as it is answered: a run that then fails (its deadline, its own
   * error) has no `RunResult`, and its calls still count.
   */
  onLlmCall?: (call: AgentLlmCall) => void
  /**
   * The run's http requests per origin, told once as it ends, however it ends (a run that fails
   * has no `RunResult`, and its requests still go in its ledger record).
   */
  onNetReport?: (report: NetRunReport) => void
}

export interface RunResult {
  output: string
  digest: AgentDigest
  agent: string
  runId: number
  durationMs: number
  /** True when the worker already held the agent's code (no glue load, no first instantiate). */
  warm: boolean
  memoryBytes: number
  /** The run's model calls: each answered call, and their sum per route kind for the ledger. */
  llm: RunLlmReport
  /** The run's http requests, per origin (redirect hops included). */
  net: NetRunReport
}

export interface SandboxStats extends PoolStats {
  transpiles: number
  cacheHits: number
  cacheRebuilds: number
  loaded: number
  runs: number
}

export interface RuntimeInfo {
  id: 'wasm'
  kind: 'wasm-component'
  world: string
  engine: string
  status: 'running' | 'stopped'
  permissions: Permission[]
}

export interface Sandbox {
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Judges, caches and compiles an agent; refuses it (before any of it runs) when it must. */
  load: (component: Uint8Array, options?: { signal?: AbortSignal }) => Promise<LoadedAgent>
  run: (agent: Uint8Array | LoadedAgent, options: RunOptions) => Promise<RunResult>
  /** An agent this sandbox has loaded and still holds, by digest. */
  loaded: (digest: string) => LoadedAgent | undefined
  runtime: () => RuntimeInfo
  stats: () => SandboxStats
  /** Resolves when nothing runs or waits and idle workers hold their next instance ready. */
  settled: () => Promise<void>
}

interface Compiled extends LoadedAgent {
  key: string
  capPages: number
  glue: string
  modules: Array<{ name: string, module: WasmModule }>
}

export function createSandbox (init: SandboxInit, components: SandboxComponents = {}): Sandbox {
  const refuse = parseRefusals(init.netRefuse ?? [])
  const allow = new Set<Permission>((init.allow ?? PERMISSIONS)
    .filter(p => components.llm !== undefined || (p !== 'llm' && p !== 'llm:cloud'))
    .filter(p => components.kv !== undefined || (p !== 'kv:read' && p !== 'kv:write'))
    .filter(p => p !== 'net' || !refuse.includes('*')))
  const maxTimeoutMs = init.maxTimeoutMs ?? 600_000
  const maxMemoryMiB = init.maxMemoryMiB ?? 512
  const maxInputChars = init.maxInputChars ?? 4 * 2 ** 20
  const maxLoaded = init.maxLoadedAgents ?? 32
  const cache = createTranspileCache({ dir: init.cacheDir, ...(init.onCacheEvent !== undefined ? { onEvent: init.onCacheEvent } : {}) })
  const pool = createWorkerPool({
    minIdle: init.warmWorkers ?? 1,
    prestart: init.prestartWorkers ?? true,
    maxWorkers: init.maxConcurrentRuns ?? availableParallelism(),
    maxAgentsPerWorker: 16,
    maxLogLines: 1000,
    maxLogChars: 4096
  })
  const maxContextValueChars = 1 << 20
  const loaded = new Map<AgentDigest, Compiled>()
  const loading = new Map<AgentDigest, Promise<Compiled>>()
  const byBytes = new WeakMap<Uint8Array, AgentDigest>()
  let running = false
  let engine = 'jco'
  let runs = 0
  let nextRunId = 1

  async function compile (component: Uint8Array, digest: AgentDigest, signal?: AbortSignal): Promise<Compiled> {
    const info = inspectAgentBytes(component)
    checkWorld(info.summary)
    const manifest = info.manifest
    const held = heldPermissions(manifest.permissions)
    const grants = PERMISSIONS.filter(p => held.includes(p) && allow.has(p))
    checkImports(info.imports, new Set(grants), manifest)
    if (manifest.limits.timeoutMs > maxTimeoutMs) {
      throw new LimitNotAllowedError(`agent ${manifest.name} asks for a ${manifest.limits.timeoutMs} ms deadline; this node allows at most ${maxTimeoutMs} ms`)
    }
    if (manifest.limits.memoryMiB > maxMemoryMiB) {
      throw new LimitNotAllowedError(`agent ${manifest.name} asks for ${manifest.limits.memoryMiB} MiB of memory; this node allows at most ${maxMemoryMiB} MiB`)
    }
    const { files, outcome } = await cache.get(digest, component, signal !== undefined ? { signal } : {})
    const capPages = manifest.limits.memoryMiB * 2 ** 20 / PAGE_BYTES
    const modules = await Promise.all(files.modules.map(async m => ({ name: m.name, module: await wasm.compile(capMemory(m.bytes, capPages).bytes) })))
    const { summary: _summary, ...publicInfo } = info
    return { digest, manifest, info: publicInfo, grants, source: outcome, key: `${digest}:${capPages}`, capPages, glue: files.glue, modules }
  }

  async function load (component: Uint8Array, signal?: AbortSignal): Promise<Compiled> {
    let digest = byBytes.get(component)
    if (digest === undefined) {
      digest = agentDigest(component)
      byBytes.set(component, digest)
    }
    const have = loaded.get(digest)
    if (have !== undefined) {
      // Most recently used last, so the oldest is evicted first.
      loaded.delete(digest)
      loaded.set(digest, have)
      return have
    }
    let p = loading.get(digest)
    if (p === undefined) {
      const d = digest
      p = compile(component, d, signal).then(c => {
        loaded.set(d, c)
        while (loaded.size > maxLoaded) loaded.delete(loaded.keys().next().value as AgentDigest)
        return c
      }).finally(() => loading.delete(d))
      loading.set(digest, p)
    }
    return await p
  }

  async function runAgent (agent: Uint8Array | LoadedAgent, options: RunOptions): Promise<RunResult> {
    if (!running) throw new SandboxNotRunningError('the sandbox is not started')
    const compiled = isCompiled(agent) ? agent : await load(agent as Uint8Array, options.signal)
    if (typeof options.input !== 'string') throw new TypeError('input must be a string')
    if (options.input.length > maxInputChars) {
      throw new LimitNotAllowedError(`the input is ${options.input.length} characters; this node accepts at most ${maxInputChars}`)
    }
    const timeoutMs = Math.min(compiled.manifest.limits.timeoutMs, options.timeoutMs ?? Infinity)
    let context = options.context
    const usesContext = compiled.grants.some(p => p.startsWith('context:'))
    // Opening a context creates it; an agent without context permissions never gets one.
    if (context === undefined && usesContext && options.contextId !== undefined && components.contexts !== undefined) {
      context = await components.contexts.open(options.contextId)
    }
    context ??= createMemoryContext()
    const origins = runOrigins(compiled, options.permissions)
    const runId = nextRunId++
    const started = performance.now()
    const onLog = (level: AgentLogEntry['level'], message: string): void => {
      const entry: AgentLogEntry = { runId, agent: compiled.manifest.name, digest: compiled.digest, level, message }
      init.onLog?.(entry)
      options.onLog?.(entry)
    }
    const host = createRunHost({
      grants: compiled.grants,
      context,
      maxContextValueChars,
      agent: compiled.digest,
      ...(options.task !== undefined ? { task: options.task } : {}),
      ...(compiled.manifest.models !== undefined ? { allow: compiled.manifest.models } : {}),
      ...(components.llm !== undefined ? { llm: components.llm } : {}),
      ...(options.onLlmCall !== undefined ? { onLlmCall: options.onLlmCall } : {}),
      ...(compiled.grants.includes('net')
        ? { net: createNetRun({ origins, ...(components.resolve !== undefined ? { resolve: components.resolve } : {}), ...(init.maxRequestsPerRun !== undefined ? { maxRequests: init.maxRequestsPerRun } : {}) }) }
        : {}),
      ...(components.kv !== undefined && compiled.grants.some(p => p.startsWith('kv:'))
        ? { kv: async () => await (components.kv as AgentKv).open(compiled.manifest.name) }
        : {})
    })
    runs++
    let result
    try {
      result = await pool.run({
        key: compiled.key,
        name: compiled.manifest.name,
        grants: compiled.grants,
        capPages: compiled.capPages,
        glue: compiled.glue,
        modules: compiled.modules,
        input: options.input,
        timeoutMs,
        host: host.handle,
        onLog,
        ...(options.signal !== undefined ? { signal: options.signal } : {})
      })
    } finally {
      options.onNetReport?.(host.net())
    }
    return {
      output: result.output,
      digest: compiled.digest,
      agent: compiled.manifest.name,
      runId,
      durationMs: performance.now() - started,
      warm: result.warm,
      memoryBytes: result.pages * PAGE_BYTES,
      llm: host.llm(),
      net: host.net()
    }
  }

  /** The manifest's origins the task grants and this device does not refuse. */
  function runOrigins (compiled: Compiled, permissions: readonly string[] | undefined): Origin[] {
    if (!compiled.grants.includes('net')) return []
    const asked = netOrigins(compiled.manifest.permissions)
    // the task's entries compared as origins, so `net:HTTPS://API.example.org:443` grants `https://api.example.org`
    const given = new Set((permissions ?? []).flatMap(p => {
      if (!p.startsWith(NET_PREFIX)) return []
      try { return [parseOrigin(p.slice(NET_PREFIX.length)).text] } catch { return [] }
    }))
    const granted = permissions === undefined ? asked : asked.filter(o => given.has(o.text))
    const refused = new Set(refusedOrigins(granted, refuse))
    return granted.filter(o => !refused.has(o))
  }

  function isCompiled (a: Uint8Array | LoadedAgent): a is Compiled {
    return !(a instanceof Uint8Array) && 'key' in a
  }

  return {
    async start () {
      if (running) return
      engine = `jco ${await jcoVersion()}`
      await pool.start()
      running = true
    },

    async stop () {
      running = false
      await pool.stop()
    },

    async load (component, options = {}) {
      return await load(component, options.signal)
    },

    async run (agent, options) {
      const started = performance.now()
      try {
        const result = await runAgent(agent, options)
        init.onRun?.({ agent: result.agent, ok: true, durationMs: result.durationMs, warm: result.warm })
        return result
      } catch (err) {
        const name = agent instanceof Uint8Array ? undefined : agent.manifest.name
        init.onRun?.({ ...(name !== undefined ? { agent: name } : {}), ok: false, durationMs: performance.now() - started, code: (err as Error).name ?? 'Error' })
        throw err
      }
    },

    loaded (digest) {
      return loaded.get(digest as AgentDigest)
    },

    runtime () {
      return {
        id: 'wasm',
        kind: 'wasm-component',
        world: `${WIT_PACKAGE}/${WORLD_NAME}@${WIT_VERSION}`,
        engine: `${engine} on node ${process.versions.node}`,
        status: running ? 'running' : 'stopped',
        permissions: PERMISSIONS.filter(p => allow.has(p))
      }
    },

    async settled () {
      await pool.settled()
    },

    stats () {
      const c = cache.stats()
      return { ...pool.stats(), transpiles: c.transpiles, cacheHits: c.hits, cacheRebuilds: c.rebuilds, loaded: loaded.size, runs }
    }
  }
}
