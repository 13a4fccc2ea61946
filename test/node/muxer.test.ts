// The guarded muxer: a frame yamux writes from a microtask after its connection started closing
// is dropped instead of thrown where nothing can catch it (which would end the process).

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { multiaddrConnectionPair } from '@libp2p/utils'
import { droppedFrames, guardMuxer, guardedYamux } from '../../node/muxer.ts'
import { waitFor } from '../helpers/wait.ts'
import type { StreamMuxer } from '@libp2p/interface'

describe('guarded yamux', () => {
  it('drops the first window update of a stream opened as its connection closes, without an uncaught StreamStateError', async () => {
    const uncaught: Error[] = []
    const onUncaught = (err: Error): void => { uncaught.push(err) }
    process.on('uncaughtException', onUncaught)
    try {
      const [a, b] = multiaddrConnectionPair()
      const factory = guardedYamux()()
      const muxer = factory.createStreamMuxer(a)
      factory.createStreamMuxer(b)
      const before = droppedFrames.count
      // the connection starts closing; yamux has not heard yet and opens a stream, whose
      // window update goes out from a microtask
      void a.close().catch(() => {})
      await muxer.createStream().catch(() => {})
      await waitFor(() => droppedFrames.count > before, { message: 'the late frame was dropped' })
      assert.deepEqual(uncaught.map(e => e.name), [])
    } finally {
      process.off('uncaughtException', onUncaught)
    }
  })

  it('throws every other error as before', () => {
    const muxer = { send: () => { throw new TypeError('boom') } } as unknown as StreamMuxer
    assert.throws(() => (guardMuxer(muxer) as unknown as { send: (d: unknown) => boolean }).send(new Uint8Array(1)), { name: 'TypeError' })
    const closing = { send: () => { throw Object.assign(new Error('closing'), { name: 'StreamStateError' }) }, abort: () => {} } as unknown as StreamMuxer
    assert.equal((guardMuxer(closing) as unknown as { send: (d: unknown) => boolean }).send(new Uint8Array(1)), false)
  })
})
