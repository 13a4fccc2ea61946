// The workflow engine: runs a planned workflow on its submitter, each step (and each element of a
// fork) as a task placed through placement's normal auction, and keeps every decision in LevelDB
// before acting on it, so a restart resumes a workflow from what was done.
//
// The invariant: a unit of work (a step, or one element of a fork) is written with the id of the
// task about to run it *before* that task is submitted (placement takes the id we chose), and its
// output is written before the task's winner hears that its result was accepted (placement's
// `keepResult`, awaited before the "accepted" answer goes out; the winner appends its `ok` ledger
// record only after it). So after a crash, a unit whose last attempt has
//   - an output written: is done; it is not run again;
//   - a task still known to placement and not ended: is waited for;
//   - a task the archive holds as done: is done, with the archived output;
//   - anything else (interrupted, unknown): never had its result accepted, so no `ok` record can
//     exist for it (a winner still running it is told "unknown task" and records it
//     `discarded`): a new task is submitted, under a new id written first.
// The one outcome left is a crash after the output was written and before the winner heard
// "accepted": the output is used, and the winner, still delivering, is answered "accepted" again
// by the restarted node (`keptBefore`: the same task, executor and output as the unit kept), so
// it records its run `ok`. A step is never run twice to completion and never has two `ok` records.
//
// Keys (one sublevel, utf8 JSON):
//   flow!<id>                         the flow: plan, input, agents by step, status, output, error
//   order!<createdAt 13 digits>!<id>  "" (oldest first, for the list and for pruning)
//   open!<id>                         "": flows not ended, resumed at start
//   unit!<id>!<step>!<index or ->     a unit's attempts (task ids), status and output
//   fork!<id>!<step>                  a fork's width, once its elements are known
// Agent bytes by digest live in a second sublevel, written before the flow that names them.

import { createHash, randomBytes } from 'node:crypto'
import { isEnded, newTaskId } from '../../protocol/index.ts'
import { AgentNotFoundError, FlowAlreadyEndedError, FlowNotFoundError, FlowsNotRunningError, InvalidWorkflowError, TooManyFlowsError } from './errors.ts'
import { checkForkArray, classifyAgent, planWorkflow, renderTemplate } from './definition.ts'
import { FLOW_LIMITS } from './limits.ts'
import type { Digest, Explanation, KeptBefore, KeptResult, Placement, SubmitOptions, TaskId, TaskView } from '../../protocol/index.ts'
import type { Plan, PlannedStep } from './definition.ts'
import type { AbstractSublevel } from 'abstract-level'

type TextDb = AbstractSublevel<any, any, string, string>
type BytesDb = AbstractSublevel<any, any, string, Uint8Array>

/** classic-level takes `sync`; abstract-level's option types do not name it. */
const SYNC = { sync: true } as Record<string, unknown>

export type FlowStatus = 'running' | 'done' | 'failed' | 'cancelled'
export type UnitStatus = 'waiting' | 'running' | 'done' | 'failed' | 'cancelled'

export interface Attempt {
  task: string
  at: number
  /** How it ended; absent while it runs (or when the node stopped under it). */
  outcome?: 'done' | 'failed' | 'timed-out' | 'cancelled' | 'interrupted'
  error?: string
}

interface UnitState {
  status: UnitStatus
  attempts: Attempt[]
  output?: string
  executor?: string
  error?: string
}

interface FlowRecord {
  id: string
  name?: string
  createdAt: number
  endedAt?: number
  plan: Plan
  input: string
  /** The digest of each step's agent. */
  agents: Record<string, string>
  status: FlowStatus
  output?: string
  error?: { step?: string, code: string, message: string }
}

export interface FlowUnitView {
  index?: number
  status: UnitStatus
  task?: string
  attempts: Attempt[]
  /** Where its result came from. */
  executor?: string
  /** The winner of the task under way. */
  winner?: string
  error?: string
}

export interface FlowStepView {
  name: string
  agent: string
  status: UnitStatus
  after: string[]
  fork?: { width?: number, concurrency: number, done: number }
  units: FlowUnitView[]
  error?: string
}

export interface FlowView {
  id: string
  name?: string
  status: FlowStatus
  createdAt: number
  endedAt?: number
  output?: string
  outputStep: string
  error?: { step?: string, code: string, message: string }
  steps: FlowStepView[]
}

export interface FlowStepExplanation {
  step: string
  index?: number
  task: string
  attempts: number
  status: UnitStatus
  explanation?: Explanation
  view?: TaskView
}

export interface FlowExplanation {
  flow: FlowView
  units: FlowStepExplanation[]
}

export interface RunRequest {
  workflow: unknown
  input?: string
  /** Agent bytes the workflow's steps name by digest (the CLI sends those it read from files). */
  agents?: ReadonlyMap<string, Uint8Array>
}

