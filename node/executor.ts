// The node's side of placement: capability gossip and the placement service built from the
// node's parts, with the sandbox as the executor and the ledger as the record keeper.

import { createCapabilities, createPlacement } from '../protocol/index.ts'
import { PERMISSIONS, inspectAgentBytes } from '../sandbox/index.ts'
import type {
  AgentLogLine, AgentStore, Capabilities, Digest, CapabilitiesInit, CapabilityOverrides, ExecutionOutcome, Executor, HiveRecords, PeerGate, Placement, PlacementComponents, PlacementInit, RecordSigner
} from '../protocol/index.ts'
import type { Ledger } from '../ledger/index.ts'
import type { AgentLogEntry, Sandbox } from '../sandbox/index.ts'
import type { HiveLibp2p } from './libp2p.ts'
import type { Logger } from './logger.ts'

/** Capability gossip settings a node may be started with (tests shorten the intervals). */
export type CapabilitySettings = Pick<CapabilitiesInit, 'intervalMs' | 'expireMs' | 'ollamaUrl' | 'ollamaTimeoutMs' | 'powerSupplyDir'>

export interface TasksInit {
  name: string
  version: string
  capabilities?: CapabilitySettings
  capabilityOverrides?: CapabilityOverrides
  placement?: PlacementInit
}

export interface TasksComponents {
  /** The node's one agent store; placement runs and serves agents from it. */
  agents: AgentStore<Digest>
  libp2p: HiveLibp2p
  records: HiveRecords
  signer: RecordSigner
  sandbox: Sandbox
  ledger: Ledger
  gate: PeerGate
  isMember: (peerId: string) => boolean
  /** Names of the runtimes this node offers and has ready. */
  runtimes: () => string[]
  log: Logger
}

/** Failures of this node, not of the agent: another node should try. */
const NODE_FAULTS = new Set(['SandboxNotRunning', 'AbortError', 'CompileFailed'])

function failure (err: unknown): ExecutionOutcome {
  const e = err instanceof Error ? err : new Error(String(err))
  return { ok: false, error: `${e.name}: ${e.message}`, ...(NODE_FAULTS.has(e.name) ? { retry: true } : {}) }
}

function notGranted (manifest: { name: string, permissions: readonly string[] }, permissions: string[]): ExecutionOutcome | undefined {
  const missing = manifest.permissions.filter(p => !permissions.includes(p))
  if (missing.length === 0) return undefined
  return {
    ok: false,
    error: `PermissionNotGranted: agent ${manifest.name} asks for ${missing.join(', ')}, which the task does not grant ` +
      `(it grants ${permissions.length > 0 ? permissions.join(', ') : 'nothing'}); submit it with those permissions`
  }
}

/**
 * Runs a placed task in the sandbox. The task's permissions are what its submitter grants: an
 * agent whose manifest asks for more is refused before it runs. A sandbox built to withhold a
 * permission the agent needs and the task grants gives the task up (`retry`), so another node
 * runs it, rather than failing it as the agent's fault.
 */
export function sandboxExecutor (sandbox: Sandbox): Executor {
  return {
    async run (agent, input, { contextId, permissions, signal }) {
      const offered = sandbox.runtime().permissions
      if (offered.length < PERMISSIONS.length) {
        let manifest
        try {
          manifest = inspectAgentBytes(agent).manifest
        } catch (err) {
          return failure(err)
        }
        // what the task does not grant, no node may grant: that is the agent's failure
        const ungranted = notGranted(manifest, permissions)
        if (ungranted != null) return ungranted
        const withheld = manifest.permissions.filter(p => !offered.includes(p))
        if (withheld.length > 0) {
          return {
            ok: false,
            retry: true,
            error: `PermissionNotOffered: the agent needs ${withheld.join(', ')}, which this node does not grant to agents (it grants ${offered.join(', ') || 'nothing'})`
          }
        }
      }
      let loaded
      try {
        loaded = await sandbox.load(agent, { signal })
      } catch (err) {
        return failure(err)
      }
      const ungranted = notGranted(loaded.manifest, permissions)
      if (ungranted != null) return ungranted
      const logs: AgentLogLine[] = []
      const onLog = (e: AgentLogEntry): void => { if (logs.length < 200) logs.push({ level: e.level, message: e.message }) }
      try {
        const result = await sandbox.run(loaded, { input, signal, onLog, ...(contextId != null ? { contextId } : {}) })
        return { ok: true, output: result.output, logs }
      } catch (err) {
        return { ...failure(err), logs }
      }
    }
  }
}

export function createNodeTasks (init: TasksInit, components: TasksComponents): { capabilities: Capabilities, placement: Placement } {
  const { libp2p, log } = components
  const capabilities = createCapabilities({
    name: init.name,
    version: init.version,
    runtimes: components.runtimes,
    ...init.capabilities,
    ...(init.capabilityOverrides != null ? { overrides: init.capabilityOverrides } : {})
  }, {
    self: libp2p.peerId.toString(),
    pubsub: libp2p.services.pubsub,
    isMember: components.isMember,
    log: log.child('capabilities')
  })
  const placementComponents: PlacementComponents & { agents: AgentStore<Digest> } = {
    agents: components.agents,
    host: libp2p,
    pubsub: libp2p.services.pubsub,
    dht: libp2p.services.dht,
    records: components.records,
    signer: components.signer,
    capabilities,
    executor: sandboxExecutor(components.sandbox),
    ledger: { append: async (record, options) => components.ledger.append(record, options) },
    gate: components.gate,
    isMember: components.isMember,
    log: log.child('placement')
  }
  const placement = createPlacement(init.placement ?? {}, placementComponents)
  return { capabilities, placement }
}
