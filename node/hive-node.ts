// HiveNode: the composition root. It owns the data directory (lock, identity, LevelDB), builds
// libp2p, creates every subsystem with only the parts it needs, serves the local API, and
// starts and stops all of them in order. Subsystems never import this file.

import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { Level } from 'level'
import {
  DHT_PROTOCOL, HiveRecords, isAllToAll, isTransientLink, MAX_DHT_RECORD_BYTES, MAX_NET_REFUSE, MEMBERSHIP_SUBLEVEL, createAgentStore, createCapabilities, createControl, createPlacement, findPeerRecord, publishPeerRecord, registerPeerRecord, registerPlacementRecords
} from '../protocol/index.ts'
import { DirectLinks, createDiskAgentStore, createRegistry, withDirectTwins } from '../protocol/index.ts'
import { createBudgetKeeper, localMinutesOf, policyRefusal, refusalText } from '../protocol/control/index.ts'
import { inspectAgentBytes } from '../sandbox/index.ts'
import { createContexts } from '../crdt/index.ts'
import { createCodeRuntime, createSandbox, netRefusal, parseOrigin, parseRefusals } from '../sandbox/index.ts'
import { agentsCacheDir, storeBackedContexts, storeBackedKv } from './agents.ts'
import { REGISTRY_SUBLEVEL, componentsDir, inspectForRegistry } from './registry.ts'
import type { AgentResolver } from './registry.ts'
import { LEDGER_SUBLEVEL, createLedger } from '../ledger/index.ts'
import { sandboxExecutor } from './executor.ts'
import { runtimeProbes } from './runtimes.ts'
import { TASKS_SUBLEVEL, createTaskArchive } from './task-archive.ts'
import { createNodeLlm } from './llm.ts'
import { createFlows } from './flows/index.ts'
import { createApi } from './api/server.ts'
import { HiveMembership } from './hive-membership.ts'
import { DEFAULT_API_PORT, DEFAULT_P2P_PORT, dataPaths, defaultNodeName, validateNodeName } from './config.ts'
import { loadOrCreateIdentity } from './identity.ts'
import { memberDht } from './member-dht.ts'
import { buildLibp2p, runtimeListener } from './libp2p.ts'
import { createReach, relayOf } from './reach.ts'
import { acquireLock } from './lock.ts'
import { InvalidConfigError } from './errors.ts'
import { createLogger } from './logger.ts'
import { EventHub } from './events/hub.ts'
import { HiveMetrics } from './metrics/hive.ts'
import { libp2pMetrics } from './metrics/libp2p.ts'
import { Registry } from './metrics/registry.ts'
import { VERSION } from './version.ts'
import type { Api, ApiLimits } from './api/server.ts'
import type { ApiNode, MeshMember, PeerSummary, RuntimeInfo } from './api/types.ts'
import type { Identity } from './identity.ts'
import type { HiveLibp2p, RelayLimits } from './libp2p.ts'
import type { DataDirLock } from './lock.ts'
import type { LogLevel, Logger } from './logger.ts'
import type {
  AgentStore, Capabilities, CapabilitiesInit, Control, Digest, PlacementComponents, CapabilityOverrides, CapabilityReport, MembershipChange, PeerGate, PeerRecord, PeerRecordDht, Placement, PlacementInit, RecordSigner
} from '../protocol/index.ts'
import type { BudgetKeeper, CountedRecord } from '../protocol/control/index.ts'
import type { Contexts } from '../crdt/index.ts'
import type { CodeRuntime, NetResolver, Sandbox } from '../sandbox/index.ts'
import type { Ledger } from '../ledger/index.ts'
import type { TaskArchive } from './task-archive.ts'
import type { Reach } from './reach.ts'
import type { NodeLlm, NodeLlmInit } from './llm.ts'
import type { AgentDigest, DiskAgentStore, Registry as AgentRegistry } from '../protocol/index.ts'
import type { Flows } from './flows/index.ts'
import type { PeerId } from '@libp2p/interface'