/** The slice of placement the engine uses: submit with a chosen id, wait, look up, cancel, explain. */
export type FlowPlacement = Pick<Placement, 'get' | 'wait' | 'cancel' | 'explain'> & {
  submit: (task: Parameters<Placement['submit']>[0], options: SubmitOptions) => Promise<TaskView>
}

export interface FlowsComponents {
  db: TextDb
  agentsDb: BytesDb
  placement: FlowPlacement
  /** The tasks this device submitted, kept over restarts. */
  archive: { get: (taskId: string) => Promise<{ view: TaskView, explanation?: Explanation } | undefined> }
  /** Agents the node holds by digest. */
  agents: { get: (digest: Digest) => Uint8Array | undefined }
  /** The permissions an agent's manifest asks for, and its name (throws when the bytes are no agent). */
  inspect: (bytes: Uint8Array) => { name: string, permissions: readonly string[] }
  /**
   * Resolves a registry name (`name@version`) to an agent's bytes. The node has no registry yet;
   * one plugs in here. Absent: such a step is refused with what to use instead.
   */
  resolveAgent?: (name: string, version: string, options: { signal?: AbortSignal }) => Promise<Uint8Array>
  log: { warn: (message: string) => void, info?: (message: string) => void }
}

export interface Flows {
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Checks a workflow (before anything runs), keeps it and its agents, and starts it. */
  run: (request: RunRequest) => Promise<FlowView>
  get: (id: string) => Promise<FlowView | undefined>
  list: (options?: { limit?: number }) => Promise<FlowView[]>
  /** Resolves when the workflow has ended, or when the signal aborts (with its view then). */
  wait: (id: string, options?: { signal?: AbortSignal }) => Promise<FlowView>
  /** Ends a running workflow as cancelled and cancels every task of it under way. */
  cancel: (id: string) => Promise<FlowView>
  explain: (id: string, options?: { signal?: AbortSignal }) => Promise<FlowExplanation>
  /** Placement's `keepResult`: writes a step's output before its winner hears it was accepted. */
  keep: (task: KeptResult) => Promise<void>
  /**
   * Placement's `keptBefore`: whether this result is the output a step kept before the node
   * stopped, for a task placement no longer holds. The node may have been killed after the
   * output was written and before the winner heard "accepted"; answered accepted again, the
   * winner records the run `ok`, and the step has its one `ok` record.
   */
  keptBefore: (task: KeptBefore) => Promise<boolean>
}

const FLOW = 'flow!'
const ORDER = 'order!'
const OPEN = 'open!'
const UNIT = 'unit!'
const FORK = 'fork!'
const range = (prefix: string): { gte: string, lt: string } => ({ gte: prefix, lt: `${prefix}~` })
const FLOW_ID = /^[0-9a-f]{24}$/
/** How long after a start a result kept before it is still answered "accepted" (`keptBefore`). */
const KEPT_BEFORE_MS = 10 * 60_000
/** How long `keptBefore` waits for the engine's start to have read the flows it resumes. */
const RESUME_WAIT_MS = 30_000

export function isFlowId (value: unknown): value is string {
  return typeof value === 'string' && FLOW_ID.test(value)
}

function unitKey (flow: string, step: string, index: number | undefined): string {
  return `${UNIT}${flow}!${step}!${index == null ? '-' : String(index).padStart(4, '0')}`
}

function orderKey (flow: Pick<FlowRecord, 'createdAt' | 'id'>): string {
  return `${ORDER}${String(flow.createdAt).padStart(13, '0')}!${flow.id}`
}

/** Why a step stopped the workflow. */
class StepFailed extends Error {
  override name = 'StepFailed'
  readonly step: string
  readonly code: string
  constructor (step: string, code: string, message: string) {
    super(message)
    this.step = step
    this.code = code
  }
}

/** The engine is stopping, or the flow was cancelled: nothing is written as failed. */
class Halted extends Error {
  override name = 'Stopped'
}

interface Running {
  record: FlowRecord
  controller: AbortController
  done: Promise<void>
  /** Tasks under way, by id: step and index. */
  tasks: Map<string, { step: string, index?: number }>
}

const ended = (status: FlowStatus): boolean => status !== 'running'

class Engine implements Flows {
  private readonly c: FlowsComponents
  private readonly running = new Map<string, Running>()
  /** Every task of a running flow, for `keep`. */
  private readonly byTask = new Map<string, { flow: string, step: string, index?: number }>()
  private readonly waiters = new Map<string, Set<() => void>>()
  /** Tasks whose output `keep` has written already: the unit is not written again for them. */
  private readonly kept = new Set<string>()
  private started = false
  /**
   * Units of the flows resumed at start that were done then: their last task's id → the unit's
   * key. Held for KEPT_BEFORE_MS: a winner stops trying to deliver within three leases and 10 s.
   */
  private readonly doneBefore = new Map<string, string>()
  private forgetDoneBefore: ReturnType<typeof setTimeout> | undefined
  /** Resolves once `doneBefore` is read (or the engine stops). */
  private readonly resumed = Promise.withResolvers<void>()
  private pruning: Promise<void> = Promise.resolve()

