// Following a task or a workflow from the command line: the long-poll loop asks the node with a
// bounded wait, stops at the end, and gives up at the deadline with the caller's error.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LONG_POLL_MS, parseLimit, waitUntilEnded } from '../../node/commands/follow.ts'

describe('following until the end', () => {
  it('asks again, each poll at most the long-poll bound, until the value has ended', async () => {
    const asked: number[] = []
    const states = ['running', 'running', 'done']
    const last = await waitUntilEnded('queued', async (ms) => { asked.push(ms); return states[asked.length - 1] as string }, s => s === 'done')
    assert.equal(last, 'done')
    assert.deepEqual(asked, [LONG_POLL_MS, LONG_POLL_MS, LONG_POLL_MS])
  })

  it('never asks past the deadline, nor for less than 1 ms, and then throws the caller\'s error', async () => {
    const asked: number[] = []
    await assert.rejects(waitUntilEnded('running', async (ms) => { asked.push(ms); await new Promise(resolve => setImmediate(resolve)); return 'running' }, s => s === 'done', {
      waitMs: 5, timedOut: (lastValue) => Object.assign(new Error(`still ${lastValue}`), { name: 'StillRunning' })
    }), { name: 'StillRunning', message: 'still running' })
    assert.ok(asked.length >= 1)
    for (const ms of asked) assert.ok(ms >= 1 && ms <= 5, `asked for ${ms} ms`)
  })

  it('returns at once what has already ended, without asking', async () => {
    assert.equal(await waitUntilEnded('done', async () => { throw new Error('asked') }, s => s === 'done'), 'done')
  })
})

describe('--limit', () => {
  it('is 20 when absent, a positive whole number when given, and says what it takes otherwise', () => {
    assert.equal(parseLimit(undefined), 20)
    assert.equal(parseLimit('3'), 3)
    for (const bad of ['0', '-1', '2.5', 'ten']) assert.throws(() => parseLimit(bad), { name: 'UsageError', message: new RegExp(`positive whole number, not "${bad}"`) })
  })
})
