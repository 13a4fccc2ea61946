// Agent API routes, behind `hive-node run` on a running node:
//   POST /agents/run   { agent?: base64 component, digest?: hex, input, contextId?, timeoutMs? }
//                      runs the agent here and answers { output, digest, agent, runId, durationMs, warm,
//                      logs: [{ level, message }], record: { task, seq, hash } }. Every run that
//                      started leaves a ledger record, ok or error, as a placed task's does.
//                      With only `digest`, the node uses the agent it already holds and answers
//                      404 AgentNotLoaded when it holds none, so a client sends the bytes once.
//                      An agent whose manifest asks for a context permission needs a contextId
//                      (400 ContextRequired), or what it writes would be lost.
//   GET  /agents       { agents: [{ digest, size, name, version, description, permissions, models?, limits,
//                      tasks, lastTaskAt? }] }: the agents this node holds (to run, or to hand to a
//                      device that runs a task), with how many of the tasks it remembers used each.
// Sandbox failures are `{ error: { code, message } }`, the code being the sandbox error's name:
// the agent's own error is AgentFailed (message = the agent's text), a trap AgentTrapped, a
// deadline AgentTimedOut, the memory cap MemoryLimitExceeded, a refused component 400 or 403.

import { createHash, randomBytes } from 'node:crypto'
import { z } from 'zod'
import { AgentFailedError, AgentTimedOutError, AgentTrappedError, MemoryLimitExceededError, inspectAgentBytes, isAgentDigest } from '../../sandbox/index.ts'
import { fitNetUsage } from '../../ledger/index.ts'
import { llmUsage } from '../executor.ts'
import { parseInput, requireContextId } from './input.ts'
import { ApiError } from '../errors.ts'
import type { AgentLlmCall, LoadedAgent, NetRunReport, RunResult } from '../../sandbox/index.ts'
import type { Digest } from '../../protocol/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

/** A JS agent is ~12 MB, ~16 MB in base64. */
const MAX_AGENT_BODY_BYTES = 64 * 1024 * 1024


const runBody = z.object({
  agent: z.string().max(MAX_AGENT_BODY_BYTES).optional(),
  digest: z.string().refine(isAgentDigest, 'a lowercase hex SHA-256').optional(),
  input: z.string(),
  contextId: z.string().min(1).max(128).optional(),
  timeoutMs: z.int().min(1).optional()
}).refine(b => b.agent !== undefined || b.digest !== undefined, 'give the agent (base64) or its digest')

/** The manifest of an agent's bytes; undefined when they are not an agent (the sandbox says why). */
function inspectManifest (bytes: Uint8Array): { name: string, permissions: readonly string[] } | undefined {
  try {
    return inspectAgentBytes(bytes).manifest
  } catch {
    return undefined
  }
}

export interface AgentLogLine { level: string, message: string }
/** The ledger record a run left: its task id (a fresh one per run), position and hash. */
export interface RunRecord { task: string, seq: number, hash: string }
export type RunResponse = RunResult & { logs: AgentLogLine[], record: RunRecord }

/** Failures of an agent that ran: the run happened, and the ledger says so. */
const RAN = [AgentFailedError, AgentTrappedError, AgentTimedOutError, MemoryLimitExceededError]

const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex')

/** What GET /agents says of one agent. */
export interface HeldAgent {
  digest: string
  size: number
  name?: string
  version?: string
  description?: string
  permissions?: string[]
  models?: string[]
  limits?: { timeoutMs: number, memoryMiB: number }
  /** Why its manifest could not be read (bytes held for a task that are not a valid agent). */
  problem?: string
  tasks: number
  lastTaskAt?: number
}

/** Manifests read once per digest: a JS agent is megabytes to parse. */
const MAX_MANIFESTS_KEPT = 128