export interface HiveNodeInit {
  dataDir: string
  /** libp2p listen multiaddrs; default all IPv4 interfaces on the default port. */
  listen?: string[]
  /** Local API port on 127.0.0.1; 0 picks a free one. */
  apiPort?: number
  /** Tighter limits for the local API's connections (tests); API_LIMITS otherwise. */
  apiLimits?: Partial<ApiLimits>
  /** Multiaddrs dialled at start and re-dialled while disconnected. */
  bootstrap?: string[]
  mdns?: boolean
  name?: string
  addressScope?: 'lan' | 'loopback'
  inboundConnectionThreshold?: number
  logger?: Logger
  logLevel?: LogLevel
  /** What this device reports about itself instead of what it measures (e.g. `{ power: 'battery' }`). */
  capabilityOverrides?: CapabilityOverrides
  capabilities?: CapabilitySettings
  placement?: PlacementInit
  /** Model backends, cloud client, prices and routing settings of LLM calls. */
  llm?: Omit<NodeLlmInit, 'dataDir'>
  /** Agents' http requests on this device: what it refuses, and (tests) how names resolve. */
  net?: NodeNetInit
  /** Where the code tasks' interpreter is cached (default `<data>/runtimes`; nodes may share one). */
  runtimesDir?: string
  /**
   * Where transpiled agents are cached (default `<data>/agents-cache`). Nodes in one process may
   * share one, so each agent is transpiled once for all of them (entries are keyed by digest,
   * checked on every load and written atomically).
   */
  agentsCacheDir?: string
  /** Relay for this hive's members (circuit relay v2, members only): a device others can reach. */
  relay?: boolean
  /** A relay's limits other than RELAY_LIMITS (tests of what happens past one). */
  relayLimits?: Partial<RelayLimits>
  /** How often a member reached only through a relay is tried directly (tests shorten it). */
  upgradeIntervalMs?: number
  /** False keeps relayed links as they are (tests of what a relay carries). */
  upgradeToDirect?: boolean
  /**
   * Beyond a hive of 9, connections to members that are not this device's neighbours close
   * after being idle this long (default MESH_IDLE_MS), looked at every `sweepMs`.
   * `redialIntervalMs`: how often the membership dialler looks for neighbours to dial (15 s).
   */
  mesh?: { idleMs?: number, sweepMs?: number, redialIntervalMs?: number }
  /**
   * How long libp2p's connection monitor waits for a ping before it aborts a connection (its
   * adaptive timeout's floor); libp2p's own default when omitted. Many nodes in one process
   * (`simulate`) raise it: a saturated event loop answers late, not never.
   */
  pingTimeoutMs?: number
}

export interface NodeNetInit {
  /** Origins refused to agents here whatever their tasks grant; `*` refuses all (at most MAX_NET_REFUSE). */
  refuse?: string[]
  /** Requests one run may make (default and ceiling NET_LIMITS.maxRequestsPerRun). */
  maxRequestsPerRun?: number
  resolve?: NetResolver
}

/** A peer's reported refusals, the malformed ones left out (they refuse nothing). */
function reportedRefusals (entries: readonly string[] | undefined): ReturnType<typeof parseRefusals> {
  return (entries ?? []).flatMap((e): ReturnType<typeof parseRefusals> => {
    if (e === '*') return ['*']
    try { return [parseOrigin(e)] } catch { return [] }
  })
}

export type { PeerSummary, RuntimeInfo } from './api/types.ts'

/** Refuses, before anything opens, a refusal list this device could not report or apply. */
function checkNetInit (net: NodeNetInit | undefined): void {
  const refuse = net?.refuse ?? []
  if (refuse.length > MAX_NET_REFUSE) throw new InvalidConfigError(`at most ${MAX_NET_REFUSE} origins may be refused to agents (${refuse.length} given); refuse a domain's sub-domains with https://*.example.org, or all with *`)
  try {
    parseRefusals(refuse)
  } catch (err) {
    throw new InvalidConfigError(`--net-refuse: ${(err as Error).message}`)
  }
}

export type { PeerRecord }

/** Capability gossip settings a node may be started with (tests shorten the intervals; `probe` is a device profile in place of this machine, as `simulate` gives each virtual device). */
export type CapabilitySettings = Pick<CapabilitiesInit, 'intervalMs' | 'expireMs' | 'ollamaUrl' | 'ollamaTimeoutMs' | 'powerSupplyDir' | 'localModels' | 'drmDir' | 'probe'>

type Db = Level<string, Uint8Array>

const BOOTSTRAP_RETRY_MS = 5_000

export class HiveNode extends EventTarget implements ApiNode {
  readonly dataDir: string
  readonly identity: Identity
  readonly name: string
  readonly log: Logger
  readonly db: Db
  readonly libp2p: HiveLibp2p
  readonly records: HiveRecords
  /** This device's hive: member list, gate, replication and pairing. */
  readonly hive: HiveMembership
  /** Agent contexts: Yjs documents in the db's `crdt` sublevel, replicated to every peer. */
  readonly contexts: Contexts
  /** Runs agents: WebAssembly components in worker threads, contexts from `contexts`. */
  readonly sandbox: Sandbox
  /** Code tasks' interpreter: one JS engine component, built on first use and cached. */
  readonly codeRuntime: CodeRuntime
  readonly ledger: Ledger
  /** The gossip twins' messages on a stream to each member (protocol/wire/direct-links.ts). */
  readonly directLinks: DirectLinks
  /** What every device offers (cores, load, memory, power, runtimes, models), from gossip. */
  readonly capabilities: Capabilities
  /** The kill switch: signed halt and resume entries, replicated to every member, kept in the db's `control` sublevel. */
  readonly control: Control
  /** Budgets: what each agent and context used today, from every member's ledger, and this device's reservations. */
  readonly budgets: BudgetKeeper
  /** Tasks: submitted here, bid on, elected, run where they win. */
  readonly placement: Placement
  /** Agent bytes by digest: what placement runs and serves, and what the API submits by digest. */
  readonly agents: AgentStore
  /** Agents by name: signed publish and yank entries on every member, in the db's `registry` sublevel. */
  readonly registry: AgentRegistry
  /** Published components this device holds, on disk (`<data>/components`), kept across restarts. */
  readonly components: DiskAgentStore
  /** The tasks this device submitted, on disk: what `task`, `tasks` and `explain` answer after a restart. */
  readonly taskArchive: TaskArchive
  /** LLM calls: the waterfall (this device, a member, a cloud within budget), keys and budget. */
  readonly llm: NodeLlm
  /** Workflows submitted here: each step a placed task, their state in the db's `flows` sublevel. */
  readonly flows: Flows
  /** What `GET /metrics` shows: libp2p's metrics and the node's own, in one registry. */
  readonly metrics: HiveMetrics
  /** What `GET /events` streams: the parts' events, typed and numbered, with device names. */
  readonly events = new EventHub()
  /** Beyond one LAN: relay reservations, upgrades to direct links, how each member is reached. */
  private reachPart?: Reach
  readonly startedAt: number = Date.now()
  private readonly init: HiveNodeInit
  private readonly lock: DataDirLock
  private readonly runtimeProbes = new Map<string, () => RuntimeInfo>()
  private api?: Api
  private gatePolicy: PeerGate['allows'] = () => true
  /**
   * Who may speak a hive protocol to this node. Every protocol is served with this gate;
   * membership installs the real policy with `setGate`.
   */
  readonly gate: PeerGate = { allows: (peer, protocol) => this.gatePolicy(peer, protocol) }
  private bootstrapTimer?: NodeJS.Timeout
  private halting = new AbortController()
  /**
   * Whether a connection to `peer` is transient: beyond an all-to-all hive, to a member that is
   * not a neighbour. The ledger, control, registry and contexts run no exchange on one when it
   * opens; it carries the request it was opened for, and the rest comes through neighbours.
   */
  private readonly transientLink = (peer: string): boolean =>
    isTransientLink(this.peerId.toString(), this.hive.membership.members().map(m => m.peerId), peer)
  private state: 'stopped' | 'starting' | 'running' | 'stopping' = 'stopped'

