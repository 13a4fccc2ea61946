// The tasks this device submitted, kept on disk: placement holds a task in memory while it runs
// and for a while after; the archive keeps its view (status, placement, history, result) and,
// once it ends, its explanation, so `hive-node task`, `tasks` and `explain` still answer after
// the node restarts. A task that was under way when the node stopped is marked failed
// (`Interrupted`) at the next start: its submitter is gone, so no result can be accepted.

import type { Explanation, TaskView } from '../protocol/placement/index.ts'
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

export interface TaskArchiveLog {
  warn: (message: string) => void
}

type Db = AbstractSublevel<any, any, string, string>

/** classic-level takes `sync`; abstract-level's option types do not name it. */
const SYNC = { sync: true } as Record<string, unknown>
const NO_SYNC = { sync: false } as Record<string, unknown>

const DEFAULT_MAX_TASKS = 1000
const TASK_PREFIX = 'task!'
const ORDER_PREFIX = 'order!'

const ended = (view: TaskView): boolean => view.status === 'done' || view.status === 'failed'

/** `order!<createdAt as 13 digits>!<id>`: keys sort oldest first. */
function orderKey (view: Pick<TaskView, 'createdAt' | 'id'>): string {
  return `${ORDER_PREFIX}${String(view.createdAt).padStart(13, '0')}!${view.id}`
}

function parse (text: string): ArchivedTask | undefined {
  try {
    const value = JSON.parse(text) as ArchivedTask
    if (value?.view == null || typeof value.view.id !== 'string' || typeof value.view.status !== 'string' || !Array.isArray(value.view.history)) return undefined
    return value
  } catch {
    return undefined
  }
}

class Archive implements TaskArchive {
  private readonly db: Db
  private readonly placement: ArchivedPlacement
  private readonly log: TaskArchiveLog
  private readonly maxTasks: number
  /** Per task: the newest view not yet written, and the write under way. */
  private readonly pending = new Map<string, { view: TaskView, writing?: Promise<void> }>()
  private count = 0
  private listening = false

  constructor (init: { maxTasks?: number }, components: { db: Db, placement: ArchivedPlacement, log: TaskArchiveLog }) {
    this.db = components.db
    this.placement = components.placement
    this.log = components.log
    this.maxTasks = init.maxTasks ?? DEFAULT_MAX_TASKS
  }

  async start (): Promise<void> {
    // tasks the last run left under way ended with it
    const now = Date.now()
    const interrupted: Array<{ type: 'put', key: string, value: string }> = []
    let count = 0
    for await (const [key, text] of this.db.iterator({ gte: TASK_PREFIX, lt: `${TASK_PREFIX}~` })) {
      count++
      const task = parse(text)
      if (task == null) {
        this.log.warn(`tasks archive: entry ${key} cannot be read; it is left out of "hive-node tasks"`)
        continue
      }
      if (ended(task.view)) continue
      const view: TaskView = {
        ...task.view,
        status: 'failed',
        closedAt: now,
        error: { code: 'Interrupted', message: 'this node stopped before the task finished; run it again' },
        history: [...task.view.history, { at: now, type: 'failed', detail: 'the node stopped while the task was under way' }]
      }
      interrupted.push({ type: 'put', key, value: JSON.stringify({ view }) })
    }
    if (interrupted.length > 0) await this.db.batch(interrupted, SYNC)
    this.count = count
    await this.prune()
    this.placement.addEventListener('task', this.onTask)
    this.listening = true
  }

  async stop (): Promise<void> {
    if (this.listening) this.placement.removeEventListener('task', this.onTask)
    this.listening = false
    await Promise.allSettled([...this.pending.values()].map(async p => p.writing))
  }

  private readonly onTask = (event: Event): void => {
    const view = (event as CustomEvent<TaskView>).detail
    if (view?.role !== 'submitter') return
    const slot = this.pending.get(view.id)
    if (slot != null) {
      // a write is under way: it picks this newer view up when it is done
      slot.view = view
      return
    }
    const fresh = { view, writing: undefined as Promise<void> | undefined }
    this.pending.set(view.id, fresh)
    fresh.writing = this.drain(view.id)
  }

  /** Writes the newest view of a task until no newer one arrived meanwhile. */
  private async drain (id: string): Promise<void> {
    let written: TaskView | undefined
    try {
      for (;;) {
        const slot = this.pending.get(id)
        if (slot == null || slot.view === written) break
        const view = slot.view
        await this.write(view)
        written = view
      }
    } catch (err) {
      this.log.warn(`tasks archive: task ${id} could not be written: ${(err as Error).message}`)
    } finally {
      this.pending.delete(id)
    }
  }

  private async write (view: TaskView): Promise<void> {
    const key = TASK_PREFIX + view.id
    const known = await this.db.get(key) != null
    let explanation: Explanation | undefined
    if (ended(view)) {
      // an ended task's bids leave memory in time: keep why it went where it went
      explanation = await this.placement.explain(view.id).catch(() => undefined)
    }
    await this.db.batch([
      { type: 'put', key, value: JSON.stringify(explanation != null ? { view, explanation } : { view }) },
      { type: 'put', key: orderKey(view), value: view.id }
    ], ended(view) ? SYNC : NO_SYNC)
    if (!known) {
      this.count++
      if (this.count > this.maxTasks) await this.prune()
    }
  }

  /** Drops the oldest tasks beyond the limit. */
  private async prune (): Promise<void> {
    let excess = this.count - this.maxTasks
    if (excess <= 0) return
    const ops: Array<{ type: 'del', key: string }> = []
    for await (const [key, id] of this.db.iterator({ gte: ORDER_PREFIX, lt: `${ORDER_PREFIX}~` })) {
      if (excess <= 0) break
      ops.push({ type: 'del', key }, { type: 'del', key: TASK_PREFIX + id })
      excess--
    }
    await this.db.batch(ops)
    this.count -= ops.length / 2
  }

  async get (taskId: string): Promise<ArchivedTask | undefined> {
    const text = await this.db.get(TASK_PREFIX + taskId)
    return text != null ? parse(text) : undefined
  }

  async list (options: { limit?: number } = {}): Promise<TaskView[]> {
    const limit = options.limit ?? 50
    const views: TaskView[] = []
    for await (const id of this.db.values({ gte: ORDER_PREFIX, lt: `${ORDER_PREFIX}~`, reverse: true, limit: limit * 2 })) {
      if (views.length >= limit) break
      const task = await this.get(id)
      if (task != null && !views.some(v => v.id === task.view.id)) views.push(task.view)
    }
    return views
  }
}

export function createTaskArchive (init: { maxTasks?: number }, components: { db: Db, placement: ArchivedPlacement, log: TaskArchiveLog }): TaskArchive {
  return new Archive(init, components)
}
