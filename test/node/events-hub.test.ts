// The event hub on its own, with stub sources: its bounds on the log lines it keeps (lines past
// the per-task bound are streamed but not kept, and counted; past the bytes bound over all tasks
// the oldest task's lines go first, never the task being logged to), and the lines of a task
// submitted here and run on another device: streamed as they come, then those only its result
// carried.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { EventHub, MAX_KEPT_LINES_PER_TASK, MAX_KEPT_LOG_BYTES } from '../../node/events/hub.ts'
import { TypedEventTarget, newTaskId } from '../../protocol/index.ts'
import type { EventSources, HiveEvent } from '../../node/events/hub.ts'
import type { PlacementEvents, TaskId, TaskView } from '../../protocol/index.ts'

const SELF = '12D3KooWHubSelf'
const OTHER = '12D3KooWHubOther'

/** Sources that dispatch nothing but what a test makes `placement` dispatch. */
function stubSources (views: Map<string, TaskView>): { sources: EventSources, placement: TypedEventTarget<PlacementEvents> } {
  const placement = Object.assign(new TypedEventTarget<PlacementEvents>(), { get: (id: string) => views.get(id) })
  const signal = { add: () => () => {} }
  const sources = {
    self: { peerId: SELF, name: 'here' },
    placement,
    contexts: { events: { created: signal, update: signal } },
    ledger: new EventTarget(),
    capabilities: Object.assign(new EventTarget(), { get: (peer: string) => peer === OTHER ? { caps: { name: 'there' } } : undefined }),
    membership: Object.assign(new EventTarget(), { member: () => undefined, isMember: () => true }),
    host: new EventTarget()
  } as unknown as EventSources
  return { sources, placement }
}

function view (id: TaskId, status: TaskView['status'], logs?: Array<{ level: string, message: string }>): TaskView {
  return {
    id, role: 'submitter', submitter: SELF, status, agent: 'a'.repeat(64), input: 'b'.repeat(64), inputSize: 1,
    requirements: { runtime: 'wasm-component', models: [] }, permissions: [], createdAt: 0, round: 1, winner: OTHER, history: [],
    ...(status === 'done' ? { result: { ok: true, output: 'x', executor: OTHER, round: 1, durationMs: 1, ...(logs != null ? { logs } : {}) } } : {})
  } as unknown as TaskView
}

describe('the log lines the event hub keeps', () => {
  it(`keeps ${MAX_KEPT_LINES_PER_TASK} lines of a task, counts the rest as dropped, and streams every one numbered`, () => {
    assert.equal(MAX_KEPT_LINES_PER_TASK, 1000)
    const hub = new EventHub()
    const streamed: HiveEvent[] = []
    const off = hub.subscribe((e) => { streamed.push(e) })
    const task = newTaskId()
    for (let i = 1; i <= MAX_KEPT_LINES_PER_TASK + 250; i++) hub.agentLine(task, { level: 'info', message: `line ${i}` })
    const kept = hub.taskLogs(task)
    assert.ok(kept != null)
    assert.equal(kept.lines.length, MAX_KEPT_LINES_PER_TASK)
    assert.equal(kept.dropped, 250)
    assert.deepEqual(kept.lines.at(-1)?.message, `line ${MAX_KEPT_LINES_PER_TASK}`)
    assert.deepEqual(kept.lines.map(l => l.n), Array.from({ length: MAX_KEPT_LINES_PER_TASK }, (_, i) => i + 1))
    // the stream has them all, numbered on past the bound
    assert.equal(streamed.length, MAX_KEPT_LINES_PER_TASK + 250)
    assert.deepEqual(streamed.at(-1)?.data, { task, n: MAX_KEPT_LINES_PER_TASK + 250, level: 'info', message: `line ${MAX_KEPT_LINES_PER_TASK + 250}`, executor: '' })
    off()
  })

  it(`keeps at most ${MAX_KEPT_LOG_BYTES} bytes of lines over all tasks, dropping the oldest task's first`, () => {
    assert.equal(MAX_KEPT_LOG_BYTES, 4 * 1024 * 1024)
    const hub = new EventHub()
    const line = { level: 'info', message: 'z'.repeat(1020) }
    const perTask = MAX_KEPT_LINES_PER_TASK * 1024
    const tasks = Array.from({ length: Math.ceil(MAX_KEPT_LOG_BYTES / perTask) + 2 }, () => newTaskId())
    for (const task of tasks) for (let i = 0; i < MAX_KEPT_LINES_PER_TASK; i++) hub.agentLine(task, line)
    const held = tasks.map(t => hub.taskLogs(t))
    const bytes = held.reduce((n, h) => n + (h?.lines.length ?? 0) * 1024, 0)
    assert.ok(bytes <= MAX_KEPT_LOG_BYTES, `${bytes} bytes kept`)
    assert.equal(held[0], undefined, 'the oldest task\'s lines went first')
    assert.equal(held.at(-1)?.lines.length, MAX_KEPT_LINES_PER_TASK, 'the newest task keeps all of its lines')
    // the ones kept are the newest tasks, whole
    const first = held.findIndex(h => h != null)
    assert.ok(held.slice(first).every(h => h?.lines.length === MAX_KEPT_LINES_PER_TASK))
  })

  it('streams the lines another device streams for a task submitted here, then only those its result carried beyond them', () => {
    const views = new Map<string, TaskView>()
    const hub = new EventHub()
    const { sources, placement } = stubSources(views)
    hub.attach(sources)
    const streamed: Array<HiveEvent<'task.log'>> = []
    hub.subscribe((e) => { if (e.type === 'task.log') streamed.push(e as HiveEvent<'task.log'>) })
    const task = newTaskId()
    placement.emit('task', view(task, 'running'))
    const line = (i: number): { level: string, message: string } => ({ level: 'info', message: `line ${i}` })
    placement.emit('logs', { task, round: 1, executor: OTHER, from: 1, lines: [line(1), line(2)] })
    assert.deepEqual(streamed.map(e => e.data), [1, 2].map(n => ({ task, n, level: 'info', message: `line ${n}`, executor: OTHER, executorName: 'there' })))
    assert.equal(hub.taskLogs(task)?.lines.length, 2, 'kept for hive-node logs while it runs')
    // the result carries lines 1 to 3: the third did not stream (past a bound, or lost), so it is streamed now
    const done = view(task, 'done', [line(1), line(2), line(3)])
    views.set(task, done)
    placement.emit('task', done)
    assert.deepEqual(streamed.map(e => e.data.n), [1, 2, 3])
    assert.equal(streamed.at(-1)?.data.message, 'line 3')
    assert.deepEqual(hub.taskLogs(task)?.lines.map(l => l.message), ['line 1', 'line 2', 'line 3'])
    hub.stop()
  })
})
