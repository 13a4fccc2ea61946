// Runner: the winner's role. For an award naming this node it claims the task from its
// submitter, fetches the agent by digest (unless held), renews the lease while the executor
// runs, delivers the result and records the run in the ledger. The submitter is reached through
// a SubmitterClient, the same whether it is this node or another.

import { errorText } from './components.ts'
import { AgentDigestMismatchError, AgentFetchError, PlacementRefusedError, TaskCancelledError } from './errors.ts'
import { refusal } from './messages.ts'
import { sha256Hex } from './ids.ts'
import { TypedEventTarget } from './events.ts'
import { runClauses } from '../control/budgets.ts'
import type { Digest, TaskId } from './ids.ts'
import { LIVE_LOG_LIMITS } from './messages.ts'
import type { AgentLogLine, ExecutionOutcome, ExecutionRecord, Executor, LedgerSink, PlacementSettings } from './components.ts'
import type { Announce, AwardPayload, RecordedMessage as Recorded } from './messages.ts'
import type { AckAnswer, ResultRequest, SubmitterClient, WinnerHandlers } from './rpc.ts'
import type { TaskResult } from './views.ts'
import type { SyncedOptions } from '../wire/replicated-entries.ts'
import type { ProtocolLog } from '../wire/serve.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface RunnerEvents extends Record<string, unknown> {
  'run-start': { task: TaskId, round: number }
  /** `cancelled`: the run was stopped because its submitter cancelled the task or the hive halted. */
  'run-end': { task: TaskId, round: number, sent: boolean, accepted?: boolean, reason?: string, cancelled?: boolean }
  'result-send-failed': { task: TaskId, round: number, error: string }
  /** The number of tasks running here changed. */
  running: { count: number }
}

export interface RunnerComponents {
  self: string
  agents: {
    get: (digest: Digest) => Uint8Array | undefined
    put: (bytes: Uint8Array) => Digest
    pin: (digest: Digest) => void
    unpin: (digest: Digest) => void
  }
  /** Fetches an agent's bytes from a peer that holds them, checked against the digest. */
  fetchAgent: (peer: string, digest: Digest, options: AbortOptions & { maxBytes: number }) => Promise<Uint8Array>
  executor: Executor
  ledger?: LedgerSink
  submitterFor: (peer: string) => SubmitterClient
  log: ProtocolLog
  /** Why nothing may run now (the hive is halted), or undefined. */
  halted?: () => Error | undefined
  /** Resolves once this node holds what `peer` knows of the kill switch. */
  synced?: (peer: string, options: SyncedOptions) => Promise<void>
}

/** One task this node runs. */
interface Assignment {
  award: AwardPayload
  announce?: Announce
  controller: AbortController
  /** The submitter said this node is no longer the winner. */
  revoked?: string
  renewTimer?: NodeJS.Timeout
  /** Renews the lease at once (when the connection to the submitter dropped). */
  renewNow?: () => void
  /** Why the run was stopped by its submitter or by a halt: recorded `cancelled`, never delivered. */
  cancelled?: string
  /** How long the agent ran in its sandbox, once it stopped: its ledger record says so (budgets count it). */
  ranMs?: number
}

/** A run this node stopped because it was cancelled, as `task` shows it here. */
export interface CancelledHere {
  at: number
  round: number
  reason: string
  ledger?: { seq?: number, hash?: string, error?: string }
}

/** The result of a task this node ran, as it delivered it, and whether its submitter took it. */
export interface RanHere {
  result: TaskResult
  accepted: boolean
}

/** Agent log lines a result carries back to the submitter. */
const MAX_LOG_LINES = 200
/** How long one message of live log lines may take to reach the submitter. */
const LIVE_LOG_SEND_MS = 5_000
/** Bytes of log lines in one message (a frame holds far more; this keeps each send short). */
const LIVE_LOG_MESSAGE_BYTES = 64 * 1024

