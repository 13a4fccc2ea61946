// What the API's routes read from the node: a narrow interface, so the routes depend on the
// parts they use rather than on the HiveNode class (which implements it), and node/api never
// imports hive-node.ts.

import type { ReachReport } from '../reach.ts'
import type { Contexts } from '../../crdt/index.ts'
import type { Ledger } from '../../ledger/index.ts'
import type { AgentStore, BudgetKeeper, Capabilities, CapabilityReport, Control, Digest, Membership, Pairing, Placement, Registry as AgentRegistry, ResolvedAgent } from '../../protocol/index.ts'
import type { CodeRuntime, Sandbox } from '../../sandbox/index.ts'
import type { TaskArchive } from '../task-archive.ts'
import type { Flows } from '../flows/index.ts'
import type { NodeLlm } from '../llm.ts'
import type { HiveMetrics } from '../metrics/hive.ts'
import type { EventHub } from '../events/hub.ts'
import type { Connection, PeerId } from '@libp2p/interface'

export interface PeerSummary {
  peerId: string
  name?: string
  /** A member of this device's hive (false: a connection that is only pairing). */
  member?: boolean
  addresses: string[]
  direction: 'inbound' | 'outbound'
  latencyMs?: number
  /** What the peer last reported on capability gossip, while it is fresh. */
  capabilities?: CapabilityReport
  /** How it is connected: on this device's own network, directly across networks, or through a relay. */
  via?: 'lan' | 'direct' | 'relayed'
  /** The member relaying, for a relayed link. */
  relay?: { peerId: string, name?: string }
}

/**
 * A member this device has no connection to that it reaches through the hive's mesh: beyond a
 * hive of 9 a device connects to its neighbours only, and hears the others over gossip (their
 * capability reports are fresh). Not a fault: see the README's Scale section.
 */
export interface MeshMember {
  peerId: string
  name?: string
}

export interface RuntimeInfo {
  name: string
  /** `agent` (default): runs tasks, and is gossiped; `llm`: a model route; `cloud`: a cloud service. */
  kind?: 'agent' | 'llm' | 'cloud'
  status: 'ready' | 'unavailable' | 'starting' | 'not built' | 'not configured'
  detail?: string
  /** What it would take to make it ready, when it is not. */
  needs?: string
  [extra: string]: unknown
}


export interface ApiNode {
  readonly name: string
  readonly peerId: PeerId
  readonly dataDir: string
  readonly startedAt: number
  readonly apiUrl: string | undefined
  readonly log: { warn: (message: string) => void }
  listenAddresses: () => string[]
  peers: () => PeerSummary[]
  /** Members reached through the mesh, without a connection of their own. */
  meshMembers: () => MeshMember[]
  runtimes: () => RuntimeInfo[]
  /** Stops the node after the current answer has gone out. */
  requestStop: () => void
  /** Open connections, for the member list's `connected`. */
  readonly libp2p: { getConnections: () => Connection[] }
  readonly hive: { readonly membership: Membership, readonly pairing: Pairing, strangersNearby: () => number }
  /** Beyond one LAN: relays, reservations, how each member is reached (GET /reach). */
  readonly reach: { report: () => Promise<ReachReport> }
  readonly contexts: Pick<Contexts, 'store' | 'presence'>
  readonly sandbox: Pick<Sandbox, 'loaded' | 'run'>
  /** The code tasks' interpreter component. */
  readonly codeRuntime: Pick<CodeRuntime, 'component'>
  readonly ledger: Pick<Ledger, 'append' | 'verify' | 'self' | 'list' | 'chains' | 'health' | 'unwritable' | 'store'>
  readonly capabilities: Pick<Capabilities, 'view'>
  readonly placement: Pick<Placement, 'submit' | 'get' | 'wait' | 'explain' | 'list' | 'cancel'>
  /** The kill switch: whether the hive is halted, by whom, and the halt and resume themselves. */
  readonly control: Pick<Control, 'state' | 'refusal' | 'halt' | 'resume' | 'policy' | 'setPolicy' | 'budgets' | 'setBudgets'>
  /** What each budget used today, counted from every member's ledger. */
  readonly budgets: Pick<BudgetKeeper, 'ready' | 'usage'>
  /** Aborted when the hive halts: what runs here outside placement (`POST /agents/run`) stops too. */
  haltSignal: () => AbortSignal
  readonly taskArchive: Pick<TaskArchive, 'get' | 'list'>
  /** Workflows submitted here: run, look up, wait for, cancel, explain. */
  readonly flows: Pick<Flows, 'run' | 'get' | 'list' | 'wait' | 'cancel' | 'explain'>
  /** The node's one agent store: a task may name an agent by digest once it is held here. */
  readonly agents: Pick<AgentStore, 'get' | 'list'>
  /** Agents by name: the hive's catalog, publish and yank. */
  readonly registry: Pick<AgentRegistry, 'list' | 'show' | 'resolve' | 'publish' | 'yank'>
  /** An agent by name (`NAME`, `NAME@VERSION`, `NAME@TAG`) with its bytes, fetched from a member when not held here. */
  resolveAgent: (ref: string, options?: { signal?: AbortSignal }) => Promise<ResolvedAgent>
  /** LLM calls: the waterfall, the budget and the cloud keys this device holds. */
  readonly llm: Pick<NodeLlm, 'router' | 'budget' | 'setBudget' | 'budgetSetting' | 'cloudSet' | 'cloudRemove' | 'cloudList'>
  /** The metrics `GET /metrics` renders. */
  readonly metrics: Pick<HiveMetrics, 'render'>
  /** What `GET /events` streams, and the log lines of tasks run here. */
  readonly events: Pick<EventHub, 'subscribe' | 'hello' | 'taskLogs'>
}
