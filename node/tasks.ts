// The node's side of placement: capability gossip and the placement service built from the
// node's parts, with the sandbox as the executor and the ledger as the record keeper.

import { createCapabilities } from '../protocol/capabilities/index.ts'
import { createPlacement } from '../protocol/placement/index.ts'
import { PERMISSIONS, inspectAgentBytes } from '../sandbox/index.ts'
import type { Capabilities, CapabilitiesInit, CapabilityOverrides } from '../protocol/capabilities/index.ts'
import type { AgentLogLine, ExecutionOutcome, Executor, Placement, PlacementInit } from '../protocol/placement/index.ts'
import type { HiveRecords, PeerGate, RecordSigner } from '../protocol/index.ts'
import type { Ledger } from '../ledger/index.ts'
import type { AgentLlmCall, AgentLlmUsage, AgentLogEntry, Sandbox } from '../sandbox/index.ts'
import type { HiveLibp2p } from './libp2p.ts'
import type { Logger } from './logger.ts'

/** Capability gossip settings a node may be started with (tests shorten the intervals). */
export type CapabilitySettings = Pick<CapabilitiesInit, 'intervalMs' | 'expireMs' | 'ollamaUrl' | 'ollamaTimeoutMs' | 'powerSupplyDir' | 'localModels' | 'drmDir'>

export interface TasksInit {
  name: string
  version: string
  capabilities?: CapabilitySettings
  capabilityOverrides?: CapabilityOverrides
  placement?: PlacementInit
}

export interface TasksComponents {
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

/** One log line per model call of a run: what `hive-node run` prints. */
export function llmCallLine (call: AgentLlmCall): string {
  const where = call.route.kind === 'local' ? 'this device' : call.route.kind === 'peer' ? `peer ${call.route.device}` : `cloud ${call.route.provider}`
  return `llm ${call.op} ${call.model} on ${where}: ${call.tokensIn} tokens in, ${call.tokensOut} out, ${Math.round(call.ms)} ms`
}

/** A failed run's calls per route kind (a run that ends has them in its result). */
function llmUsage (calls: AgentLlmCall[]): AgentLlmUsage[] {
  const order = ['local', 'peer', 'cloud'] as const
  return order.map(route => {
    const of = calls.filter(c => c.route.kind === route)
    return { route, calls: of.length, tokensIn: of.reduce((n, c) => n + c.tokensIn, 0), tokensOut: of.reduce((n, c) => n + c.tokensOut, 0) }
  }).filter(u => u.calls > 0)
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
      // where each model call ran travels back to the submitter with the logs, so `run` prints it
      const calls: AgentLlmCall[] = []
      const onLlmCall = (call: AgentLlmCall): void => {
        calls.push(call)
        if (logs.length < 200) logs.push({ level: 'info', message: llmCallLine(call) })
      }
      try {
        const result = await sandbox.run(loaded, { input, signal, onLog, onLlmCall, ...(contextId != null ? { contextId } : {}) })
        const outcome = { ok: true as const, output: result.output, logs, ...(result.llm.usage.length > 0 ? { llm: result.llm.usage } : {}) }
        return outcome
      } catch (err) {
        const usage = llmUsage(calls)
        const outcome = { ...failure(err), logs, ...(usage.length > 0 ? { llm: usage } : {}) }
        return outcome
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
  const placement = createPlacement(init.placement ?? {}, {
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
  })
  // the bid of a device counts the tasks it runs: capabilities learns the count from placement
  placement.on('running', ({ count }) => { capabilities.setRunning(count) })
  return { capabilities, placement }
}