/**
 * A run's log lines on their way to a submitter on another device: one message in flight at a
 * time, and the lines logged meanwhile go together in the next, so a chatty agent costs a
 * message per round trip, not per line. Within LIVE_LOG_LIMITS per task; past a bound, or once
 * a message fails (refused, or the submitter out of reach), the rest go only with the result,
 * so the result waits for at most one message.
 */
class LiveLogs {
  private readonly pending: AgentLogLine[] = []
  /** The number of the first pending line. */
  private next = 1
  private bytes = 0
  /** A bound was reached: later lines go only with the result. */
  private full = false
  /** A message failed: nothing more is sent. */
  private refused = false
  private sending = false
  private readonly idle = Promise.withResolvers<void>()
  private ended = false
  private readonly send: (from: number, lines: AgentLogLine[]) => Promise<void>
  private readonly failed: (err: unknown) => void

  constructor (send: (from: number, lines: AgentLogLine[]) => Promise<void>, failed: (err: unknown) => void) {
    this.send = send
    this.failed = failed
  }

  /** Resolves when every line pushed before `end` was sent or given up. */
  get drained (): Promise<void> {
    return this.idle.promise
  }

  push (line: AgentLogLine): void {
    if (this.full || this.refused || this.ended) return
    const trimmed = { level: line.level.slice(0, 16), message: line.message.slice(0, 4096) }
    const size = lineBytes(trimmed)
    if (this.next + this.pending.length > LIVE_LOG_LIMITS.linesPerTask || this.bytes + size > LIVE_LOG_LIMITS.bytesPerTask) {
      this.full = true
      return
    }
    this.bytes += size
    this.pending.push(trimmed)
    if (!this.sending) void this.flush()
  }

  end (): void {
    this.ended = true
    if (!this.sending) this.idle.resolve()
  }

  private async flush (): Promise<void> {
    this.sending = true
    while (this.pending.length > 0 && !this.refused) {
      let count = 0
      let size = 0
      for (const l of this.pending) {
        if (count === LIVE_LOG_LIMITS.linesPerMessage || (count > 0 && size + lineBytes(l) > LIVE_LOG_MESSAGE_BYTES)) break
        size += lineBytes(l)
        count++
      }
      const from = this.next
      const lines = this.pending.splice(0, count)
      this.next += count
      try {
        await this.send(from, lines)
      } catch (err) {
        // refused, or the submitter is out of reach: the rest go with the result, which then
        // waits for no further sends
        this.failed(err)
        this.refused = true
      }
    }
    this.pending.length = 0
    this.sending = false
    if (this.ended) this.idle.resolve()
  }
}

function lineBytes (line: AgentLogLine): number {
  return Buffer.byteLength(line.message) + Buffer.byteLength(line.level)
}

/** Retry delays while a result cannot reach its submitter. */
const DELIVERY_DELAYS_MS = [100, 250, 500, 1000, 2000]
/** The least time a run's record may wait for its turn on the chain before it is given up. */
const RECORD_WAIT_MS = 60_000

export class Runner extends TypedEventTarget<RunnerEvents> implements WinnerHandlers {
  private readonly components: RunnerComponents
  private readonly settings: PlacementSettings
  private readonly assignments = new Map<TaskId, Assignment>()
  /**
   * What this node ran and delivered, newest last, so the executing device can show a task's
   * result as its submitter does (bounded like the tasks placement keeps).
   */
  readonly ran = new Map<TaskId, RanHere>()
  /** Runs stopped here by a cancel or a halt (bounded like `ran`). */
  readonly cancelledRuns = new Map<TaskId, CancelledHere>()
  private stopping = new AbortController()
  private active = false

  constructor (settings: PlacementSettings, components: RunnerComponents) {
    super()
    this.settings = settings
    this.components = components
  }

  /** Tasks this node is executing now. */
  get running (): number {
    return this.assignments.size
  }

  start (): void {
    this.active = true
    this.stopping = new AbortController()
  }

  stop (reason: Error): void {
    this.active = false
    this.stopping.abort(reason)
    for (const a of this.assignments.values()) {
      clearTimeout(a.renewTimer)
      a.controller.abort(reason)
    }
  }