export function routes (app: FastifyInstance, node: ApiNode): void {
  const manifests = new Map<string, Omit<HeldAgent, 'tasks' | 'lastTaskAt' | 'size' | 'digest'>>()
  const manifestOf = (digest: string): Omit<HeldAgent, 'tasks' | 'lastTaskAt' | 'size' | 'digest'> => {
    const kept = manifests.get(digest)
    if (kept !== undefined) return kept
    const bytes = node.agents.get(digest as Digest)
    let info: Omit<HeldAgent, 'tasks' | 'lastTaskAt' | 'size' | 'digest'>
    try {
      const m = inspectAgentBytes(bytes ?? new Uint8Array()).manifest
      info = { name: m.name, version: m.version, description: m.description, permissions: [...m.permissions], ...(m.models !== undefined ? { models: [...m.models] } : {}), limits: m.limits }
    } catch (err) {
      info = { problem: `${(err as Error).name}: ${(err as Error).message}` }
    }
    manifests.set(digest, info)
    if (manifests.size > MAX_MANIFESTS_KEPT) manifests.delete(manifests.keys().next().value as string)
    return info
  }

  app.get('/agents', async () => {
    const tasks = node.placement.list({ limit: 1000 })
    const agents: HeldAgent[] = node.agents.list().reverse().map(({ digest, size }) => {
      const used = tasks.filter(t => t.agent === digest)
      const last = Math.max(0, ...used.map(t => t.createdAt))
      return { digest, size, ...manifestOf(digest), tasks: used.length, ...(last > 0 ? { lastTaskAt: last } : {}) }
    })
    return { agents }
  })

  app.post('/agents/run', { bodyLimit: MAX_AGENT_BODY_BYTES }, async (request) => {
    const body = parseInput(runBody, request.body)
    // a node whose ledger chain is damaged executes nothing, here as for placed tasks
    const refused = node.control.refusal() ?? node.ledger.unwritable()
    if (refused != null) throw refused
    let agent: LoadedAgent | Uint8Array
    if (body.agent !== undefined) {
      agent = new Uint8Array(Buffer.from(body.agent, 'base64'))
    } else {
      const held = node.sandbox.loaded(body.digest as string)
      if (held === undefined) throw new ApiError(404, 'AgentNotLoaded', `this node holds no agent ${body.digest ?? ''}; send the component itself`)
      agent = held
    }
    // an agent that would write into a context nobody named is refused before it runs
    const manifest = agent instanceof Uint8Array ? inspectManifest(agent) : agent.manifest
    if (manifest !== undefined) requireContextId(manifest, manifest.permissions, body.contextId)
    const logs: AgentLogLine[] = []
    const calls: AgentLlmCall[] = []
    const task = randomBytes(16).toString('hex')
    // the run's http requests, told as it ends however it ends, for its record
    let requests: NetRunReport | undefined
    const record = async (status: 'ok' | 'error' | 'cancelled', agentDigest: string, output: string, usage = llmUsage(calls)): Promise<RunRecord> => {
      const net = fitNetUsage(requests)
      const appended = await node.ledger.append({
        task,
        agent: agentDigest,
        input: sha256Hex(body.input),
        output: sha256Hex(output),
        status,
        placement: 'run on this device only (POST /agents/run)',
        ...(usage.length > 0 ? { llm: usage } : {}),
        ...(net != null ? { net } : {})
      })
      return { task, seq: appended.seq, hash: Buffer.from(appended.hash).toString('hex') }
    }
    let result: RunResult
    // a halt stops this run as it stops placed ones: recorded `cancelled`, answered with `Halted`
    const halt = node.haltSignal()
    try {
      result = await node.sandbox.run(agent, {
        input: body.input,
        signal: halt,
        onLog: (e) => { logs.push({ level: e.level, message: e.message }) },
        onLlmCall: (call) => { calls.push(call) },
        onNetReport: (report) => { requests = report },
        ...(body.contextId !== undefined ? { contextId: body.contextId } : {}),
        ...(body.timeoutMs !== undefined ? { timeoutMs: body.timeoutMs } : {})
      })
    } catch (err) {
      if (halt.aborted) {
        const digest = agent instanceof Uint8Array ? createHash('sha256').update(agent).digest('hex') : agent.digest
        const reason = halt.reason as Error
        await record('cancelled', digest, reason.message)
        throw reason
      }
      // an agent that ran and failed leaves an error record; a component refused before it
      // ran (not WebAssembly, another world, an ungranted import) is no execution
      if (RAN.some(E => err instanceof E)) {
        const digest = agent instanceof Uint8Array ? createHash('sha256').update(agent).digest('hex') : agent.digest
        await record('error', digest, `${(err as Error).name}: ${(err as Error).message}`)
      }
      // sandbox errors keep their code; node/api/errors.ts gives the status
      throw err
    }
    return { ...result, logs, record: await record('ok', result.digest, result.output, result.llm.usage) } satisfies RunResponse
  })
}
