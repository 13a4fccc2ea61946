// `hive-node task ID`, `hive-node explain ID`, `hive-node tasks`, and placing a run across the
// hive for `hive-node run` (agent.ts calls `runPlaced`).

import { CapabilityOverrides } from '../../protocol/capabilities/schema.ts'
import { isEnded } from '../../protocol/placement/views.ts'
import { ApiRequestError, UsageError, table } from '../cli-context.ts'
import { NodeNotRunningError } from '../errors.ts'
import { haltLines } from './control.ts'
import { ago, parseLimit, registerExplain, waitUntilEnded } from './follow.ts'
import type { HaltView } from '../api/control.ts'
import type { TaskArchive } from '../task-archive.ts'
import type { CapabilityEntry } from '../../protocol/capabilities/index.ts'
import type { TaskView } from '../../protocol/placement/index.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

const TASK_ID = /^[0-9a-f]{32}$/

function checkId (id: string): string {
  if (!TASK_ID.test(id)) throw new UsageError(`"${id}" is not a task id (32 hex characters, as "hive-node tasks" lists them)`)
  return id
}

type Names = (peerId: string) => string

/**
 * Device names for PeerIds, from the hive's member list (names kept while a device is away) and
 * the live capability view (its current name); this device is "this device".
 */
export async function peerNames (cli: CliContext, options: CommonOptions): Promise<Names> {
  const names = new Map<string, string>()
  let self: string | undefined
  const api = cli.api(options)
  await Promise.all([
    api.get<{ self: string, members: Array<{ peerId: string, name?: string | null }> }>('/hive').then(hive => {
      self = hive.self
      for (const m of hive.members) if (m.name != null && !names.has(m.peerId)) names.set(m.peerId, m.name)
    }, () => {}),
    api.get<{ capabilities: CapabilityEntry[] }>('/capabilities').then(({ capabilities }) => {
      for (const e of capabilities) names.set(e.peerId, e.caps.name)
    }, () => {})
  ])
  return (peerId) => {
    const name = names.get(peerId) ?? `…${peerId.slice(-8)}`
    return peerId === self ? `${name} (this device)` : name
  }
}

export function renderTask (task: TaskView, name: Names): string {
  const lines = [
    `task       ${task.id}`,
    `status     ${task.status}${task.error != null ? ` (${task.error.code}: ${task.error.message})` : ''}`,
    `submitted  ${ago(task.createdAt)} by ${name(task.submitter)}${task.role === 'observer' ? ' (seen from here)' : ''}`,
    `agent      ${task.agent}`,
    `input      ${task.input} (${task.inputSize} bytes)`
  ]
  if (task.contextId != null) lines.push(`context    ${task.contextId}`)
  if (task.winner != null) lines.push(`placed on  ${name(task.winner)} (round ${task.round})`)
  const r = task.result
  if (r != null) {
    lines.push(`ran on     ${name(r.executor)} in ${Math.round(r.durationMs)} ms${r.ledger?.seq != null ? `, ledger record ${r.ledger.seq}` : ''}`)
    lines.push(r.ok ? `output     ${r.output ?? ''}` : `error      ${r.error ?? ''}`)
  }
  const notable = task.history.filter(h => h.type === 'lease-lapsed' || h.type === 'winner-lost' || h.type === 'late-result' || h.type === 'abandoned' || h.type === 'failed' || h.type === 'cancelled')
  for (const h of notable) lines.push(`${h.type.padEnd(10)} ${h.detail}`)
  lines.push(`explain    hive-node explain ${task.id}`)
  return lines.join('\n')
}

export interface PlacedRun {
  agent: Uint8Array
  digest: string
  /** A published agent, NAME@VERSION: the node resolves it (and fetches it) instead of taking bytes. */
  ref?: string
  /** One of the agent's tools and its parameters: the node checks them and hands them to the agent. */
  tool?: string
  params?: Record<string, unknown>
  input: string
  contextId: string
  /** A PeerId or a device name: only that device may run it. */
  on?: string
  /** Only this device runs it. */
  local?: boolean
  /** Only devices the hive's policy gives these tags. */
  tags?: string[]
  /** Never leaves this device (the policy's per-task rule). */
  localOnly?: boolean
  /** How long to wait for the result before giving up waiting (the task goes on). */
  waitMs?: number
  /** Called with the task's id once it is submitted. */
  onSubmitted?: (task: string) => void
}

