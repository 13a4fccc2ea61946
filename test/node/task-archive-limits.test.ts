// The tasks archive on a real LevelDB, fed task views as placement emits them: it keeps the
// newest tasks within its count and byte limits (also when many end at once), stores each
// result once, and marks what was under way at a stop as interrupted.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Level } from 'level'
import { createTaskArchive } from '../../node/task-archive.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { Explanation, TaskView } from '../../protocol/placement/index.ts'
import type { TaskArchive } from '../../node/task-archive.ts'

const SUBMITTER = '12D3KooWSubmitter'

function view (n: number, status: TaskView['status'], output = `output ${n}`): TaskView {
  const id = n.toString(16).padStart(32, '0')
  return {
    id: id as TaskView['id'],
    role: 'submitter',
    submitter: SUBMITTER,
    status,
    agent: 'a'.repeat(64) as TaskView['agent'],
    input: 'b'.repeat(64) as TaskView['input'],
    inputSize: 1,
    requirements: {} as TaskView['requirements'],
    permissions: [],
    createdAt: 1_700_000_000_000 + n,
    round: 1,
    winner: SUBMITTER,
    ...(status === 'done' ? { result: { ok: true, output, executor: SUBMITTER, round: 1, durationMs: 1 } } : {}),
    history: [{ at: 1_700_000_000_000 + n, type: 'submitted', detail: 'submitted' }]
  }
}

/** Placement as the archive sees it: task events, and explanations of what it was given. */
class Source extends EventTarget {
  readonly views = new Map<string, TaskView>()
  emit (v: TaskView): void {
    this.views.set(v.id, v)
    this.dispatchEvent(new CustomEvent('task', { detail: v }))
  }

  async explain (id: string): Promise<Explanation> {
    const v = this.views.get(id)
    if (v == null) throw Object.assign(new Error(`no task ${id}`), { name: 'TaskNotFound' })
    return { task: v.id, submitter: SUBMITTER, status: v.status, rule: 'lowest cost', requirements: v.requirements, expected: [], missing: [], bids: [], rounds: [], ...(v.result != null ? { result: v.result } : {}), history: v.history } as unknown as Explanation
  }
}

describe('tasks archive limits', () => {
  let dir: string
  let db: Level<string, string>

  before(async () => {
    dir = await makeTempDir()
    db = new Level<string, string>(join(dir, 'db'))
    await db.open()
  })

  after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })

  const open = async (name: string, source: Source, init: { maxTasks?: number, maxBytes?: number }): Promise<TaskArchive> => {
    const archive = createTaskArchive(init, { db: db.sublevel<string, string>(name, { valueEncoding: 'utf8' }), placement: source, log: { warn: () => {} } })
    await archive.start()
    return archive
  }

  it('keeps the newest tasks within the count, also when many end at once', async () => {
    const source = new Source()
    const archive = await open('count', source, { maxTasks: 3 })
    for (let n = 1; n <= 8; n++) source.emit(view(n, 'done'))
    await archive.stop()
    const kept = await archive.list({ limit: 100 })
    assert.deepEqual(kept.map(v => v.createdAt - 1_700_000_000_000), [8, 7, 6])
    assert.equal(await archive.get(view(1, 'done').id), undefined)
    // and a fresh start agrees with what is on disk
    const again = await open('count', new Source(), { maxTasks: 3 })
    assert.equal((await again.list({ limit: 100 })).length, 3)
    await again.stop()
  })

  it('keeps the newest tasks within the bytes, and a result once', async () => {
    const source = new Source()
    const archive = await open('bytes', source, { maxBytes: 64 * 1024 })
    source.emit(view(1, 'done', 'small'))
    source.emit(view(2, 'done', 'x'.repeat(40 * 1024)))
    await waitFor(async () => (await archive.list()).length === 2, { message: 'two tasks written' })
    const entry = await db.sublevel<string, string>('bytes', { valueEncoding: 'utf8' }).get(`task!${view(2, 'done').id}`)
    assert.ok(entry != null && entry.length < 41 * 1024, 'the output is stored once, not again in the explanation')
    assert.equal((await archive.get(view(2, 'done').id))?.explanation?.result?.output?.length, 40 * 1024, 'the explanation reads its result back')
    source.emit(view(3, 'done', 'y'.repeat(40 * 1024)))
    await archive.stop()
    assert.deepEqual((await archive.list()).map(v => v.createdAt - 1_700_000_000_000), [3])
  })

  it('marks a task under way at the stop as interrupted at the next start', async () => {
    const source = new Source()
    const archive = await open('open', source, {})
    source.emit(view(1, 'running'))
    source.emit(view(2, 'done'))
    await archive.stop()
    const again = await open('open', new Source(), {})
    const cut = await again.get(view(1, 'running').id)
    assert.equal(cut?.view.status, 'failed')
    assert.equal(cut?.view.error?.code, 'Interrupted')
    assert.equal((await again.get(view(2, 'done').id))?.view.status, 'done')
    await again.stop()
    // only once: a third start finds nothing left open
    const third = await open('open', new Source(), {})
    assert.equal((await third.get(view(1, 'running').id))?.view.history.filter(h => h.type === 'failed').length, 1)
    await third.stop()
  })

  it('writes a task\'s first view and its end at once, and the changes between once a second has passed, the newest only', async (t) => {
    // the archive's one timer is mocked: a change is written only when the test moves time on
    t.mock.timers.enable({ apis: ['setTimeout'] })
    const source = new Source()
    // every write of the archive is one batch: counted here
    let writes = 0
    const sub = db.sublevel<string, string>('refresh', { valueEncoding: 'utf8' })
    const batch = sub.batch.bind(sub) as (...args: unknown[]) => Promise<void>
    ;(sub as unknown as { batch: (...args: unknown[]) => Promise<void> }).batch = async (...args) => { writes++; await batch(...args) }
    const archive = createTaskArchive({}, { db: sub, placement: source, log: { warn: () => {} } })
    await archive.start()
    const stored = async (id: string = view(1, 'bidding').id): Promise<string | undefined> => (await archive.get(id))?.view.status
    /** Reads the store until it shows `status`, at most `turns` times, without a timer. */
    const reads = async (status: string, turns = 200, id?: string): Promise<boolean> => {
      for (let i = 0; i < turns; i++) {
        if (await stored(id) === status) return true
        await new Promise(resolve => setImmediate(resolve))
      }
      return false
    }
    source.emit(view(1, 'bidding'))
    assert.ok(await reads('bidding'), 'the first view is written at once')
    assert.equal(writes, 1)
    source.emit(view(1, 'awarded'))
    source.emit(view(1, 'running'))
    assert.equal(await reads('running', 50), false, 'a change waits for its time')
    t.mock.timers.tick(1_000)
    assert.ok(await reads('running'), 'then the newest change is written')
    assert.equal(writes, 2, 'the two changes are one write')
    source.emit(view(1, 'awarded'))
    source.emit(view(1, 'done'))
    assert.ok(await reads('done'), 'the end is written without waiting')
    assert.equal(writes, 3)
    // a change left waiting at the stop is written by the stop
    source.emit(view(2, 'bidding'))
    assert.ok(await reads('bidding', 200, view(2, 'bidding').id))
    source.emit(view(2, 'running'))
    await archive.stop()
    assert.equal(await stored(view(2, 'running').id), 'running')
  })
})
