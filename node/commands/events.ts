// `hive-node logs TASK [--follow]` and `hive-node monitor`: what the node's event stream
// (`GET /events`) shows, for one task's log lines or for the whole hive. `hive-node run` follows
// its own task's lines through `liveLogs`.

import { ApiRequestError, UsageError, formatTime } from '../cli-context.ts'
import type { ApiClient, CliContext, CommonOptions, StreamEvent } from '../cli-context.ts'
import type { CapabilityEntry, TaskView } from '../../protocol/index.ts'
import type { Command } from 'commander'

const TASK_ID = /^[0-9a-f]{32}$/

interface LogLine { n: number, level: string, message: string }

interface HeldLogs {
  task: string
  role?: 'submitter' | 'observer'
  status?: string
  lines: LogLine[]
  dropped: number
  ended: boolean
}

/** How long `run` waits, once its task ended, for the stream to bring the last lines. */
const LAST_LINES_WAIT_MS = 5_000

/** The stream opened and its `hello` read, so nothing after this moment is missed; undefined when it cannot be opened. */
async function openStream (api: ApiClient, signal: AbortSignal): Promise<(AsyncGenerator<StreamEvent> & { hello: StreamEvent }) | undefined> {
  const stream = api.events({ signal })
  try {
    const first = await stream.next()
    if (first.done === true || first.value.type !== 'hello') return undefined
    return Object.assign(stream, { hello: first.value })
  } catch (err) {
    if (err instanceof ApiRequestError) return undefined
    throw err
  }
}

/**
 * A run's log lines as they are logged: opened before the task is submitted, printing the lines
 * of the task it is told about (and those that came first). Without the stream (too many
 * subscribers) it prints nothing, and `finish` prints the lines the result carried.
 */
export async function liveLogs (cli: CliContext, options: CommonOptions, print: (line: LogLine) => void): Promise<{
  follow: (task: string) => void
  /** Waits (a few seconds at most) for the stream to bring the task's last lines, prints what it missed from `logs`, and closes. */
  finish: (logs: Array<{ level: string, message: string }>) => Promise<void>
  close: () => void
}> {
  const controller = new AbortController()
  const stream = await openStream(cli.api(options), controller.signal).catch(() => undefined)
  let task: string | undefined
  let printed = 0
  const early: StreamEvent[] = []
  const { promise: ended, resolve: end } = Promise.withResolvers<void>()
  const take = (event: StreamEvent): void => {
    if (event.data.task !== task) return
    if (event.type === 'task.log') {
      const n = Number(event.data.n)
      if (n > printed) {
        printed = n
        print({ n, level: String(event.data.level), message: String(event.data.message) })
      }
    } else if (event.type === 'task.done' || event.type === 'task.failed') {
      end()
    }
  }
  if (stream != null) {
    void (async () => {
      for await (const event of stream) {
        if (task == null) {
          if (event.type.startsWith('task.') && early.length < 10_000) early.push(event)
        } else {
          take(event)
        }
      }
      end()
    })().catch(() => { end() })
  } else {
    end()
  }
  const close = (): void => { controller.abort() }
  return {
    follow: (id) => {
      task = id
      for (const event of early.splice(0)) take(event)
    },
    finish: async (logs) => {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([ended, new Promise<void>(resolve => { timer = setTimeout(resolve, LAST_LINES_WAIT_MS) })])
      clearTimeout(timer)
      close()
      logs.slice(printed).forEach((l, i) => { print({ n: printed + i + 1, ...l }) })
    },
    close
  }
}

function logLine (line: LogLine): string {
  return `${line.level}: ${line.message}`
}

/** The name beside a PeerId in an event's payload, else the PeerId's end. */
function who (data: Record<string, unknown>, key: string): string {
  const name = data[`${key}Name`]
  if (typeof name === 'string') return name
  const id = data[key]
  return typeof id === 'string' ? `…${id.slice(-8)}` : '?'
}

function short (task: unknown): string {
  return typeof task === 'string' ? task.slice(0, 8) : '?'
}