  /** An award: runs the task when it names this node. */
  onAward (award: AwardPayload, announce: Announce | undefined): void {
    if (award.winner !== this.components.self || this.assignments.has(award.task) || !this.active) return
    const assignment: Assignment = { award, controller: new AbortController(), ...(announce != null ? { announce } : {}) }
    this.assignments.set(award.task, assignment)
    this.emit('running', { count: this.running })
    void this.execute(assignment).finally(() => {
      clearTimeout(assignment.renewTimer)
      this.assignments.delete(award.task)
      if (this.active) this.emit('running', { count: this.running })
    })
  }

  /**
   * The submitter of a task stops its run here (WinnerHandlers). Only the task's submitter may:
   * any other peer is refused. The worker is terminated through the run's signal at once.
   */
  readonly cancel = (from: string, task: TaskId, round: number, reason: string): AckAnswer => {
    const a = this.assignments.get(task)
    if (a == null) return refusal('UnknownTask', `task ${task} does not run on this node`)
    if (a.award.submitter !== from) return refusal('NotSubmitter', `only the submitter of task ${task} (${a.award.submitter}) may cancel it`)
    this.stopRun(a, `cancelled by its submitter (round ${round}): ${reason}`)
    return { ok: true }
  }

  /** Stops every run on this node (a halt); resolves to how many were stopped. */
  cancelAll (reason: string): number {
    let n = 0
    for (const a of this.assignments.values()) {
      if (a.cancelled == null) n++
      this.stopRun(a, reason)
    }
    return n
  }

  private stopRun (a: Assignment, reason: string): void {
    if (a.cancelled != null) return
    a.cancelled = reason.slice(0, 1000)
    clearTimeout(a.renewTimer)
    a.controller.abort(new TaskCancelledError(a.cancelled))
  }

  /** The connection to a peer dropped: dial back at once the submitters of what runs here. */
  peerDisconnected (peer: string): void {
    if (!this.active) return
    for (const a of this.assignments.values()) {
      if (a.award.submitter === peer) a.renewNow?.()
    }
  }