/** Resolves `--on`: a PeerId as it is, or the name of a live device. */
export async function resolvePeer (cli: CliContext, options: CommonOptions, on: string): Promise<string> {
  const { capabilities } = await cli.api(options).get<{ capabilities: CapabilityEntry[] }>('/capabilities')
  const byId = capabilities.find(e => e.peerId === on)
  if (byId != null) return byId.peerId
  const byName = capabilities.filter(e => e.caps.name === on)
  if (byName.length === 1) return byName[0]!.peerId
  if (byName.length > 1) throw new UsageError(`more than one device is named "${on}"; give its PeerId (hive-node peers lists them)`)
  if (/^12D3Koo|^Qm/.test(on)) return on
  throw new UsageError(`no live device is named "${on}"; hive-node peers lists the devices and their names`)
}

/**
 * Submits a run to the hive through the running node and waits for its result. Throws the
 * API's errors as they are; an agent failure comes back as a task whose result is not ok.
 */
export async function runPlaced (cli: CliContext, options: CommonOptions, run: PlacedRun): Promise<TaskView> {
  const api = cli.api(options)
  const on = run.on != null ? await resolvePeer(cli, options, run.on) : undefined
  const body = {
    ...(run.ref != null ? { agent: run.ref } : { digest: run.digest }),
    ...(run.tool != null ? { tool: run.tool, params: run.params ?? {} } : {}),
    input: run.input,
    contextId: run.contextId,
    ...(on != null ? { on } : {}),
    ...(run.local === true ? { local: true } : {}),
    ...(run.tags != null || run.localOnly === true ? { requirements: { ...(run.tags != null ? { tags: run.tags } : {}), ...(run.localOnly === true ? { localOnly: true } : {}) } } : {})
  }
  let submitted: { task: TaskView }
  try {
    submitted = await api.post<{ task: TaskView }>('/task', body)
  } catch (err) {
    if (!(err instanceof ApiRequestError && err.code === 'AgentNotHeld') || run.ref != null) throw err
    submitted = await api.post<{ task: TaskView }>('/task', { ...body, agent: Buffer.from(run.agent).toString('base64') })
  }
  run.onSubmitted?.(submitted.task.id)
  return waitForTask(cli, options, submitted.task, run.waitMs)
}

/** Waits for a task's end, at most `waitMs` (then TaskStillRunningError: the task goes on). */
export async function waitForTask (cli: CliContext, options: CommonOptions, task: TaskView, waitMs?: number): Promise<TaskView> {
  const api = cli.api(options)
  return waitUntilEnded(task, async (ms) => (await api.get<{ task: TaskView }>(`/task/${task.id}?waitMs=${ms}`)).task, t => isEnded(t.status), {
    ...(waitMs !== undefined ? { waitMs } : {}),
    timedOut: (last) => new TaskStillRunningError(last.id)
  })
}

export class TaskStillRunningError extends Error {
  override name = 'TaskStillRunning'
  constructor (id: string) {
    super(`task ${id} is still running; "hive-node task ${id}" shows it later`)
  }
}

/** The tasks archive of a stopped node's data directory, with the device names its member list holds. */
async function fromStoppedNode<T> (cli: CliContext, options: CommonOptions, fn: (archive: Pick<TaskArchive, 'get' | 'list'>) => Promise<T>): Promise<{ value: T, names: Names }> {
  const [{ storedMemberNames, withStoppedNode }, { readTaskArchive, TASKS_SUBLEVEL }] = await Promise.all([import('../offline.ts'), import('../task-archive.ts')])
  return withStoppedNode(cli.dataDir(options), 'tasks', async (db) => {
    const value = await fn(readTaskArchive(db.sublevel<string, string>(TASKS_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'utf8' })))
    const names = await storedMemberNames(db)
    return { value, names: (peerId: string) => names.get(peerId) ?? `…${peerId.slice(-8)}` }
  })
}

/** Asks the running node; when none runs, reads the data directory. Either way with device names. */
async function viaNodeOrArchive<T> (cli: CliContext, options: CommonOptions, online: () => Promise<T>, offline: (archive: Pick<TaskArchive, 'get' | 'list'>) => Promise<T>): Promise<{ value: T, stopped: boolean, names: Names }> {
  try {
    const value = await online()
    return { value, stopped: false, names: await peerNames(cli, options) }
  } catch (err) {
    if (!(err instanceof NodeNotRunningError)) throw err
  }
  return { ...await fromStoppedNode(cli, options, offline), stopped: true }
}

const STOPPED_NOTE = '(the node is stopped: read from its data directory)'