/** One line for an event: what `monitor` prints when stdout is not a terminal. */
export function describeEvent (event: StreamEvent): string {
  const d = event.data
  const time = formatTime(event.at).slice(11)
  const text = ((): string => {
    switch (event.type) {
      case 'hello': return `following ${who(d, 'peer')} (${String(d.peer)})`
      case 'peer.connected': return `${who(d, 'peer')} connected${d.member === true ? '' : ' (not a member)'}`
      case 'peer.disconnected': return `${who(d, 'peer')} disconnected`
      case 'capabilities.changed': {
        const c = d.caps as { load?: number, cores?: number, running?: number, power?: { state?: string } } | undefined
        return `${who(d, 'peer')}: load ${c?.load?.toFixed(2) ?? '?'} on ${c?.cores ?? '?'} cores, ${c?.running ?? 0} running, power ${c?.power?.state ?? '?'}`
      }
      case 'capabilities.expired': return `${who(d, 'peer')} went quiet`
      case 'task.announced': return `task ${short(d.task)} announced by ${who(d, 'submitter')}`
      case 'task.bid': return `task ${short(d.task)} bid by ${who(d, 'bidder')}: ${String(d.outcome)}`
      case 'task.awarded': return `task ${short(d.task)} awarded to ${who(d, 'winner')} (round ${String(d.round)})`
      case 'task.running': return `task ${short(d.task)} running on ${who(d, 'executor')}`
      case 'task.log': return `task ${short(d.task)} log ${String(d.level)}: ${String(d.message)}`
      case 'task.done': return `task ${short(d.task)} done on ${who(d, 'executor')} in ${Math.round(Number(d.durationMs))} ms`
      case 'task.failed': {
        const e = d.error as { code?: string, message?: string } | undefined
        return `task ${short(d.task)} failed: ${e?.code ?? '?'}: ${e?.message ?? ''}`
      }
      case 'task.run-ended': return `task ${short(d.task)} run here ended: ${String(d.outcome)}${d.reason != null ? ` (${String(d.reason)})` : ''}`
      case 'ledger.appended': return `ledger: ${String(d.stored)} record(s) on ${who(d, 'signer')}'s chain, now to seq ${String(d.end)}`
      case 'ledger.verified': return `ledger audit: ${d.ok === true ? 'clean' : 'FAILED'}, ${String(d.records)} records in ${String(d.chains)} chains`
      case 'ledger.health': return `ledger: this device's chain is ${String(d.state)}${d.message != null ? ` (${String(d.message)})` : ''}`
      case 'context.created': return `context ${String(d.context)} created`
      case 'context.changed': return `context ${String(d.context)} changed (${String(d.bytes)} bytes, ${d.origin === 'local' ? 'here' : `from ${who(d, 'peer')}`})`
      case 'membership.changed': {
        const names = (list: unknown): string => (Array.isArray(list) ? list as Array<Record<string, unknown>> : []).map(p => who(p, 'peer')).join(', ')
        return `members: ${d.hiveChanged === true ? 'another hive; ' : ''}${names(d.joined) !== '' ? `joined ${names(d.joined)} ` : ''}${names(d.left) !== '' ? `left ${names(d.left)}` : ''}`.trim()
      }
      default: return JSON.stringify(d)
    }
  })()
  return `${time} ${event.type.padEnd(20)} ${text}`
}

interface Device { peerId: string, name: string, caps?: CapabilityEntry['caps'], gone?: boolean }

/** The live terminal view: devices, recent placements and a rate line, redrawn as events come. */
class MonitorView {
  private readonly devices = new Map<string, Device>()
  /** Tasks running, by executor. */
  private readonly running = new Map<string, Set<string>>()
  private readonly recent: string[] = []
  private readonly times: number[] = []
  private readonly done: number[] = []
  private self = ''

  constructor (capabilities: CapabilityEntry[]) {
    for (const e of capabilities) this.devices.set(e.peerId, { peerId: e.peerId, name: e.caps.name, caps: e.caps })
  }

