// How a chat's tokens become `token` frames on /hive/llm: the first at once, then at most one
// frame per flush interval, the rest handed back for the last write; pieces never split a
// surrogate pair. The interval is set so long here that a timer never fires during a test, or
// to zero, so nothing depends on the machine's speed.

import { test } from 'node:test'
import assert from 'node:assert/strict'
import { textPieces, tokenFrames } from '../../../protocol/llm/index.ts'

test('the first token leaves at once; tokens made within the interval wait and leave together', async () => {
  const written: string[] = []
  const frames = tokenFrames(async (text) => { written.push(text) }, { flushMs: 3_600_000 })
  frames.push('a')
  assert.deepEqual(written, ['a'], 'the first token is never held')
  frames.push('b')
  frames.push('')
  frames.push('c')
  await Promise.resolve()
  assert.deepEqual(written, ['a'], 'tokens made within the interval wait')
  assert.equal(frames.text, 'abc')
  assert.equal(await frames.finish(), 'bc', 'what waits is handed back for the last write')
  frames.push('d')
  assert.equal(frames.text, 'abc', 'nothing is taken after finish')
  assert.deepEqual(written, ['a'])
})

test('a model slower than the interval streams token by token', async () => {
  const written: string[] = []
  const frames = tokenFrames(async (text) => { written.push(text) }, { flushMs: 0 })
  for (const t of ['one ', 'two ', 'three']) {
    frames.push(t)
    await new Promise(resolve => setImmediate(resolve))
  }
  assert.deepEqual(written, ['one ', 'two ', 'three'])
  assert.equal(await frames.finish(), '')
})

test('tokens made while a frame is being written follow it as soon as the write ends', async () => {
  const written: string[] = []
  const gate = Promise.withResolvers<void>()
  const frames = tokenFrames(async (text) => { written.push(text); if (written.length === 1) await gate.promise }, { flushMs: 0 })
  frames.push('a')
  frames.push('b')
  frames.push('c')
  assert.deepEqual(written, ['a'])
  gate.resolve()
  const rest = await frames.finish()
  assert.equal(written.join('') + rest, 'abc')
})

test('a failed write fails finish; cancel sends nothing more', async () => {
  const failing = tokenFrames(async () => { throw new Error('stream reset') }, { flushMs: 0 })
  failing.push('a')
  await assert.rejects(failing.finish(), /stream reset/)

  const written: string[] = []
  const frames = tokenFrames(async (text) => { written.push(text) }, { flushMs: 1 })
  frames.push('a')
  frames.push('b')
  frames.cancel()
  frames.push('c')
  assert.equal(await frames.finish(), '')
  assert.deepEqual(written, ['a'])
})

test('a long answer is cut into pieces within the frame bound, never inside a surrogate pair', () => {
  assert.deepEqual(textPieces(''), [])
  assert.deepEqual(textPieces('abcde', 2), ['ab', 'cd', 'e'])
  const emoji = '\u{1F41D}' // two UTF-16 units
  const pieces = textPieces(`a${emoji}b`, 2)
  assert.deepEqual(pieces, ['a', emoji, 'b'])
  for (const p of textPieces(emoji.repeat(50), 7)) assert.ok(p.length <= 7 && p.length % 2 === 0)
  assert.deepEqual(textPieces(emoji, 1), ['\ud83d', '\udc1d'], 'a bound of one unit still ends')
})