  constructor (components: FlowsComponents) {
    this.c = components
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    try {
      for await (const key of this.c.db.keys(range(OPEN))) {
        const record = await this.read(key.slice(OPEN.length))
        if (record == null || ended(record.status)) {
          await this.c.db.del(key)
          continue
        }
        this.c.log.info?.(`flows: resuming workflow ${record.id}${record.name != null ? ` (${record.name})` : ''}`)
        await this.readDoneBefore(record.id)
        this.drive(record)
      }
    } finally {
      // a start that failed part way answers with what it read
      this.resumed.resolve()
    }
    this.forgetDoneBefore = setTimeout(() => { this.doneBefore.clear() }, KEPT_BEFORE_MS)
    this.forgetDoneBefore.unref()
    await this.prune()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.resumed.resolve()
    clearTimeout(this.forgetDoneBefore)
    this.doneBefore.clear()
    const runs = [...this.running.values()]
    for (const run of runs) run.controller.abort(new Halted('the node is stopping'))
    await Promise.allSettled(runs.map(async r => r.done))
    await this.pruning
  }

  // ---- run ----

  async run (request: RunRequest): Promise<FlowView> {
    if (!this.started) throw new FlowsNotRunningError('the workflow engine is not running; start the node first')
    const plan = planWorkflow(request.workflow)
    const input = request.input ?? ''
    const inputBytes = Buffer.byteLength(input, 'utf8')
    if (inputBytes > FLOW_LIMITS.maxInputBytes) throw new InvalidWorkflowError(`the workflow's input is ${inputBytes} bytes; at most ${FLOW_LIMITS.maxInputBytes} are taken`)
    if ([...this.running.values()].length >= FLOW_LIMITS.maxRunning) throw new TooManyFlowsError(`this device runs ${FLOW_LIMITS.maxRunning} workflows already; wait for one to end or cancel one ("hive-node flow status")`)
    const { agents, bytes } = await this.resolveAgents(plan, request.agents ?? new Map())
    const record: FlowRecord = {
      id: randomBytes(12).toString('hex'),
      ...(plan.name != null ? { name: plan.name } : {}),
      createdAt: Date.now(),
      plan,
      input,
      agents,
      status: 'running'
    }
    // the agents first, then the flow that names them: a flow on disk can always run
    await this.c.agentsDb.batch([...bytes].map(([digest, b]) => ({ type: 'put' as const, key: digest, value: b })), SYNC)
    await this.c.db.batch([
      { type: 'put', key: FLOW + record.id, value: JSON.stringify(record) },
      { type: 'put', key: orderKey(record), value: '' },
      { type: 'put', key: OPEN + record.id, value: '' }
    ], SYNC)
    this.drive(record)
    void this.prune()
    return this.view(record)
  }

  /** Each step's agent, by digest, with the bytes of those not kept yet; refusals name the step. */
  private async resolveAgents (plan: Plan, given: ReadonlyMap<string, Uint8Array>): Promise<{ agents: Record<string, string>, bytes: Map<string, Uint8Array> }> {
    const agents: Record<string, string> = {}
    const bytes = new Map<string, Uint8Array>()
    let total = 0
    for (const step of plan.steps) {
      const ref = classifyAgent(step.agent)
      let digest: string
      let agent: Uint8Array | undefined
      if (ref.kind === 'file') {
        throw new InvalidWorkflowError(`step "${step.name}": agent "${step.agent}" is neither a digest nor NAME@VERSION; a file path is read by the CLI ("hive-node flow run FILE"), the API takes the agent's digest with its bytes in "agents"`, step.name)
      } else if (ref.kind === 'registry') {
        if (this.c.resolveAgent == null) throw new AgentNotFoundError(`step "${step.name}": agent ${ref.name}@${ref.version} names a registry agent, and this node has no agent registry; name the agent by its file or digest`)
        try {
          agent = await this.c.resolveAgent(ref.name, ref.version, {})
        } catch (err) {
          throw new AgentNotFoundError(`step "${step.name}": agent ${ref.name}@${ref.version} could not be resolved: ${(err as Error).message}`)
        }
        digest = sha256(agent)
      } else {
        digest = ref.digest
        agent = given.get(digest) ?? this.c.agents.get(digest as Digest) ?? await this.c.agentsDb.get(digest)
        if (agent == null) throw new AgentNotFoundError(`step "${step.name}": this node holds no agent ${digest}; send its bytes with the workflow ("hive-node flow run" does)`)
        if (sha256(agent) !== digest) throw new InvalidWorkflowError(`step "${step.name}": the bytes sent for agent ${digest} have another digest`, step.name)
      }
      let manifest: { name: string, permissions: readonly string[] }
      try {
        manifest = this.c.inspect(agent)
      } catch (err) {
        throw new InvalidWorkflowError(`step "${step.name}": agent ${step.agent} is not a hive agent: ${(err as Error).message}`, step.name)
      }
      const permissions = step.permissions ?? manifest.permissions
      const contexts = permissions.filter(p => p.startsWith('context:'))
      if (contexts.length > 0 && step.contextId == null) {
        throw new InvalidWorkflowError(`step "${step.name}": agent ${manifest.name} uses a context (${contexts.join(', ')}); give the step a "contextId", or what it writes is lost after each run`, step.name)
      }
      agents[step.name] = digest
      if (!bytes.has(digest)) {
        bytes.set(digest, agent)
        total += agent.byteLength
      }
    }
    if (bytes.size > FLOW_LIMITS.maxAgents) throw new InvalidWorkflowError(`the workflow names ${bytes.size} distinct agents; at most ${FLOW_LIMITS.maxAgents}`)
    if (total > FLOW_LIMITS.maxAgentBytes) throw new InvalidWorkflowError(`the workflow's agents are ${total} bytes together; at most ${FLOW_LIMITS.maxAgentBytes}`)
    return { agents, bytes }
  }

