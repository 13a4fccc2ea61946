// The tasks this device submitted, kept on disk: placement holds a task in memory while it runs
// and for a while after; the archive keeps its view (status, placement, history, result) and,
// once it ends, its explanation, so `hive-node task`, `tasks` and `explain` still answer after
// the node restarts. A task that was under way when the node stopped is marked failed
// (`Interrupted`) at the next start: its submitter is gone, so no result can be accepted.
//
// Keys (one sublevel, utf8):
//   task!<id>                        JSON { view, explanation? } (the explanation without the
//                                    result, which the view holds)
//   order!<createdAt, 13 digits>!<id>  "<id> <bytes of the task entry>": oldest first, for the
//                                    list and for dropping the oldest beyond the limits
//   open!<id>                        "": tasks not ended yet, so a start reads only those

import { isEnded } from '../protocol/index.ts'
import type { Explanation, TaskView } from '../protocol/index.ts'
import type { AbstractSublevel } from 'abstract-level'

/** The slice of placement the archive listens to. */
export interface ArchivedPlacement extends EventTarget {
  explain: (taskId: string) => Promise<Explanation>
}

export interface ArchivedTask {
  view: TaskView
  explanation?: Explanation
}

export interface TaskArchive {
  start: () => Promise<void>
  /** Writes what is pending, then stops listening. */
  stop: () => Promise<void>
  get: (taskId: string) => Promise<ArchivedTask | undefined>
  /** The newest first. */
  list: (options?: { limit?: number }) => Promise<TaskView[]>
}

export interface TaskArchiveInit {
  /** Tasks kept at most. Default 1000. */
  maxTasks?: number
  /** Bytes of task entries kept at most (outputs make most of it). Default 256 MiB. */
  maxBytes?: number
}

export interface TaskArchiveLog {
  warn: (message: string) => void
}

type Db = AbstractSublevel<any, any, string, string>

/** classic-level takes `sync`; abstract-level's option types do not name it. */
const SYNC = { sync: true } as Record<string, unknown>
const NO_SYNC = { sync: false } as Record<string, unknown>

/** The sublevel of the node's database that holds the archive. */
export const TASKS_SUBLEVEL = 'tasks'

/**
 * How long a change of a task under way may wait to be written. Its first view is written at
 * once (a restart then knows the task was under way) and so is its end; a placed task changes
 * about ten times (each bid, the award, the claim, the result), and writing each of those cost
 * the submitter a batch and the view's JSON every time.
 */
const REFRESH_MS = 1_000

interface Pending {
  view: TaskView
  writing?: Promise<void>
  timer?: ReturnType<typeof setTimeout>
}

const DEFAULT_MAX_TASKS = 1000
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024
const TASK = 'task!'
const ORDER = 'order!'
const OPEN = 'open!'
const range = (prefix: string): { gte: string, lt: string } => ({ gte: prefix, lt: `${prefix}~` })

const ended = (view: TaskView): boolean => isEnded(view.status)

function orderKey (view: Pick<TaskView, 'createdAt' | 'id'>): string {
  return `${ORDER}${String(view.createdAt).padStart(13, '0')}!${view.id}`
}

function parse (text: string): ArchivedTask | undefined {
  try {
    const value = JSON.parse(text) as ArchivedTask
    if (value?.view == null || typeof value.view.id !== 'string' || typeof value.view.status !== 'string' || !Array.isArray(value.view.history)) return undefined
    if (value.explanation != null && value.view.result != null) value.explanation.result = value.view.result
    return value
  } catch {
    return undefined
  }
}

function encode (view: TaskView, explanation?: Explanation): string {
  if (explanation == null) return JSON.stringify({ view })
  const { result: _kept, ...rest } = explanation
  return JSON.stringify({ view, explanation: rest })
}

