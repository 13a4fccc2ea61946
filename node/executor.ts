// The executor placement runs a won task with: the sandbox, with the task's permissions
// checked against what the agent asks for and what this node offers.

import { fitNetUsage } from '../ledger/index.ts'
import { NET_PREFIX, PERMISSIONS, heldPermissions, inspectAgentBytes } from '../sandbox/index.ts'
import type { AgentLogLine, ExecutionOutcome, Executor, TaskId } from '../protocol/index.ts'
import type { AgentLlmCall, AgentLlmUsage, AgentLogEntry, NetRunReport, Sandbox } from '../sandbox/index.ts'

/** One log line per model call of a run: what `hive-node run` prints. */
export function llmCallLine (call: AgentLlmCall): string {
  const where = call.route.kind === 'local' ? 'this device' : call.route.kind === 'peer' ? `peer ${call.route.device}` : `cloud ${call.route.provider}`
  return `llm ${call.op} ${call.model} on ${where}: ${call.tokensIn} tokens in, ${call.tokensOut} out, ${Math.round(call.ms)} ms`
}

/** A failed run's calls per route kind (a run that ends has them in its result). */
export function llmUsage (calls: AgentLlmCall[]): AgentLlmUsage[] {
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
  // origins are granted one by one: the run holds those the task grants, and a request to another is refused
  const missing = manifest.permissions.filter(p => !p.startsWith(NET_PREFIX) && !permissions.includes(p))
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
export function sandboxExecutor (sandbox: Sandbox, options: { onLine?: (task: TaskId, line: AgentLogLine) => void } = {}): Executor {
  return {
    async run (agent, input, { taskId, contextId, permissions, signal, onLog: streamed }) {
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
        const withheld = heldPermissions(manifest.permissions).filter(p => !offered.includes(p))
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
      // every line goes out as it is logged (the node's event stream, and the submitter's when that
      // is another device); the first 200 travel with the result
      const line = (l: AgentLogLine): void => {
        if (logs.length < 200) logs.push(l)
        options.onLine?.(taskId, l)
        streamed?.(l)
      }
      const onLog = (e: AgentLogEntry): void => { line({ level: e.level, message: e.message }) }
      // where each model call ran travels back to the submitter with the logs, so `run` prints it
      const calls: AgentLlmCall[] = []
      const onLlmCall = (call: AgentLlmCall): void => {
        calls.push(call)
        line({ level: 'info', message: llmCallLine(call) })
      }
      // the run's requests per origin, however it ends: its ledger record carries them, and its
      // log lines say them to whoever watches the run
      let report: NetRunReport | undefined
      const requests = (): { net?: NonNullable<ReturnType<typeof fitNetUsage>> } => {
        for (const o of report?.origins ?? []) line({ level: 'info', message: `http ${o.origin}: ${o.requests} request${o.requests === 1 ? '' : 's'}` })
        const net = fitNetUsage(report)
        return net != null ? { net } : {}
      }
      try {
        const result = await sandbox.run(loaded, { input, signal, onLog, onLlmCall, onNetReport: (r) => { report = r }, permissions, ...(contextId != null ? { contextId } : {}) })
        const outcome = { ok: true as const, output: result.output, logs, ...(result.llm.usage.length > 0 ? { llm: result.llm.usage } : {}), ...requests() }
        return outcome
      } catch (err) {
        const usage = llmUsage(calls)
        const outcome = { ...failure(err), ...requests(), logs, ...(usage.length > 0 ? { llm: usage } : {}) }
        return outcome
      }
    }
  }
}