  /** Runs (or resumes) a flow in the background. */
  private drive (record: FlowRecord): void {
    const controller = new AbortController()
    const run: Running = { record, controller, tasks: new Map(), done: Promise.resolve() }
    this.running.set(record.id, run)
    run.done = this.execute(run).catch((err: Error) => {
      this.c.log.warn(`flows: workflow ${record.id} stopped: ${err.message}`)
    }).finally(() => {
      this.running.delete(record.id)
      for (const task of run.tasks.keys()) this.byTask.delete(task)
      this.notify(record.id)
    })
  }

  private async execute (run: Running): Promise<void> {
    const { record } = run
    const outputs = new Map<string, Promise<string>>()
    const byName = new Map(record.plan.steps.map(s => [s.name, s]))
    const stepOutput = (name: string): Promise<string> => {
      let p = outputs.get(name)
      if (p == null) {
        const step = byName.get(name)!
        p = (async () => {
          const deps = await Promise.all(step.after.map(async d => [d, await stepOutput(d)] as const))
          run.controller.signal.throwIfAborted()
          return this.runStep(run, step, new Map(deps))
        })()
        // a failure is read where it is awaited; this keeps it from being reported unhandled
        p.catch(() => {})
        outputs.set(name, p)
      }
      return p
    }
    try {
      const all = record.plan.steps.map(async s => stepOutput(s.name))
      // the first failure ends the workflow: the rest are cancelled
      await Promise.all(all)
      const output = await stepOutput(record.plan.output)
      await this.finish(record, { status: 'done', output })
    } catch (err) {
      // the node is stopping: the flow stays open and resumes at the next start
      if (err instanceof Halted && !run.controller.signal.aborted) return
      if (run.controller.signal.aborted) {
        const reason = run.controller.signal.reason
        if (reason instanceof StepFailed) await this.finish(record, { status: 'failed', error: { step: reason.step, code: reason.code, message: reason.message } })
        // stopping (resumed at the next start) or cancelled (written by cancel)
        return
      }
      const failure = err instanceof StepFailed ? err : new StepFailed('', (err as Error).name ?? 'Error', (err as Error).message)
      run.controller.abort(failure)
      await this.settleTasks(run)
      await this.finish(record, { status: 'failed', error: { ...(failure.step !== '' ? { step: failure.step } : {}), code: failure.code, message: failure.message } })
    }
  }

  /** Waits until every task the flow has under way has ended (each is cancelled by its unit). */
  private async settleTasks (run: Running): Promise<void> {
    await Promise.allSettled([...run.tasks.keys()].map(async task => this.c.placement.wait(task, { signal: AbortSignal.timeout(15_000) })))
  }

  private async finish (record: FlowRecord, end: Pick<FlowRecord, 'status' | 'output' | 'error'>): Promise<void> {
    const latest = await this.read(record.id) ?? record
    if (ended(latest.status)) return
    const next: FlowRecord = { ...latest, ...end, endedAt: Date.now() }
    await this.c.db.batch([
      { type: 'put', key: FLOW + record.id, value: JSON.stringify(next) },
      { type: 'del', key: OPEN + record.id }
    ], SYNC)
    Object.assign(record, next)
    this.notify(record.id)
  }