  private constructor (parts: { init: HiveNodeInit, lock: DataDirLock, identity: Identity, db: Db, libp2p: HiveLibp2p, records: HiveRecords, hive: HiveMembership, name: string, log: Logger, metrics: HiveMetrics }) {
    super()
    this.init = parts.init
    this.dataDir = parts.init.dataDir
    this.lock = parts.lock
    this.identity = parts.identity
    this.db = parts.db
    this.libp2p = parts.libp2p
    this.records = parts.records
    this.hive = parts.hive
    this.name = parts.name
    this.log = parts.log
    this.metrics = parts.metrics
    this.contexts = createContexts({}, { db: this.db.sublevel('crdt'), libp2p: this.libp2p, nodeName: this.name, gate: this.gate, transient: this.transientLink, log: this.log.child('contexts') })
    this.sandbox = createSandbox({
      cacheDir: this.init.agentsCacheDir ?? agentsCacheDir(this.dataDir),
      prestartWorkers: false,
      onLog: (e) => { this.log.info(`agent ${e.agent} (run ${e.runId}) ${e.level}: ${e.message}`) },
      onCacheEvent: (e) => { if (e.type === 'corrupt') this.log.warn(`agents cache: entry ${e.digest} was damaged (${e.reason ?? ''}); rebuilding it`) },
      onRun: (e) => { this.metrics.sandboxRun(e) },
      ...(this.init.net?.refuse != null ? { netRefuse: this.init.net.refuse } : {}),
      ...(this.init.net?.maxRequestsPerRun != null ? { maxRequestsPerRun: this.init.net.maxRequestsPerRun } : {})
    }, {
      ...(this.init.net?.resolve != null ? { resolve: this.init.net.resolve } : {}),
      contexts: storeBackedContexts(this.contexts.store),
      kv: storeBackedKv(this.contexts.store),
      // the router is built below; agents' calls reach it only once runs start
      llm: {
        chat: async (request, caller) => this.llm.router.chat(request, caller),
        embed: async (model, texts, caller) => this.llm.router.embed(model, texts, caller)
      }
    })
    this.codeRuntime = createCodeRuntime({ cacheDir: this.init.runtimesDir ?? join(this.dataDir, 'runtimes') })
    // the hive's gossip: while every other member takes a topic's direct twin, messages go to
    // each of them from their author and are not forwarded (protocol/wire/direct-topic.ts), on
    // a direct link to each once every one has a link (protocol/wire/direct-links.ts)
    this.directLinks = new DirectLinks({ host: this.libp2p, gate: this.gate, log: this.log.child('direct') })
    const pubsub = withDirectTwins(this.libp2p.services.pubsub, () => this.hive.membership.members().filter(m => !m.self).map(m => m.peerId), this.directLinks)
    this.ledger = createLedger({}, {
      db: this.db.sublevel(LEDGER_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' }),
      signer: { peerId: this.identity.peerId, sign: this.identity.sign },
      host: this.libp2p,
      pubsub,
      gate: this.gate,
      log: this.log.child('ledger'),
      // beyond an all-to-all hive, chains come hop by hop through neighbours
      connectedOnly: () => !isAllToAll(this.hive.membership.members().length),
      transient: this.transientLink,
      // the periodic announcement of every head is spaced by the hive's size
      members: () => this.hive.membership.members().length
    })
    // ---- agents: one store of agent bytes, shared by placement and the API ----
    const agentStore = createAgentStore({ maxBytes: this.init.placement?.agentCacheBytes })
    // ---- published components on disk: what the registry resolves, runs and serves after a restart ----
    this.components = createDiskAgentStore({
      dir: componentsDir(this.dataDir),
      onDamaged: (digest) => { this.log.warn(`components: the file of ${digest} was damaged and removed; a member sends it again`) }
    })

    // ---- capabilities: what this device offers, on the hive's gossip ----
    // the models this device holds are the LLM router's, read at every report
    const localModels = async (options: { signal?: AbortSignal }): Promise<string[]> => (await this.llm.router.localModels(options)).map(m => m.name)
    this.capabilities = createCapabilities({
      name: this.name,
      version: VERSION,
      // agent runtimes only: model routes and cloud entries are not placement's to match
      runtimes: () => this.runtimes().filter(r => r.status === 'ready' && (r.kind ?? 'agent') === 'agent').map(r => r.name),
      localModels,
      // placement is built below; reports are read only once the node starts
      running: () => this.placement.running(),
      // the hive map's edges: members this device is connected to
      links: () => [...new Set(this.libp2p.getConnections().filter(c => c.limits == null && c.status === 'open').map(c => c.remotePeer.toString()))]
        .filter(peer => this.hive.membership.isMember(peer)).sort(),
      // during a burst of tasks, changes go out at most every 2 s: a bid reads this device's own
      // state, never its report, and each report is a message to every member
      changeIntervalMs: 2_000,
      ...this.init.capabilities,
      ...(this.init.net?.refuse != null ? { netRefuse: this.init.net.refuse } : {}),
      ...(this.init.capabilityOverrides != null ? { overrides: this.init.capabilityOverrides } : {})
    }, {
      self: this.libp2p.peerId.toString(),
      pubsub,
      isMember: (peer) => this.hive.membership.isMember(peer),
      members: () => this.hive.membership.members().length,
      log: this.log.child('capabilities')
    })

    // ---- control: the kill switch, which placement asks before it submits, bids or runs ----
    this.control = createControl({
      db: this.db.sublevel<string, Uint8Array>('control', { keyEncoding: 'utf8', valueEncoding: 'view' }),
      signer: this.signer,
      hiveId: () => this.hive.membership.hiveId,
      isMember: (peer) => this.hive.membership.isMember(peer),
      transient: this.transientLink,
      host: this.libp2p,
      gate: this.gate,
      log: this.log.child('control'),
      nameOf: (peer) => peer === this.peerId.toString() ? this.name : this.hive.membership.member(peer)?.name ?? this.capabilities.get(peer)?.caps.name
    })

    // ---- budgets: counted from every member's ledger records, limits from the control entries ----
    this.budgets = createBudgetKeeper({
      budgets: () => this.control.budgets().value,
      records: async (since, options) => this.recordsSince(since, options)
    })
    this.ledger.addEventListener('chain', () => { this.budgets.invalidate() })
    const nameOf = (peer: string): string => peer === this.peerId.toString() ? this.name : this.hive.membership.member(peer)?.name ?? this.capabilities.get(peer)?.caps.name ?? peer

    // ---- placement: tasks bid on, elected, run in the sandbox, recorded in the ledger ----
    const placementComponents: PlacementComponents & { agents: AgentStore } = {
      agents: agentStore,
      host: this.libp2p,
      pubsub,
      dht: memberDht({
        dht: this.libp2p.services.dht,
        host: this.libp2p,
        isMember: (peer) => this.hive.membership.isMember(peer),
        // members heard from lately (their capability reports): an offline one is not dialled
        others: () => this.hive.membership.members().filter(m => !m.self && this.capabilities.isLive(m.peerId)).map(m => m.peerId),
        allToAll: () => isAllToAll(this.hive.membership.members().length),
        protocol: DHT_PROTOCOL,
        maxRecordBytes: MAX_DHT_RECORD_BYTES
      }),
      records: this.records,
      signer: this.signer,
      capabilities: this.capabilities,
      executor: sandboxExecutor(this.sandbox, { onLine: (task, line) => { this.events.agentLine(task, line) } }),
      ledger: { append: async (record, options) => this.ledger.append(record, options), unwritable: () => this.ledger.unwritable() },
      gate: this.gate,
      isMember: (peer) => this.hive.membership.isMember(peer),
      // a device whose policy refuses an origin the task needs neither bids nor is waited for
      refuses: (permissions, caps) => netRefusal(permissions, reportedRefusals(caps.netRefuse)),
      log: this.log.child('placement'),
      halted: () => this.control.refusal(),
      synced: async (peer, options) => { await this.control.synced(peer, options) },
      // a winner runs a published agent it keeps on disk without fetching it, and keeps one it fetched
      agentSource: {
        load: async (digest) => this.registry.publishes(digest) ? await this.components.read(digest as AgentDigest) : undefined,
        fetched: (digest, bytes) => {
          if (this.registry.publishes(digest)) this.components.write(bytes).catch((err: Error) => { this.log.warn(`components: could not keep ${digest}: ${err.message}`) })
        }
      },
      // the hive's policy: this device checks its own state (its local time included); of the
      // others, the submitter knows only what their reports say
      policy: (peer, announce, caps) => {
        const self = peer === this.peerId.toString()
        const refused = policyRefusal(this.control.policyRules(), peer, nameOf(peer), {
          submitter: announce.submitter,
          ...(announce.requirements.localOnly != null ? { localOnly: announce.requirements.localOnly } : {}),
          ...(announce.requirements.tags != null ? { tags: announce.requirements.tags } : {})
        }, { power: caps.power, running: self ? this.placement.running() : caps.running, ...(self ? { localMinutes: localMinutesOf(new Date()) } : {}) })
        return refused != null ? refusalText(refused) : undefined
      },
      budget: {
        ready: async (options) => { await this.budgets.ready(options) },
        admit: (task) => {
          let name: string | undefined
          try { name = inspectAgentBytes(task.agent).manifest.name } catch { name = undefined }
          const ticket = this.budgets.admit({ digest: task.digest, ...(name != null ? { name } : {}), ...(task.context != null ? { context: task.context } : {}) })
          return { ...(name != null ? { name } : {}), ...(ticket != null ? { ticket } : {}) }
        }
      },
      // a workflow step's output is on disk before its winner records the run `ok`
      keepResult: async (task) => { await this.flows.keep(task) },
      // a step's output kept before a restart still gets its winner's `ok` record
      keptBefore: async (task) => this.flows.keptBefore(task),
      relayedTo: (peer) => this.reachPart?.link(peer)?.via === 'relayed',
      // beyond an all-to-all hive, members that are not neighbours bid over the mesh
      reachable: () => isAllToAll(this.hive.membership.members().length) ? [] : this.hive.membership.members().filter(m => !m.self).map(m => m.peerId),
      // beyond it a bid that did not arrive is not sent after through the DHT, nor looked for there
      bidsThroughDht: () => isAllToAll(this.hive.membership.members().length)
    }
    this.placement = createPlacement(this.init.placement ?? {}, placementComponents)
    // placement runs from the store it is handed; one that keeps its own is still the one store
    this.agents = this.placement.agents
    // the bid of a device counts the tasks it runs: capabilities reads the count from placement
    this.placement.on('running', () => { this.capabilities.refresh() })
    // a halt stops every run here and ends every task submitted here, the moment it is heard
    this.control.on('change', (state) => {
      if (!state.halted) return
      const refusal = this.control.refusal()
      if (refusal == null) return
      this.halting.abort(refusal)
      this.halting = new AbortController()
      const { cancelled, stopped } = this.placement.stopAll(refusal.message, refusal.name)
      this.log.warn(`${refusal.message}; stopped ${stopped} run${stopped === 1 ? '' : 's'} and ended ${cancelled} task${cancelled === 1 ? '' : 's'} submitted here`)
    })

    // ---- llm: the waterfall (this device, a member, a cloud within budget), keys and budget ----
    this.llm = createNodeLlm({ dataDir: this.dataDir, ...(this.init.capabilities?.ollamaUrl !== undefined ? { ollamaUrl: this.init.capabilities.ollamaUrl } : {}), ...this.init.llm }, {
      libp2p: this.libp2p,
      capabilities: this.capabilities,
      contexts: this.contexts.store,
      gate: this.gate,
      signer: this.signer,
      hiveId: () => this.hive.membership.hiveId,
      isMember: (peer) => this.hive.membership.isMember(peer),
      members: () => this.hive.membership.members().length,
      db: this.db.sublevel<string, string>('llm', { keyEncoding: 'utf8', valueEncoding: 'utf8' }),
      log: this.log,
      onCall: (e) => { this.metrics.llmCall(e) },
      // the hive's budgets cap an agent's cloud spend too: the LLM budget applies it per call
      agentCaps: () => Object.fromEntries(Object.entries(this.control.budgets().value.agents).flatMap(([agent, l]) => l.cloudMicroUsd != null ? [[agent, l.cloudMicroUsd]] : []))
    })

    // ---- registry: agents by name, their components fetched from any member that holds them ----
    this.registry = createRegistry({
      db: this.db.sublevel<string, Uint8Array>(REGISTRY_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' }),
      signer: this.signer,
      hiveId: () => this.hive.membership.hiveId,
      isMember: (peer) => this.hive.membership.isMember(peer),
      transient: this.transientLink,
      host: this.libp2p,
      memory: this.agents,
      disk: this.components,
      inspect: inspectForRegistry,
      gate: this.gate,
      log: this.log.child('registry'),
      ...(this.init.placement?.maxAgentBytes != null ? { maxComponentBytes: this.init.placement.maxAgentBytes } : {})
    })

    this.taskArchive = createTaskArchive({}, {
      db: this.db.sublevel<string, string>(TASKS_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'utf8' }),
      placement: this.placement,
      log: this.log.child('tasks')
    })

    // ---- flows: workflows whose steps are placed tasks, kept durably on this device ----
    this.flows = createFlows({
      db: this.db.sublevel<string, string>('flows', { keyEncoding: 'utf8', valueEncoding: 'utf8' }),
      agentsDb: this.db.sublevel<string, Uint8Array>('flow-agents', { keyEncoding: 'utf8', valueEncoding: 'view' }),
      placement: this.placement,
      archive: this.taskArchive,
      agents: this.agents,
      inspect: (bytes) => inspectAgentBytes(bytes).manifest,
      log: this.log.child('flows')
    })
  }

  /**
   * Opens the data directory and builds every part without starting the network. Fails fast,
   * before anything listens, when another node holds the directory or a file is damaged.
   */
  static async open (init: HiveNodeInit): Promise<HiveNode> {
    const paths = dataPaths(init.dataDir)
    checkNetInit(init.net)
    await mkdir(init.dataDir, { recursive: true, mode: 0o700 })
    const lock = await acquireLock(paths.lock, init.dataDir)
    let db: Db | undefined
    try {
      // ---- identity and storage ----
      const identity = await loadOrCreateIdentity(paths.identity)
      const name = validateNodeName(init.name ?? defaultNodeName())
      const log = init.logger ?? createLogger(name, { level: init.logLevel })
      db = new Level<string, Uint8Array>(paths.db, { keyEncoding: 'utf8', valueEncoding: 'view' })
      await db.open()

      // ---- hive membership: loaded before the network, whose gate it is ----
      const hive = await HiveMembership.open({ name, log }, {
        db: db.sublevel<string, Uint8Array>(MEMBERSHIP_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' }),
        signer: { peerId: identity.peerId.toString(), sign: identity.sign }
      })

      // ---- DHT record kinds (registered identically on every node) ----
      const records = new HiveRecords({ isMember: hive.isRecordPublisher })
      registerPeerRecord(records)
      registerPlacementRecords(records)

      // ---- metrics: one registry per node, which libp2p fills as it is built ----
      const registry = new Registry({ onDropped: (metric) => { log.warn(`metrics: ${metric} holds its maximum number of label combinations; new ones are dropped`) } })
      const metrics = new HiveMetrics({ name, version: VERSION, peerId: identity.peerId.toString() }, registry)

      // ---- network ----
      const libp2p = await buildLibp2p({
        privateKey: identity.privateKey,
        listen: init.listen ?? [`/ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}`],
        records,
        mdns: init.mdns ?? true,
        addressScope: init.addressScope ?? 'lan',
        inboundConnectionThreshold: init.inboundConnectionThreshold ?? 20,
        connectionGater: hive.gate.connectionGater,
        gossipScoreParams: hive.gate.gossipScoreParams(),
        version: VERSION,
        metrics: libp2pMetrics(registry),
        relay: init.relay ?? false,
        ...(init.relayLimits != null ? { relayLimits: init.relayLimits } : {}),
        ...(init.pingTimeoutMs != null ? { pingTimeoutMs: init.pingTimeoutMs } : {})
      })

      return new HiveNode({ init, lock, identity, db, libp2p, records, hive, name, log, metrics })
    } catch (err) {
      await db?.close().catch(() => {})
      await lock.release()
      throw err
    }
  }

  get peerId (): PeerId {
    return this.identity.peerId
  }

  get running (): boolean {
    return this.state === 'running'
  }

  get apiUrl (): string | undefined {
    return this.api?.url
  }

  get signer (): RecordSigner {
    return { peerId: this.peerId.toString(), sign: this.identity.sign }
  }

  async start (): Promise<void> {
    if (this.state !== 'stopped') return
    this.state = 'starting'
    try {
      this.registerRuntime('wasm-component', () => {
        const r = this.sandbox.runtime()
        return { name: 'wasm-component', status: r.status === 'running' ? 'ready' : 'unavailable', detail: `WebAssembly components (${r.world}) through ${r.engine}`, world: r.world, permissions: r.permissions }
      })
      for (const [name, probe] of runtimeProbes(this)) this.registerRuntime(name, probe)

      this.libp2p.addEventListener('peer:discovery', (event) => {
        const id = event.detail.id
        if (id.equals(this.peerId) || this.libp2p.getConnections(id).length > 0) return
        // a member that is not a neighbour is reached through the mesh, not dialled
        if (this.hive.membership.isMember(id.toString()) && !this.hive.sync.neighbours().has(id.toString())) return
        this.libp2p.dial(id).catch((err: Error) => { this.log.debug(`could not dial discovered peer ${id.toString()}: ${err.message}`) })
      })
      this.contexts.onError((err) => { this.log.warn(`contexts: ${err.name}: ${err.message}`) })
      this.metrics.attach({
        placement: this.placement,
        contexts: this.contexts.store,
        ledger: this.ledger,
        sandbox: this.sandbox,
        members: () => this.hive.membership.members().length,
        connectedPeers: () => this.libp2p.getPeers().length
      })
      this.events.attach({
        self: { peerId: this.peerId.toString(), name: this.name },
        placement: this.placement,
        contexts: this.contexts.store,
        ledger: this.ledger,
        capabilities: this.capabilities,
        membership: this.hive.membership,
        host: this.libp2p
      })
      await this.contexts.start()
      await this.sandbox.start()
      await this.libp2p.start()
      const reach = createReach({ log: this.log.child('reach'), relay: this.init.relay ?? false, ...(this.init.upgradeIntervalMs != null ? { upgradeIntervalMs: this.init.upgradeIntervalMs } : {}), upgrade: this.init.upgradeToDirect ?? true }, {
        libp2p: this.libp2p,
        membership: this.hive.membership,
        sync: { addressesFor: async (peer) => this.hive.sync.addressesFor(peer) },
        listen: runtimeListener(this.libp2p),
        // heard over gossip and not a neighbour; a neighbour with no connection is not reached
        // (its last report may still be fresh: it stopped a moment ago)
        meshed: (peer) => !this.hive.sync.neighbours().has(peer) && this.capabilities.isLive(peer),
        onOutside: () => { this.hive.sync.tellAddresses() }
      })
      await this.hive.start(this.libp2p, {
        selfAddresses: () => reach.outsideAddresses(),
        relay: this.init.relay ?? false,
        ...(this.init.mesh?.redialIntervalMs != null ? { redialIntervalMs: this.init.mesh.redialIntervalMs } : {}),
        mesh: {
          ...(this.init.mesh?.idleMs != null ? { idleMs: this.init.mesh.idleMs } : {}),
          ...(this.init.mesh?.sweepMs != null ? { sweepMs: this.init.mesh.sweepMs } : {}),
          // a relay this device holds a reservation on, and one its relayed links go through
          keep: (peer) => reach.reservedOn().includes(peer) || this.libp2p.getConnections().some(c => relayOf(c.remoteAddr) === peer)
        }
      })
      this.reachPart = reach
      reach.start()
      this.setGate((peer, protocol) => this.hive.gate.allows(peer, protocol))
      this.followHiveTopics()
      await this.directLinks.start()
      await this.ledger.start()
      await this.capabilities.start()
      await this.llm.start()
      await this.taskArchive.start()
      // before placement: a halt stored before a restart holds before anything can run
      await this.control.start()
      this.hive.membership.addEventListener('change', () => { this.control.resync() })
      await this.registry.start()
      this.hive.membership.addEventListener('change', () => { this.registry.resync() })
      await this.placement.start()
      // after placement and the archive: a resumed workflow looks its tasks up in both
      await this.flows.start()

      this.api = await createApi(this, {
        port: this.init.apiPort ?? DEFAULT_API_PORT,
        paths: dataPaths(this.dataDir),
        ...(this.init.apiLimits != null ? { limits: this.init.apiLimits } : {})
      })

      this.dialBootstrap()
      await this.lock.setState('running').catch(() => {})
      this.state = 'running'
      this.log.info(`started ${this.peerId.toString()}`)
    } catch (err) {
      this.state = 'running'
      await this.stop()
      throw err
    }
  }

  /** Stops everything in reverse order of start; safe to call twice. */
  async stop (): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return
    this.state = 'stopping'
    clearTimeout(this.bootstrapTimer)
    // first, so that `status` says "stopping" while the API is already down
    await this.lock.setState('stopping').catch(() => {})
    const steps: Array<[string, () => Promise<void>]> = [
      ['api', async () => { await this.api?.stop() }],
      // before placement: a workflow stops waiting, its steps stay open and resume at the next start
      ['flows', async () => { await this.flows.stop() }],
      // placement first: runs it aborts are not reported as the agent's failure
      ['placement', async () => { await this.placement.stop() }],
      // after placement: what stopping it changed is written too
      ['tasks archive', async () => { await this.taskArchive.stop() }],
      ['control', async () => { await this.control.stop() }],
      ['registry', async () => { await this.registry.stop() }],
      // before capabilities and libp2p: calls it serves end, then the engines close
      ['llm', async () => { await this.llm.stop() }],
      ['capabilities', async () => { await this.capabilities.stop() }],
      ['sandbox', async () => { await this.sandbox.stop() }],
      ['contexts', async () => { await this.contexts.stop() }],
      ['reach', async () => { this.reachPart?.stop() }],
      ['membership', async () => { await this.hive.stop() }],
      ['ledger', async () => { await this.ledger.stop() }],
      ['direct links', async () => { await this.directLinks.stop() }],
      ['libp2p', async () => { await this.libp2p.stop() }],
      ['storage', async () => { await this.db.close() }],
      ['metrics', async () => { this.metrics.stop() }],
      ['events', async () => { this.events.stop() }],
      ['lock', async () => { await this.lock.release() }]
    ]
    for (const [label, step] of steps) {
      try {
        await step()
      } catch (err) {
        this.log.warn(`stopping ${label} failed: ${(err as Error).message}`)
      }
    }
    this.state = 'stopped'
    this.dispatchEvent(new Event('stopped'))
  }

  /** Asks whoever runs this node (the CLI's start command) to shut it down. */
  requestStop (): void {
    this.dispatchEvent(new Event('stop-requested'))
  }

  /** Capability, placement and ledger gossip go on the hive's own topics, which change with the hive. */
  private followHiveTopics (): void {
    const follow = (): void => {
      this.capabilities.setTopic(this.hive.topic('capabilities'))
      this.placement.setTopic(this.hive.topic('placement'))
      this.ledger.setTopic(this.hive.topic('ledger'))
    }
    follow()
    this.hive.membership.addEventListener('change', (event) => {
      if ((event as CustomEvent<MembershipChange>).detail.hiveChanged) follow()
    })
  }

  /**
   * An agent by name: `NAME`, `NAME@VERSION` or `NAME@TAG`, resolved through the hive's registry,
   * with its bytes (held here, or fetched from a member that holds them, checked against the
   * digest). What `run NAME`, `POST /task { agent: "notes@0.1.0" }` and workflow steps use.
   */
  readonly resolveAgent: AgentResolver = async (ref, options = {}) => this.registry.load(ref, options)
  /** Every ledger record held (every member's chain) made at or after `since`. */
  private async recordsSince (since: number, options: { signal?: AbortSignal } = {}): Promise<CountedRecord[]> {
    const out: CountedRecord[] = []
    for (const chain of await this.ledger.chains()) {
      // newest first in growing pages, until a page reaches back before `since`
      for (let limit = 256; ; limit *= 4) {
        const listed = await this.ledger.list({ signer: chain.signer, limit, ...(options.signal != null ? { signal: options.signal } : {}) })
        const oldest = listed[0]?.record?.time
        if (listed.length < limit || oldest == null || oldest < since) {
          for (const l of listed) if (l.record != null && l.record.time >= since) out.push(l.record)
          break
        }
      }
    }
    return out
  }

  haltSignal (): AbortSignal {
    return this.halting.signal
  }

  setGate (allows: PeerGate['allows']): void {
    this.gatePolicy = allows
  }

  registerRuntime (name: string, probe: () => RuntimeInfo): void {
    this.runtimeProbes.set(name, probe)
  }

  runtimes (): RuntimeInfo[] {
    return [...this.runtimeProbes.values()].map(probe => probe())
  }

  listenAddresses (): string[] {
    return this.libp2p.getMultiaddrs().map(ma => ma.toString())
  }

  get reach (): Reach {
    if (this.reachPart == null) throw new Error('the node is not started')
    return this.reachPart
  }

  peers (): PeerSummary[] {
    const links = new Map((this.reachPart?.links() ?? []).map(l => [l.peerId, l]))
    const byPeer = new Map<string, PeerSummary>()
    for (const connection of this.libp2p.getConnections()) {
      const id = connection.remotePeer.toString()
      const entry = byPeer.get(id) ?? { peerId: id, name: this.hive.membership.member(id)?.name, member: this.hive.membership.isMember(id), addresses: [], direction: connection.direction }
      const addr = connection.remoteAddr.toString()
      if (!entry.addresses.includes(addr)) entry.addresses.push(addr)
      if (connection.rtt != null) entry.latencyMs = connection.rtt
      const caps = this.capabilities.get(id)?.caps
      if (caps != null) entry.capabilities = caps
      const link = links.get(id)
      if (link != null) {
        entry.via = link.via
        if (link.relay != null) entry.relay = { peerId: link.relay, name: this.hive.membership.member(link.relay)?.name }
      }
      byPeer.set(id, entry)
    }
    return [...byPeer.values()].sort((a, b) => a.peerId.localeCompare(b.peerId))
  }

  /**
   * Members this device has no connection to but hears over the hive's gossip (their capability
   * reports are fresh): beyond an all-to-all hive, the members that are not its neighbours.
   */
  meshMembers (): MeshMember[] {
    const connected = new Set(this.libp2p.getConnections().filter(c => c.limits == null && c.status === 'open').map(c => c.remotePeer.toString()))
    return this.hive.membership.members()
      .filter(m => !m.self && !connected.has(m.peerId) && this.capabilities.isLive(m.peerId))
      .map(m => ({ peerId: m.peerId, ...(m.name != null ? { name: m.name } : {}) }))
      .sort((a, b) => (a.name ?? a.peerId).localeCompare(b.name ?? b.peerId))
  }

  /** Publishes this device's `peer` record (name, version, addresses) in the DHT. */
  async publishPeerRecord (options: { signal?: AbortSignal } = {}): Promise<void> {
    await publishPeerRecord(this.peerRecordDht, this.signer, { name: this.name, version: VERSION, addresses: this.listenAddresses() }, options)
  }

  /** The DHT as the `peer` record uses it: puts validated first (putRecord), gets as values. */
  private get peerRecordDht (): PeerRecordDht {
    const dht = this.libp2p.services.dht
    return {
      put: async (key, value, options) => this.putRecord(key, value, options),
      get: async function * (key, options) {
        for await (const event of dht.get(key, options)) {
          if (event.name === 'VALUE') yield event.value
        }
      }
    }
  }

  /**
   * Validates a record as every peer will, then stores it in the DHT. kad-dht keeps a local put
   * without validating it, so the check happens here first. Resolves to the number of peers
   * that stored it.
   */
  async putRecord (key: Uint8Array, value: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<number> {
    await this.records.open(key, value)
    let stored = 0
    for await (const event of this.libp2p.services.dht.put(key, value, { signal: options.signal })) {
      if (event.name === 'PEER_RESPONSE' && event.record != null) stored++
    }
    return stored
  }

  /** Looks a device's `peer` record up in the DHT; undefined when no valid one is found. */
  async findPeerRecord (peerId: string, options: { signal?: AbortSignal } = {}): Promise<PeerRecord | undefined> {
    return findPeerRecord(this.peerRecordDht, this.records, peerId, options)
  }

  private dialBootstrap (): void {
    const addrs = this.init.bootstrap ?? []
    if (addrs.length === 0) return
    const attempt = (): void => {
      for (const addr of addrs) {
        const ma = multiaddr(addr)
        const id = ma.getComponents().find(c => c.name === 'p2p')?.value
        if (id != null && this.libp2p.getConnections(peerIdFromString(id)).length > 0) continue
        this.libp2p.dial(ma).catch((err: Error) => { this.log.debug(`bootstrap ${addr}: ${err.message}`) })
      }
      if (this.state === 'running' || this.state === 'starting') {
        this.bootstrapTimer = setTimeout(attempt, BOOTSTRAP_RETRY_MS)
        this.bootstrapTimer.unref()
      }
    }
    attempt()
  }
}