  take (event: StreamEvent): void {
    const d = event.data
    const now = Date.now()
    this.times.push(now)
    while (this.times.length > 0 && (this.times[0] ?? 0) < now - 10_000) this.times.shift()
    const task = typeof d.task === 'string' ? d.task : undefined
    switch (event.type) {
      case 'hello': this.self = String(d.peer); break
      case 'capabilities.changed': {
        const peer = String(d.peer)
        this.devices.set(peer, { peerId: peer, name: who(d, 'peer'), caps: d.caps as CapabilityEntry['caps'] })
        break
      }
      case 'capabilities.expired': {
        const device = this.devices.get(String(d.peer))
        if (device != null) device.gone = true
        break
      }
      case 'task.running':
        if (task != null) {
          const set = this.running.get(String(d.executor)) ?? new Set()
          set.add(task)
          this.running.set(String(d.executor), set)
        }
        break
      case 'task.awarded':
      case 'task.done':
      case 'task.failed':
        if (task != null && event.type !== 'task.awarded') {
          for (const set of this.running.values()) set.delete(task)
          if (event.type === 'task.done') this.done.push(now)
        }
        this.recent.unshift(describeEvent(event))
        this.recent.length = Math.min(this.recent.length, 8)
        break
      case 'task.run-ended':
        if (task != null) this.running.get(String(d.executor))?.delete(task)
        break
    }
    while (this.done.length > 0 && (this.done[0] ?? 0) < now - 60_000) this.done.shift()
  }

  render (columns: number): string {
    const lines = [`hive-node monitor — ${formatTime(Date.now())} (Ctrl-C to leave)`, '']
    lines.push('DEVICE               LOAD         MEMORY FREE  POWER        RUNNING')
    const devices = [...this.devices.values()].sort((a, b) => a.name.localeCompare(b.name))
    for (const dev of devices) {
      const c = dev.caps
      const load = c != null ? `${c.load.toFixed(2)}/${c.cores}` : '?'
      const mem = c != null ? `${(c.freeMemory / 2 ** 30).toFixed(1)} GiB` : '?'
      const power = c != null ? `${c.power.state}${c.power.percent != null ? ` ${Math.round(c.power.percent)}%` : ''}` : '?'
      const tasks = [...(this.running.get(dev.peerId) ?? [])].map(t => t.slice(0, 8))
      const running = `${c?.running ?? tasks.length}${tasks.length > 0 ? ` (${tasks.join(', ')})` : ''}`
      const name = `${dev.name}${dev.peerId === this.self ? ' *' : ''}${dev.gone === true ? ' (quiet)' : ''}`
      lines.push(`${name.padEnd(20)} ${load.padEnd(12)} ${mem.padEnd(12)} ${power.padEnd(12)} ${running}`)
    }
    lines.push('', 'RECENT PLACEMENTS', ...(this.recent.length > 0 ? this.recent : ['(none yet)']), '')
    lines.push(`rate: ${(this.times.length / 10).toFixed(1)} events/s, ${this.done.length} tasks done in the last minute`)
    return lines.map(l => l.slice(0, Math.max(20, columns))).join('\n')
  }
}