  private async runStep (run: Running, step: PlannedStep, deps: Map<string, string>): Promise<string> {
    const { record } = run
    const values = { input: record.input, outputs: deps }
    if (step.over == null) {
      return this.runUnit(run, step, undefined, () => renderTemplate(step.input, values))
    }
    let items: unknown[]
    try {
      items = checkForkArray(step.name, renderTemplate(step.over, values))
    } catch (err) {
      throw new StepFailed(step.name, 'BadForkInput', (err as Error).message)
    }
    await this.c.db.put(`${FORK}${record.id}!${step.name}`, JSON.stringify({ width: items.length }), SYNC)
    const results: string[] = new Array<string>(items.length)
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < items.length) {
        const index = next++
        run.controller.signal.throwIfAborted()
        results[index] = await this.runUnit(run, step, index, () => renderTemplate(step.input, { ...values, item: items[index], index }))
      }
    }
    await Promise.all(Array.from({ length: Math.min(step.concurrency, Math.max(1, items.length)) }, worker))
    return JSON.stringify(results)
  }

  /** One task of a step (or of one element of a fork), with its retries, resumed from disk. */
  private async runUnit (run: Running, step: PlannedStep, index: number | undefined, input: () => string): Promise<string> {
    const { record, controller } = run
    const key = unitKey(record.id, step.name, index)
    const unit: UnitState = await this.readUnit(key) ?? { status: 'running', attempts: [] }
    if (unit.status === 'done' && unit.output != null) return unit.output
    const where = index == null ? `step "${step.name}"` : `step "${step.name}" element ${index}`

    // the attempt under way when the node stopped, if any
    const last = unit.attempts.at(-1)
    if (last != null && last.outcome == null) {
      const recovered = await this.recover(run, step.name, index, last.task)
      if (recovered != null) {
        if (recovered.ok) return this.unitDone(key, unit, recovered.output, recovered.executor)
        last.outcome = recovered.outcome
        if (recovered.error != null) last.error = recovered.error
      } else {
        last.outcome = 'interrupted'
        last.error = 'this device stopped while it ran; run again'
      }
      await this.writeUnit(key, unit)
    }

    let text: string
    try {
      text = input()
    } catch (err) {
      throw new StepFailed(step.name, 'BadInput', `${where}: ${(err as Error).message}`)
    }
    const size = Buffer.byteLength(text, 'utf8')
    if (size > FLOW_LIMITS.maxStepInputBytes) throw new StepFailed(step.name, 'InputTooLarge', `${where}: its input is ${size} bytes once filled in; at most ${FLOW_LIMITS.maxStepInputBytes}`)
    const agent = await this.agentBytes(record, step.name)

    for (;;) {
      const failures = unit.attempts.filter(a => a.outcome === 'failed' || a.outcome === 'timed-out' || a.outcome === 'cancelled').length
      if (failures > step.retries) {
        unit.status = 'failed'
        unit.error = unit.attempts.at(-1)?.error ?? 'failed'
        await this.writeUnit(key, unit)
        throw new StepFailed(step.name, 'StepFailed', `${where} failed after ${failures} attempt${failures === 1 ? '' : 's'}: ${unit.error}`)
      }
      controller.signal.throwIfAborted()
      // the id is written before the task exists: after a crash it is looked up, not guessed
      const task = newTaskId()
      const attempt: Attempt = { task, at: Date.now() }
      unit.status = 'running'
      unit.attempts.push(attempt)
      await this.writeUnit(key, unit)
      run.tasks.set(task, { step: step.name, ...(index != null ? { index } : {}) })
      this.byTask.set(task, { flow: record.id, step: step.name, ...(index != null ? { index } : {}) })
      try {
        const outcome = await this.attempt(run, step, agent, text, task)
        if (outcome.ok) return await this.unitDone(key, unit, outcome.output, outcome.executor, this.kept.delete(task))
        attempt.outcome = outcome.outcome
        attempt.error = outcome.error
        await this.writeUnit(key, unit)
      } finally {
        run.tasks.delete(task)
        this.byTask.delete(task)
        this.kept.delete(task)
      }
    }
  }

  /** Marks a unit done with its output; `written`: `keep` wrote just this already. */
  private async unitDone (key: string, unit: UnitState, output: string, executor: string | undefined, written = false): Promise<string> {
    const last = unit.attempts.at(-1)
    if (last != null) last.outcome = 'done'
    unit.status = 'done'
    unit.output = output
    if (executor != null) unit.executor = executor
    delete unit.error
    if (!written) await this.writeUnit(key, unit)
    return output
  }

  /** Submits one attempt under its id and waits for it, within the step's timeout. */
  private async attempt (run: Running, step: PlannedStep, agent: Uint8Array, input: string, task: TaskId): Promise<{ ok: true, output: string, executor?: string } | { ok: false, outcome: 'failed' | 'timed-out' | 'cancelled', error: string }> {
    const { placement } = this.c
    try {
      await placement.submit({
        agent,
        input,
        ...(step.permissions != null ? { permissions: step.permissions } : { permissions: [...this.c.inspect(agent).permissions] }),
        ...(step.requirements != null ? { requirements: step.requirements } : {}),
        ...(step.contextId != null ? { contextId: step.contextId } : {})
      }, { taskId: task })
    } catch (err) {
      if (run.controller.signal.aborted) throw run.controller.signal.reason
      return { ok: false, outcome: 'failed', error: `${(err as Error).name}: ${(err as Error).message}` }
    }
    const timeout = step.timeoutMs != null ? AbortSignal.timeout(step.timeoutMs) : undefined
    let view: TaskView
    try {
      view = await placement.wait(task, { signal: AbortSignal.any([run.controller.signal, ...(timeout != null ? [timeout] : [])]) })
    } catch (err) {
      const reason = run.controller.signal.reason
      if (run.controller.signal.aborted && reason instanceof Halted && reason.message === 'the node is stopping') throw reason
      if (run.controller.signal.aborted || timeout?.aborted === true) {
        const why = timeout?.aborted === true && !run.controller.signal.aborted
          ? `no result within the step's timeout of ${step.timeoutMs} ms`
          : reason instanceof StepFailed ? `another step failed: ${reason.message}` : 'the workflow was cancelled'
        await placement.cancel(task, { reason: why }).catch(() => {})
        if (run.controller.signal.aborted) throw reason
        return { ok: false, outcome: 'timed-out', error: why }
      }
      if ((err as Error).name === 'PlacementNotRunning') throw new Halted('the node is stopping')
      return { ok: false, outcome: 'failed', error: `${(err as Error).name}: ${(err as Error).message}` }
    }
    if (view.status === 'done' && view.result?.ok === true) return { ok: true, output: view.result.output ?? '', executor: view.result.executor }
    if (view.status === 'cancelled') {
      if (run.controller.signal.aborted) throw run.controller.signal.reason
      return { ok: false, outcome: 'cancelled', error: view.error != null ? `${view.error.code}: ${view.error.message}` : 'cancelled' }
    }
    const error = view.result?.ok === false ? `the agent failed on ${view.result.executor}: ${view.result.error ?? ''}` : view.error != null ? `${view.error.code}: ${view.error.message}` : `ended ${view.status}`
    return { ok: false, outcome: 'failed', error }
  }

  /**
   * What became of a task submitted before the node stopped: done (its output), ended without a
   * result, or undefined when it never reached an accepted result here (run it again).
   */
  private async recover (run: Running, step: string, index: number | undefined, task: string): Promise<{ ok: true, output: string, executor?: string } | { ok: false, outcome: 'failed' | 'cancelled', error?: string } | undefined> {
    const live = this.c.placement.get(task)
    if (live != null && live.role === 'submitter' && !isEnded(live.status)) {
      run.tasks.set(task, { step, ...(index != null ? { index } : {}) })
      this.byTask.set(task, { flow: run.record.id, step, ...(index != null ? { index } : {}) })
      try {
        const view = await this.c.placement.wait(task, { signal: run.controller.signal })
        if (view.status === 'done' && view.result?.ok === true) return { ok: true, output: view.result.output ?? '', executor: view.result.executor }
        return { ok: false, outcome: view.status === 'cancelled' ? 'cancelled' : 'failed', ...(view.error != null ? { error: `${view.error.code}: ${view.error.message}` } : {}) }
      } finally {
        run.tasks.delete(task)
        this.byTask.delete(task)
      }
    }
    const view = live ?? (await this.c.archive.get(task))?.view
    if (view != null && view.result?.ok === true && (view.status === 'done' || view.error?.code === 'Interrupted')) {
      // accepted before the node stopped: its output is the step's
      return { ok: true, output: view.result.output ?? '', executor: view.result.executor }
    }
    if (view != null && isEnded(view.status) && view.error?.code !== 'Interrupted') {
      return { ok: false, outcome: view.status === 'cancelled' ? 'cancelled' : 'failed', ...(view.result?.error != null ? { error: view.result.error } : view.error != null ? { error: `${view.error.code}: ${view.error.message}` } : {}) }
    }
    return undefined
  }

  async keep (task: KeptResult): Promise<void> {
    const owner = this.byTask.get(task.id)
    if (owner == null || task.result?.ok !== true) return
    const key = unitKey(owner.flow, owner.step, owner.index)
    const unit = await this.readUnit(key)
    if (unit == null || unit.status === 'done' || unit.attempts.at(-1)?.task !== task.id) return
    await this.unitDone(key, unit, task.result.output ?? '', task.result.executor)
    this.kept.add(task.id)
  }

  async keptBefore (task: KeptBefore): Promise<boolean> {
    // placement answers before the engine has started; the wait is bounded all the same
    let timer: ReturnType<typeof setTimeout> | undefined
    const read = await Promise.race([
      this.resumed.promise.then(() => true),
      new Promise<boolean>(resolve => { timer = setTimeout(() => { resolve(false) }, RESUME_WAIT_MS) })
    ])
    clearTimeout(timer)
    if (!read) return false
    const key = this.doneBefore.get(task.id)
    if (key == null || !task.ok) return false
    const unit = await this.readUnit(key)
    return unit?.status === 'done' && unit.attempts.at(-1)?.task === task.id && unit.output === (task.output ?? '') &&
      (unit.executor == null || unit.executor === task.executor)
  }

  /** Notes the done units of a flow resumed at start, by their last task, for `keptBefore`. */
  private async readDoneBefore (flow: string): Promise<void> {
    for await (const [key, text] of this.c.db.iterator(range(`${UNIT}${flow}!`))) {
      let unit: UnitState
      try { unit = JSON.parse(text) as UnitState } catch { continue }
      const task = unit.attempts?.at(-1)?.task
      if (unit.status === 'done' && task != null) this.doneBefore.set(task, key)
    }
  }

  private async agentBytes (record: FlowRecord, step: string): Promise<Uint8Array> {
    const digest = record.agents[step]
    const bytes = digest != null ? this.c.agents.get(digest as Digest) ?? await this.c.agentsDb.get(digest) : undefined
    if (bytes == null) throw new StepFailed(step, 'FlowAgentNotFound', `step "${step}": its agent ${digest ?? '?'} is no longer held on this device`)
    return bytes
  }

  // ---- cancel, views ----

  async cancel (id: string): Promise<FlowView> {
    const record = await this.read(id)
    if (record == null) throw new FlowNotFoundError(`no workflow ${id} was run on this device; "hive-node flow list" lists them`)
    if (ended(record.status)) throw new FlowAlreadyEndedError(`workflow ${id} already ended ${record.status}`)
    const run = this.running.get(id)
    await this.finish(run?.record ?? record, { status: 'cancelled', error: { code: 'Cancelled', message: 'cancelled by its submitter' } })
    if (run != null) {
      run.controller.abort(new Halted('the workflow was cancelled'))
      await this.settleTasks(run)
      await run.done
    }
    return this.view(await this.read(id) ?? record)
  }

  async get (id: string): Promise<FlowView | undefined> {
    const record = await this.read(id)
    return record != null ? this.view(record) : undefined
  }

  async list (options: { limit?: number } = {}): Promise<FlowView[]> {
    const views: FlowView[] = []
    for await (const key of this.c.db.keys({ ...range(ORDER), reverse: true, limit: options.limit ?? 20 })) {
      const record = await this.read(key.slice(key.lastIndexOf('!') + 1))
      if (record != null) views.push(await this.view(record))
    }
    return views
  }

  async wait (id: string, options: { signal?: AbortSignal } = {}): Promise<FlowView> {
    for (;;) {
      const record = await this.read(id)
      if (record == null) throw new FlowNotFoundError(`no workflow ${id} was run on this device`)
      if (ended(record.status) || options.signal?.aborted === true || !this.running.has(id)) return this.view(record)
      const { promise, resolve } = Promise.withResolvers<void>()
      const set = this.waiters.get(id) ?? new Set()
      set.add(resolve)
      this.waiters.set(id, set)
      const onAbort = (): void => { resolve() }
      options.signal?.addEventListener('abort', onAbort, { once: true })
      try {
        await promise
      } finally {
        set.delete(resolve)
        if (set.size === 0) this.waiters.delete(id)
        options.signal?.removeEventListener('abort', onAbort)
      }
    }
  }

  private notify (id: string): void {
    for (const resolve of this.waiters.get(id) ?? []) resolve()
  }

  async explain (id: string, options: { signal?: AbortSignal } = {}): Promise<FlowExplanation> {
    const record = await this.read(id)
    if (record == null) throw new FlowNotFoundError(`no workflow ${id} was run on this device; "hive-node flow list" lists them`)
    const flow = await this.view(record)
    const units: FlowStepExplanation[] = []
    for (const step of flow.steps) {
      for (const unit of step.units) {
        if (unit.task == null) continue
        let explanation: Explanation | undefined
        let view: TaskView | undefined = this.c.placement.get(unit.task)
        try {
          explanation = await this.c.placement.explain(unit.task, options)
        } catch {
          const archived = await this.c.archive.get(unit.task)
          explanation = archived?.explanation
          view ??= archived?.view
        }
        view ??= (await this.c.archive.get(unit.task))?.view
        units.push({
          step: step.name,
          ...(unit.index != null ? { index: unit.index } : {}),
          task: unit.task,
          attempts: unit.attempts.length,
          status: unit.status,
          ...(explanation != null ? { explanation } : {}),
          ...(view != null ? { view } : {})
        })
      }
    }
    return { flow, units }
  }

  private async view (record: FlowRecord): Promise<FlowView> {
    const units = new Map<string, UnitState>()
    for await (const [key, value] of this.c.db.iterator(range(`${UNIT}${record.id}!`))) {
      try { units.set(key, JSON.parse(value) as UnitState) } catch {}
    }
    const steps: FlowStepView[] = []
    for (const step of record.plan.steps) {
      const stepUnits: FlowUnitView[] = []
      let width: number | undefined
      if (step.over != null) {
        const fork = await this.c.db.get(`${FORK}${record.id}!${step.name}`)
        if (fork != null) width = (JSON.parse(fork) as { width: number }).width
        for (let i = 0; i < (width ?? 0); i++) stepUnits.push(this.unitView(units.get(unitKey(record.id, step.name, i)), i))
      } else {
        const unit = units.get(unitKey(record.id, step.name, undefined))
        if (unit != null) stepUnits.push(this.unitView(unit, undefined))
      }
      const done = stepUnits.filter(u => u.status === 'done').length
      const status: UnitStatus = stepUnits.some(u => u.status === 'failed')
        ? 'failed'
        : (step.over != null ? width != null && done === width : done === 1 && stepUnits.length === 1)
            ? 'done'
            : stepUnits.some(u => u.status === 'running')
              ? (ended(record.status) ? (record.status === 'cancelled' ? 'cancelled' : 'failed') : 'running')
              : record.status === 'cancelled' ? 'cancelled' : 'waiting'
      const failed = stepUnits.find(u => u.status === 'failed')
      steps.push({
        name: step.name,
        agent: record.agents[step.name] ?? step.agent,
        status,
        after: step.after,
        ...(step.over != null ? { fork: { ...(width != null ? { width } : {}), concurrency: step.concurrency, done } } : {}),
        units: stepUnits,
        ...(failed?.error != null ? { error: failed.error } : {})
      })
    }
    return {
      id: record.id,
      ...(record.name != null ? { name: record.name } : {}),
      status: record.status,
      createdAt: record.createdAt,
      ...(record.endedAt != null ? { endedAt: record.endedAt } : {}),
      ...(record.output != null ? { output: record.output } : {}),
      outputStep: record.plan.output,
      ...(record.error != null ? { error: record.error } : {}),
      steps
    }
  }

  private unitView (unit: UnitState | undefined, index: number | undefined): FlowUnitView {
    if (unit == null) return { ...(index != null ? { index } : {}), status: 'waiting', attempts: [] }
    const task = unit.attempts.at(-1)?.task
    const live = task != null && unit.status === 'running' ? this.c.placement.get(task) : undefined
    return {
      ...(index != null ? { index } : {}),
      status: unit.status,
      ...(task != null ? { task } : {}),
      attempts: unit.attempts,
      ...(unit.executor != null ? { executor: unit.executor } : {}),
      ...(live?.winner != null ? { winner: live.winner } : {}),
      ...(unit.error != null ? { error: unit.error } : {})
    }
  }

  // ---- storage ----

  private async read (id: string): Promise<FlowRecord | undefined> {
    if (!isFlowId(id)) return undefined
    const text = await this.c.db.get(FLOW + id)
    if (text == null) return undefined
    try {
      const record = JSON.parse(text) as FlowRecord
      return record?.plan?.steps != null ? record : undefined
    } catch {
      return undefined
    }
  }

  private async readUnit (key: string): Promise<UnitState | undefined> {
    const text = await this.c.db.get(key)
    if (text == null) return undefined
    try { return JSON.parse(text) as UnitState } catch { return undefined }
  }

  private async writeUnit (key: string, unit: UnitState): Promise<void> {
    await this.c.db.put(key, JSON.stringify(unit), SYNC)
  }

  /** Drops the oldest ended flows beyond the bound, and the agents no kept flow names. */
  private async prune (): Promise<void> {
    const run = this.pruning.then(async () => {
      const order: string[] = []
      for await (const key of this.c.db.keys(range(ORDER))) order.push(key)
      let excess = order.length - FLOW_LIMITS.maxFlowsKept
      if (excess <= 0) return
      const keep = new Set<string>()
      for (const key of order) {
        const id = key.slice(key.lastIndexOf('!') + 1)
        const record = await this.read(id)
        if (excess > 0 && (record == null || ended(record.status))) {
          excess--
          const ops: Array<{ type: 'del', key: string }> = [{ type: 'del', key }, { type: 'del', key: FLOW + id }]
          for await (const k of this.c.db.keys(range(`${UNIT}${id}!`))) ops.push({ type: 'del', key: k })
          for await (const k of this.c.db.keys(range(`${FORK}${id}!`))) ops.push({ type: 'del', key: k })
          await this.c.db.batch(ops)
        } else if (record != null) {
          for (const digest of Object.values(record.agents)) keep.add(digest)
        }
      }
      const drop: string[] = []
      for await (const digest of this.c.agentsDb.keys()) if (!keep.has(digest)) drop.push(digest)
      if (drop.length > 0) await this.c.agentsDb.batch(drop.map(key => ({ type: 'del' as const, key })))
    })
    this.pruning = run.catch((err: Error) => { this.c.log.warn(`flows: old workflows could not be dropped: ${err.message}`) })
    await this.pruning
  }
}

function sha256 (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export function createFlows (components: FlowsComponents): Flows {
  return new Engine(components)
}