class Archive implements TaskArchive {
  private readonly db: Db
  private readonly placement: ArchivedPlacement
  private readonly log: TaskArchiveLog
  private readonly maxTasks: number
  private readonly maxBytes: number
  /** Per task: the newest view not yet written, and the write under way or the timer it waits on. */
  private readonly pending = new Map<string, Pending>()
  /** Tasks under way whose first view is on disk: their next views may wait for REFRESH_MS. */
  private readonly opened = new Set<string>()
  /** Size of each task entry held, by order key (in the order written, not sorted). */
  private readonly sizes = new Map<string, number>()
  private bytes = 0
  /** Prunes run one after another. */
  private pruning: Promise<void> = Promise.resolve()
  private listening = false

  constructor (init: TaskArchiveInit, components: { db: Db, placement: ArchivedPlacement, log: TaskArchiveLog }) {
    this.db = components.db
    this.placement = components.placement
    this.log = components.log
    this.maxTasks = init.maxTasks ?? DEFAULT_MAX_TASKS
    this.maxBytes = init.maxBytes ?? DEFAULT_MAX_BYTES
  }

  async start (): Promise<void> {
    for await (const [key, value] of this.db.iterator(range(ORDER))) {
      const size = Number(value.split(' ')[1] ?? 0) || 0
      this.sizes.set(key, size)
      this.bytes += size
    }
    // tasks the last run left under way ended with it
    const now = Date.now()
    const ops: Array<{ type: 'put', key: string, value: string } | { type: 'del', key: string }> = []
    for await (const key of this.db.keys(range(OPEN))) {
      const id = key.slice(OPEN.length)
      ops.push({ type: 'del', key })
      const task = await readTask(this.db, id)
      if (task == null || ended(task.view)) continue
      ops.push({ type: 'put', key: TASK + id, value: encode(interrupted(task.view, now)) })
    }
    if (ops.length > 0) await this.db.batch(ops, SYNC)
    await this.prune()
    this.placement.addEventListener('task', this.onTask)
    this.listening = true
  }

  async stop (): Promise<void> {
    if (this.listening) this.placement.removeEventListener('task', this.onTask)
    this.listening = false
    for (const [id, slot] of this.pending) if (slot.timer != null) this.writeNow(id, slot)
    await Promise.allSettled([...this.pending.values()].map(async p => p.writing))
    await this.pruning
  }

  private readonly onTask = (event: Event): void => {
    const view = (event as CustomEvent<TaskView>).detail
    if (view?.role !== 'submitter') return
    const slot = this.pending.get(view.id)
    if (slot != null) {
      // a write is under way (it picks this newer view up when it is done) or waits for its time
      slot.view = view
      if (slot.timer != null && ended(view)) this.writeNow(view.id, slot)
      return
    }
    const fresh: Pending = { view }
    this.pending.set(view.id, fresh)
    // the first view and the last at once; the changes between, at most every REFRESH_MS
    if (ended(view) || !this.opened.has(view.id)) {
      fresh.writing = this.drain(view.id)
    } else {
      fresh.timer = setTimeout(() => { this.writeNow(view.id, fresh) }, REFRESH_MS)
      fresh.timer.unref()
    }
  }

  private writeNow (id: string, slot: Pending): void {
    clearTimeout(slot.timer)
    slot.timer = undefined
    slot.writing = this.drain(id)
  }

  /** Writes the newest view of a task until no newer one arrived meanwhile. */
  private async drain (id: string): Promise<void> {
    let written: TaskView | undefined
    try {
      for (;;) {
        const slot = this.pending.get(id)
        if (slot == null || slot.view === written) break
        const view = slot.view
        try {
          await this.write(view)
          if (ended(view)) this.opened.delete(id)
          else this.opened.add(id)
        } catch (err) {
          // the next change of the task (or its end) is written again
          this.log.warn(`tasks archive: task ${id} could not be written: ${(err as Error).message}`)
        }
        written = view
      }
    } finally {
      this.pending.delete(id)
    }
  }