export function register (program: Command, cli: CliContext): void {
  program.command('task')
    .description('show a task: status, where it was placed, its result')
    .argument('<id>', 'task id')
    .option('--json', 'print as JSON')
    .action(async (id: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const taskId = checkId(id)
      const { value: task, stopped, names } = await viaNodeOrArchive(cli, all,
        async () => (await cli.api(all).get<{ task: TaskView }>(`/task/${taskId}`)).task,
        async (archive) => {
          const found = await archive.get(taskId)
          if (found == null) throw new UsageError(`no task ${taskId} in the tasks this device submitted ("hive-node tasks" lists them)`)
          return found.view
        })
      cli.print(all, () => renderTask(task, names) + (stopped ? `\n${STOPPED_NOTE}` : ''), { task })
    })

  program.command('cancel')
    .description('cancel a task submitted on this device: its run stops wherever it runs')
    .argument('<id>', 'task id')
    .option('--json', 'print as JSON')
    .action(async (id: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const taskId = checkId(id)
      let task: TaskView
      try {
        task = (await cli.api(all).request<{ task: TaskView }>('DELETE', `/task/${taskId}`)).task
      } catch (err) {
        if (err instanceof ApiRequestError && err.code === 'NotSubmitter') throw new UsageError(err.message)
        throw err
      }
      const names = await peerNames(cli, all)
      cli.print(all, () => renderTask(task, names), { task })
    })

  registerExplain(program, cli, {
    description: 'explain a placement: every bid with its reasons, the rule, the winner, any re-election',
    argument: 'task id',
    path: (id) => `/task/${checkId(id)}/explain`
  })

  program.command('tasks')
    .description('list recent tasks, submitted here or seen in the hive')
    .option('--limit <n>', 'how many (default 20)')
    .option('--json', 'print as JSON')
    .action(async (options: CommonOptions & { limit?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { limit?: string }>()
      const limit = parseLimit(options.limit)
      const { value: listed, stopped, names } = await viaNodeOrArchive(cli, all,
        async () => await cli.api(all).get<{ tasks: TaskView[], halt?: HaltView }>(`/tasks?limit=${limit}`),
        async (archive) => ({ tasks: await archive.list({ limit }) }))
      const { tasks, halt } = listed as { tasks: TaskView[], halt?: HaltView }
      const halted = haltLines(halt).map(l => l.trim())
      cli.print(all, () => (halted.length > 0 ? `${halted.join('\n')}\n` : '') + (tasks.length === 0
        ? 'no tasks yet; "hive-node run AGENT.wasm --input TEXT" places one'
        : table(['TASK', 'STATUS', 'SUBMITTED', 'BY', 'RAN ON', 'ROUND'], tasks.map(t => [
          t.id, t.status, ago(t.createdAt), name(names, t.submitter), t.result != null ? name(names, t.result.executor) : t.winner != null ? name(names, t.winner) : '', String(t.round)
        ]))) + (stopped ? `\n${STOPPED_NOTE}` : ''), { tasks, ...(halt != null ? { halt } : {}) })
    })
}

/**
 * `--capability field=value` flags of `hive-node start` as capability overrides, checked as the
 * node checks them: `power=battery:20`, `load=8`, `models=llama3.2,phi4`, `freeMemory=1073741824`.
 */
export function parseCapabilityFlags (flags: string[]): CapabilityOverrides {
  const raw: Record<string, unknown> = {}
  for (const flag of flags) {
    const eq = flag.indexOf('=')
    if (eq <= 0) throw new UsageError(`--capability takes field=value, not "${flag}"`)
    const field = flag.slice(0, eq)
    const value = flag.slice(eq + 1)
    if (field === 'power') {
      const [state, percent] = value.split(':')
      raw.power = percent === undefined ? state : { state, percent: Number(percent) }
    } else if (field === 'models' || field === 'runtimes') {
      raw[field] = value.split(',').map(v => v.trim()).filter(v => v.length > 0)
    } else {
      raw[field] = Number(value)
    }
  }
  const parsed = CapabilityOverrides.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UsageError(`--capability ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'} (fields: cores, load, freeMemory, totalMemory, power, runtimes, models)`)
  }
  return parsed.data
}

/** Columns `hive-node peers` shows from capability gossip. */
export const CAPABILITY_COLUMNS = ['CORES', 'LOAD', 'TASKS', 'FREE MEM', 'POWER', 'MODELS']

export function capabilityCells (caps: CapabilityEntry['caps'] | undefined): string[] {
  if (caps == null) return ['', '', '', '', 'quiet', '']
  const set = (field: string): string => caps.overridden.includes(field as never) ? '*' : ''
  return [
    `${caps.cores}${set('cores')}`,
    `${caps.load.toFixed(2)}${set('load')}`,
    String(caps.running),
    `${Math.floor(caps.freeMemory / 2 ** 20)} MiB${set('freeMemory')}`,
    `${caps.power.state}${caps.power.percent != null ? ` ${caps.power.percent}%` : ''}${set('power')}`,
    caps.models.join(',') || '-'
  ]
}

function name (names: Names, peerId: string): string {
  return names(peerId)
}