export function register (program: Command, cli: CliContext): void {
  program.command('logs')
    .description('print a task\'s log lines (those this node holds); --follow prints new ones until the task ends')
    .argument('<task>', 'task id, as "hive-node tasks" lists them')
    .option('-f, --follow', 'keep printing lines as they are logged, until the task ends')
    .option('--json', 'print one JSON line per log line')
    .action(async (task: string, _options: CommonOptions & { follow?: boolean }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { follow?: boolean }>()
      if (!TASK_ID.test(task)) throw new UsageError(`"${task}" is not a task id (32 hex characters, as "hive-node tasks" lists them)`)
      const api = cli.api(all)
      const print = (line: LogLine): void => { cli.out(all.json === true ? JSON.stringify(line) + '\n' : logLine(line) + '\n') }
      const controller = new AbortController()
      // the stream first, then what is held: no line falls between the two
      const stream = all.follow === true ? await openStream(api, controller.signal) : undefined
      if (all.follow === true && stream == null) throw new Error('the node\'s event stream is full (too many clients follow it); try again, or drop --follow')
      try {
        const held = await api.get<HeldLogs>(`/task/${task}/logs`)
        let printed = 0
        for (const line of held.lines) {
          print(line)
          printed = line.n
        }
        if (held.dropped > 0) cli.err(`(${held.dropped} further lines were not kept)\n`)
        if (stream == null || held.ended) return
        for await (const event of stream) {
          if (event.data.task !== task) continue
          if (event.type === 'task.log' && Number(event.data.n) > printed) {
            printed = Number(event.data.n)
            print({ n: printed, level: String(event.data.level), message: String(event.data.message) })
          } else if (event.type === 'task.done' || event.type === 'task.failed') {
            if (all.json !== true) cli.err(`${describeEvent(event).slice(9).trim()}\n`)
            return
          } else if (event.type === 'task.run-ended' && held.role !== 'submitter') {
            // a run here for another device's task: nothing more of it comes to this node
            if (all.json !== true) cli.err(`the run here ended (${String(event.data.outcome)}); the task's submitter has the rest\n`)
            return
          }
        }
        throw new Error(`the node stopped before task ${task} ended`)
      } finally {
        controller.abort()
      }
    })

  program.command('monitor')
    .description('a live view of the hive from the node\'s event stream: devices, placements, rates (a line per event when stdout is not a terminal)')
    .option('--json', 'print each event as one JSON line')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const api = cli.api(all)
      const controller = new AbortController()
      const stream = await openStream(api, controller.signal)
      if (stream == null) throw new Error('the node\'s event stream is full (too many clients follow it); try again later')
      if (all.json === true || !cli.tty) {
        cli.out((all.json === true ? JSON.stringify(stream.hello) : describeEvent(stream.hello)) + '\n')
        for await (const event of stream) cli.out((all.json === true ? JSON.stringify(event) : describeEvent(event)) + '\n')
        cli.err('the node stopped\n')
        return
      }
      const [{ capabilities }, recent] = await Promise.all([
        api.get<{ capabilities: CapabilityEntry[] }>('/capabilities'),
        api.get<{ tasks: TaskView[] }>('/tasks?limit=8').catch(() => ({ tasks: [] }))
      ])
      const view = new MonitorView(capabilities)
      view.take(stream.hello)
      for (const t of recent.tasks.slice().reverse()) {
        if (t.status === 'done' || t.status === 'failed') {
          view.take({ id: 0, type: `task.${t.status}`, at: t.closedAt ?? t.createdAt, data: { task: t.id, executor: t.result?.executor, durationMs: t.result?.durationMs ?? 0, error: t.error } })
        }
      }
      let scheduled: NodeJS.Timeout | undefined
      const draw = (): void => {
        scheduled = undefined
        // a terminal that reports no width (0) gets a usual one
        const columns = (process.stdout.columns ?? 0) > 0 ? process.stdout.columns : 100
        cli.out(`\x1b[H\x1b[2J${view.render(columns)}\n`)
      }
      cli.out('\x1b[?25l')
      const restore = (): void => { cli.out('\x1b[?25h') }
      const onSignal = (): void => { controller.abort() }
      process.once('SIGINT', onSignal)
      // the rate line moves with time too
      const ticker = setInterval(draw, 1000)
      try {
        draw()
        for await (const event of stream) {
          view.take(event)
          // at most five redraws a second however many events come
          scheduled ??= setTimeout(draw, 200)
        }
        if (!controller.signal.aborted) cli.err('the node stopped\n')
      } catch (err) {
        if (!controller.signal.aborted) throw err
      } finally {
        clearInterval(ticker)
        clearTimeout(scheduled)
        process.off('SIGINT', onSignal)
        restore()
      }
    })
}