  private async execute (a: Assignment): Promise<void> {
    const { award } = a
    const { task, round, submitter } = award
    const client = this.components.submitterFor(submitter)
    const signal = AbortSignal.any([a.controller.signal, this.stopping.signal])
    if (submitter !== this.components.self && this.components.synced != null) {
      await this.components.synced(submitter, { signal, timeoutMs: 5_000 }).catch(() => {})
    }
    // a halted hive runs nothing; a run that could not be recorded is not run: the submitter
    // re-elects among the others
    const refused = this.components.halted?.() ?? this.components.ledger?.unwritable?.()
    if (refused != null) {
      this.emit('run-end', { task, round, sent: false, reason: refused.message })
      await client.abandon(task, round, `${refused.name}: ${refused.message}`.slice(0, 1024), {
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)])
      }).catch(() => {})
      return
    }
    let claim: { input: string, leaseMs: number }
    try {
      claim = await client.claim(task, round, { signal: AbortSignal.any([signal, AbortSignal.timeout(award.leaseMs)]) })
    } catch (err) {
      this.components.log.debug(`claim of ${task} round ${round} refused: ${errorText(err)}`)
      if (a.cancelled != null) this.emit('run-end', { task, round, sent: false, reason: a.cancelled, cancelled: true })
      return
    }
    this.scheduleRenewal(a, client, claim.leaseMs)

    let agent = this.components.agents.get(award.agent)
    if (agent == null) {
      try {
        if (submitter === this.components.self) throw new AgentFetchError(`agent ${award.agent} is no longer held here`)
        agent = await this.components.fetchAgent(submitter, award.agent, { maxBytes: this.settings.maxAgentBytes, signal })
        this.components.agents.put(agent)
      } catch (err) {
        if (signal.aborted) {
          if (a.cancelled != null) this.emit('run-end', { task, round, sent: false, reason: a.cancelled, cancelled: true })
          return
        }
        const reason = err instanceof AgentDigestMismatchError || err instanceof AgentFetchError ? err.message : errorText(err)
        clearTimeout(a.renewTimer)
        await client.abandon(task, round, reason, { signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)]) }).catch(() => {})
        return
      }
    }
    this.components.agents.pin(award.agent)
    // a submitter on another device hears each line as it is logged; this node's own lines
    // reach its event stream through the executor
    const live = submitter !== this.components.self && client.logs != null
      ? new LiveLogs(async (from, lines) => client.logs!({ t: 'logs', task, round, from, lines }, {
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(LIVE_LOG_SEND_MS)])
      }), (err) => { this.components.log.debug(`log lines of ${task} not streamed to ${submitter}: ${errorText(err)}`) })
      : undefined
    const started = performance.now()
    let outcome: ExecutionOutcome
    try {
      this.emit('run-start', { task, round })
      try {
        outcome = await this.components.executor.run(agent, claim.input, {
          taskId: task,
          ...(a.announce?.context != null ? { contextId: a.announce.context } : {}),
          permissions: a.announce?.permissions ?? [],
          signal,
          ...(live != null ? { onLog: (line: AgentLogLine) => { live.push(line) } } : {})
        })
      } catch (err) {
        outcome = { ok: false, error: errorText(err) }
      }
    } finally {
      this.components.agents.unpin(award.agent)
      a.ranMs = performance.now() - started
    }
    clearTimeout(a.renewTimer)
    // the lines in flight reach the submitter before the result does
    live?.end()
    await live?.drained
    if (a.cancelled != null) {
      // stopped for its submitter or a halt: recorded as such, and no result is sent
      const recorded = await this.recordCancelled(a, a.cancelled, outcome)
      this.keepCancelled(task, { at: Date.now(), round, reason: a.cancelled, ledger: recorded })
      this.emit('run-end', { task, round, sent: false, reason: a.cancelled, cancelled: true })
      return
    }
    if (this.stopping.signal.aborted || a.revoked != null) {
      this.emit('run-end', { task, round, sent: false, reason: a.revoked ?? 'stopped' })
      return
    }
    const durationMs = performance.now() - started
    if (!outcome.ok && outcome.retry === true) {
      this.emit('run-end', { task, round, sent: false, reason: outcome.error })
      await client.abandon(task, round, `could not run it here: ${outcome.error}`.slice(0, 1024), {
        signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)])
      }).catch(() => {})
      return
    }
    if (outcome.ok && Buffer.byteLength(outcome.output, 'utf8') > this.settings.maxOutputBytes) {
      outcome = { ok: false, error: `the agent's output exceeds ${this.settings.maxOutputBytes} bytes`, ...(outcome.llm != null ? { llm: outcome.llm } : {}), ...(outcome.net != null ? { net: outcome.net } : {}) }
    }
    await this.deliver(a, client, outcome, durationMs)
  }

  private scheduleRenewal (a: Assignment, client: SubmitterClient, leaseMs: number): void {
    const every = Math.max(50, Math.floor(leaseMs / 3))
    const { task, round } = a.award
    let renewing = false
    const renew = async (): Promise<void> => {
      if (renewing) return
      renewing = true
      clearTimeout(a.renewTimer)
      try {
        await client.renew(task, round, { signal: AbortSignal.any([a.controller.signal, this.stopping.signal, AbortSignal.timeout(every * 2)]) })
      } catch (err) {
        if (err instanceof PlacementRefusedError && err.reason === 'Cancelled') {
          renewing = false
          this.stopRun(a, err.message)
          return
        }
        if (err instanceof PlacementRefusedError && (err.reason === 'Lapsed' || err.reason === 'Closed' || err.reason === 'UnknownTask')) {
          renewing = false
          a.revoked = err.message
          a.controller.abort(new Error(`lease revoked: ${err.message}`))
          return
        }
        this.components.log.debug(`lease renewal for ${task} failed: ${errorText(err)}`)
      }
      renewing = false
      if (!a.controller.signal.aborted && !this.stopping.signal.aborted) a.renewTimer = setTimeout(() => { void renew() }, every)
    }
    a.renewTimer = setTimeout(() => { void renew() }, every)
    // the dial a renewal makes is what reconnects a winner cut off from its submitter in time
    a.renewNow = () => { if (!a.controller.signal.aborted && !this.stopping.signal.aborted) void renew() }
  }

  /** Sends the result (retrying while the submitter is unreachable) and records the run. */
  private async deliver (a: Assignment, client: SubmitterClient, outcome: ExecutionOutcome, durationMs: number): Promise<void> {
    const { task, round } = a.award
    const request: ResultRequest = {
      t: 'result',
      task,
      round,
      ok: outcome.ok,
      ...(outcome.ok ? { output: outcome.output } : { error: outcome.error.slice(0, 4096) }),
      ...(outcome.logs != null && outcome.logs.length > 0
        ? { logs: outcome.logs.slice(0, MAX_LOG_LINES).map(l => ({ level: l.level.slice(0, 16), message: l.message.slice(0, 4096) })) }
        : {}),
      durationMs
    }
    const giveUpAt = Date.now() + 3 * a.award.leaseMs + 10_000
    // the record may wait for its chain as long as the delivery is tried
    const recordSignal = this.recordSignal(giveUpAt - Date.now())
    // a delivery tried again after its answer was lost records nothing twice: the record made stands
    let made: Recorded | undefined
    for (let attempt = 0; ; attempt++) {
      try {
        // an attempt has twice the time its submitter gives the ledger record to be confirmed
        const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(2 * this.settings.recordConfirmMs)])
        // kept before the submitter hears where it was recorded, so by the time the task is done
        // there, this device shows its result too. The append is not bound to the attempt: on a
        // busy device it may outlast it, and a run the submitter answered is recorded all the same
        // (the next attempt finds the record made)
        const accepted = await client.deliver(request, async (ok) => {
          const recorded = made?.seq != null ? made : await this.record(a, outcome, ok, recordSignal)
          made = recorded
          this.keep(task, request, ok, recorded)
          return recorded
        }, { signal })
        this.emit('run-end', { task, round, sent: true, accepted })
        return
      } catch (err) {
        this.emit('result-send-failed', { task, round, error: errorText(err) })
        if (this.stopping.signal.aborted || Date.now() > giveUpAt) {
          this.components.log.warn(`result of ${task} could not be delivered to ${a.award.submitter}: ${errorText(err)}`)
          this.emit('run-end', { task, round, sent: false, reason: 'submitter unreachable' })
          return
        }
        await new Promise(resolve => setTimeout(resolve, DELIVERY_DELAYS_MS[Math.min(attempt, DELIVERY_DELAYS_MS.length - 1)]))
      }
    }
  }

  private keep (task: TaskId, request: ResultRequest, accepted: boolean, recorded: Recorded): void {
    const ledger = { ...(recorded.seq != null ? { seq: recorded.seq } : {}), ...(recorded.hash != null ? { hash: recorded.hash } : {}), ...(recorded.error != null ? { error: recorded.error } : {}) }
    this.ran.delete(task)
    this.ran.set(task, {
      accepted,
      result: {
        ok: request.ok,
        ...(request.output != null ? { output: request.output } : {}),
        ...(request.error != null ? { error: request.error } : {}),
        executor: this.components.self,
        round: request.round,
        durationMs: request.durationMs,
        ...(request.logs != null ? { logs: request.logs } : {}),
        ledger
      }
    })
    for (const id of this.ran.keys()) {
      if (this.ran.size <= this.settings.maxTasks) break
      this.ran.delete(id)
    }
  }

  private keepCancelled (task: TaskId, entry: CancelledHere): void {
    this.cancelledRuns.delete(task)
    this.cancelledRuns.set(task, entry)
    for (const id of this.cancelledRuns.keys()) {
      if (this.cancelledRuns.size <= this.settings.maxTasks) break
      this.cancelledRuns.delete(id)
    }
  }

  /** A stopped run's ledger record: status `cancelled`, its output the digest of the reason. */
  /**
   * The signal a run's record is appended under. On a busy device the append waits for its turn
   * on the chain, long past any one exchange with the submitter, so it may wait `ms` and at least
   * RECORD_WAIT_MS; not for good, since the run holds its slot until it ends.
   */
  private recordSignal (ms = 0): AbortSignal {
    return AbortSignal.any([this.stopping.signal, AbortSignal.timeout(Math.max(RECORD_WAIT_MS, ms))])
  }

  private async recordCancelled (a: Assignment, reason: string, outcome?: ExecutionOutcome): Promise<CancelledHere['ledger']> {
    const ledger = this.components.ledger
    if (ledger == null) return { error: 'this node keeps no ledger' }
    const { award } = a
    try {
      const appended = await ledger.append({
        task: award.task,
        agent: award.agent,
        input: award.input,
        output: sha256Hex(reason),
        status: 'cancelled',
        placement: `round ${award.round} of task by ${award.submitter}${this.clauses(a)}; stopped: ${reason}`.slice(0, 1000),
        ...usageOf(outcome)
      }, { signal: this.recordSignal() })
      const hash = appended?.hash
      return {
        ...(appended?.seq != null ? { seq: appended.seq } : {}),
        ...(hash != null ? { hash: typeof hash === 'string' ? hash : Buffer.from(hash).toString('hex') } : {})
      }
    } catch (err) {
      this.components.log.warn(`ledger record of cancelled ${award.task} not appended: ${errorText(err)}`)
      return { error: errorText(err).slice(0, 1000) }
    }
  }

  /** What budgets count of a run, in its record's placement text (control/budgets.ts). */
  private clauses (a: Assignment): string {
    return runClauses({
      ranMs: a.ranMs ?? 0,
      ...(a.announce?.context != null ? { context: a.announce.context } : {}),
      ...(a.announce?.name != null ? { name: a.announce.name } : {})
    })
  }

  private async record (a: Assignment, outcome: ExecutionOutcome, accepted: boolean, signal: AbortSignal): Promise<Recorded> {
    const ledger = this.components.ledger
    if (ledger == null) return { t: 'recorded', error: 'this node keeps no ledger' }
    const { award } = a
    const status = !accepted ? 'discarded' : outcome.ok ? 'ok' : 'error'
    const summary = `round ${award.round} of task by ${award.submitter}; won with cost ${award.cost} among ${award.bids.length} bid${award.bids.length === 1 ? '' : 's'}` +
      (award.excluded.length > 0 ? `; after ${award.excluded.length} lapsed` : '') + this.clauses(a)
    try {
      const appended = await ledger.append({
        task: award.task,
        agent: award.agent,
        input: award.input,
        output: sha256Hex(outcome.ok ? outcome.output : outcome.error),
        status,
        placement: summary.slice(0, 1000),
        ...usageOf(outcome)
      }, { signal })
      const hash = appended?.hash
      return {
        t: 'recorded',
        ...(appended?.seq != null ? { seq: appended.seq } : {}),
        ...(hash != null ? { hash: typeof hash === 'string' ? hash : Buffer.from(hash).toString('hex') } : {})
      }
    } catch (err) {
      this.components.log.warn(`ledger record for ${award.task} not appended: ${errorText(err)}`)
      return { t: 'recorded', error: errorText(err).slice(0, 1000) }
    }
  }
}

/** What a run used, for its ledger record: its model calls and its http requests, when it made any. */
function usageOf (outcome: ExecutionOutcome | undefined): Pick<ExecutionRecord, 'llm' | 'net'> {
  return {
    ...(outcome?.llm != null && outcome.llm.length > 0 ? { llm: outcome.llm } : {}),
    ...(outcome?.net != null && outcome.net.requests > 0 ? { net: outcome.net } : {})
  }
}
