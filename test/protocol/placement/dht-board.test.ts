// DhtBoard's deferral, with a stub DHT and mock timers: decided records wait until this device
// has been between tasks for the quiet time, a task in between starts that wait again, and a
// record's due time sends it whatever the device is doing.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { DhtBoard, QUIET_MS } from '../../../protocol/placement/dht.ts'
import { SILENT_LOG } from '../../../protocol/placement/components.ts'
import type { PlacementDht, PlacementRecords } from '../../../protocol/placement/components.ts'
import type { TaskId } from '../../../protocol/placement/ids.ts'

const key = (n: number): Uint8Array => new TextEncoder().encode(`/hive/award/task-${n}/submitter`)

function board (state: { busy: boolean }): { board: DhtBoard, batches: string[][] } {
  const batches: string[][] = []
  const dht: PlacementDht = {
    put: async function * () {},
    get: async function * () {},
    putMany: async (records) => { batches.push(records.map(r => new TextDecoder().decode(r.key))) }
  }
  const b = new DhtBoard({
    dht,
    records: {} as unknown as PlacementRecords,
    isQuiet: () => !state.busy,
    isDecided: () => true,
    log: SILENT_LOG
  })
  b.start()
  return { board: b, batches }
}

/** Lets the board's put (a promise) run and its timers be set again. */
async function settle (): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve()
}

describe('DhtBoard deferral', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }) })
  afterEach(() => { mock.timers.reset() })

  it('puts the records of a burst together once the device has been between tasks for the quiet time', async () => {
    const state = { busy: true }
    const { board: b, batches } = board(state)
    for (let n = 0; n < 3; n++) {
      b.publish(key(n), new Uint8Array([n]), { task: `task-${n}` as TaskId })
      mock.timers.tick(100)
    }
    state.busy = false
    b.poke()
    mock.timers.tick(QUIET_MS - 10)
    await settle()
    assert.deepEqual(batches, [], 'nothing goes before the quiet time has passed')
    mock.timers.tick(20)
    await settle()
    assert.deepEqual(batches, [[0, 1, 2].map(n => `/hive/award/task-${n}/submitter`)], 'the three records go in one batch')
    b.stop()
  })

  it('starts the quiet time again when a task comes in between', async () => {
    const state = { busy: false }
    const { board: b, batches } = board(state)
    b.publish(key(1), new Uint8Array([1]), { task: 'task-1' as TaskId })
    mock.timers.tick(QUIET_MS / 2)
    state.busy = true
    b.poke()
    state.busy = false
    b.poke()
    mock.timers.tick(QUIET_MS / 2 + 10)
    await settle()
    assert.deepEqual(batches, [], 'the wait began again when the device went quiet again')
    mock.timers.tick(QUIET_MS / 2)
    await settle()
    assert.equal(batches.length, 1)
    b.stop()
  })

  it('puts a record at its due time while the device stays busy', async () => {
    const state = { busy: true }
    const { board: b, batches } = board(state)
    b.publish(key(1), new Uint8Array([1]), { task: 'task-1' as TaskId, deferMs: 5_000 })
    mock.timers.tick(4_990)
    await settle()
    assert.deepEqual(batches, [])
    mock.timers.tick(20)
    await settle()
    assert.deepEqual(batches, [['/hive/award/task-1/submitter']])
    b.stop()
  })
})