  private async write (view: TaskView): Promise<void> {
    const done = ended(view)
    // an ended task's bids leave memory in time: keep why it went where it went
    const explanation = done ? await this.placement.explain(view.id).catch(() => undefined) : undefined
    const value = encode(view, explanation)
    const order = orderKey(view)
    const size = Buffer.byteLength(value)
    await this.db.batch([
      { type: 'put', key: TASK + view.id, value },
      { type: 'put', key: order, value: `${view.id} ${size}` },
      done ? { type: 'del', key: OPEN + view.id } : { type: 'put', key: OPEN + view.id, value: '' }
    ], done ? SYNC : NO_SYNC)
    this.bytes += size - (this.sizes.get(order) ?? 0)
    this.sizes.set(order, size)
    if (this.sizes.size > this.maxTasks || this.bytes > this.maxBytes) await this.prune()
  }

  /** Drops the oldest tasks beyond the limits; one prune at a time. */
  private async prune (): Promise<void> {
    const run = this.pruning.then(async () => {
      const ops: Array<{ type: 'del', key: string }> = []
      let count = this.sizes.size
      let bytes = this.bytes
      // order keys sort oldest first (writes may finish in another order)
      for (const order of [...this.sizes.keys()].sort()) {
        if (count <= this.maxTasks && bytes <= this.maxBytes) break
        const size = this.sizes.get(order) ?? 0
        const id = order.slice(order.lastIndexOf('!') + 1)
        ops.push({ type: 'del', key: order }, { type: 'del', key: TASK + id }, { type: 'del', key: OPEN + id })
        count--
        bytes -= size
      }
      if (ops.length === 0) return
      await this.db.batch(ops)
      for (const op of ops) {
        const size = this.sizes.get(op.key)
        if (size == null) continue
        this.sizes.delete(op.key)
        this.bytes -= size
      }
    })
    this.pruning = run.catch((err: Error) => { this.log.warn(`tasks archive: old tasks could not be dropped: ${err.message}`) })
    await this.pruning
  }

  async get (taskId: string): Promise<ArchivedTask | undefined> {
    return readTask(this.db, taskId)
  }

  async list (options: { limit?: number } = {}): Promise<TaskView[]> {
    return listTasks(this.db, options.limit)
  }
}

/** A task that was under way when its node stopped, as the next start records it. */
function interrupted (view: TaskView, now: number): TaskView {
  return {
    ...view,
    status: 'failed',
    closedAt: now,
    error: { code: 'Interrupted', message: 'this node stopped before the task finished; run it again' },
    history: [...view.history, { at: now, type: 'failed', detail: 'the node stopped while the task was under way' }]
  }
}

async function readTask (db: Db, taskId: string): Promise<ArchivedTask | undefined> {
  const text = await db.get(TASK + taskId)
  return text != null ? parse(text) : undefined
}

async function listTasks (db: Db, limit = 50): Promise<TaskView[]> {
  const views: TaskView[] = []
  for await (const value of db.values({ ...range(ORDER), reverse: true, limit })) {
    const task = await readTask(db, value.split(' ')[0] ?? '')
    if (task != null) views.push(task.view)
  }
  return views
}

/**
 * The archive read while no node runs (the CLI with the node stopped): the same answers, with a
 * task left under way shown as the next start will record it, interrupted; nothing is written.
 */
export function readTaskArchive (db: Db): Pick<TaskArchive, 'get' | 'list'> {
  const now = Date.now()
  const settle = (view: TaskView): TaskView => ended(view) ? view : interrupted(view, now)
  return {
    get: async (taskId) => {
      const task = await readTask(db, taskId)
      return task != null ? { ...task, view: settle(task.view) } : undefined
    },
    list: async (options = {}) => (await listTasks(db, options.limit)).map(settle)
  }
}

export function createTaskArchive (init: TaskArchiveInit, components: { db: Db, placement: ArchivedPlacement, log: TaskArchiveLog }): TaskArchive {
  return new Archive(init, components)
}
