// The stream muxer: yamux, with one guard. yamux writes some frames from a microtask or a timer
// (a new stream's first window update, a reset), not from the call that caused them; when the
// connection under it started closing in between (a ping timeout, an idle close, the remote
// hanging up), the write throws StreamStateError where nothing can catch it, and the uncaught
// exception ends the process. Under churn (many nodes in one process, many connections closing)
// that happens. The guard catches that one error where yamux writes to the connection: the
// frame could not have gone out anyway, and the muxer and its connection are aborted right after
// (as yamux itself does when the same error comes up while it reads), so no half-closed
// connection lingers as open and the peer is dialled again. Any other error is thrown as before.

import { yamux } from '@chainsafe/libp2p-yamux'
import type { YamuxMuxerInit } from '@chainsafe/libp2p-yamux'
import type { StreamMuxer, StreamMuxerFactory } from '@libp2p/interface'

/** Frames dropped because their connection was already closing (all muxers of this process). */
export const droppedFrames = { count: 0 }

type Send = (data: unknown) => boolean

export function isStreamStateError (err: unknown): boolean {
  return err instanceof Error && err.name === 'StreamStateError'
}

/** Makes a muxer's writes to its connection drop a frame, rather than throw, once the connection is closing. */
export function guardMuxer<M extends StreamMuxer> (muxer: M, connection?: { abort: (err: Error) => void }): M {
  const target = muxer as unknown as { send?: Send }
  const send = target.send
  if (typeof send !== 'function') throw new Error('this yamux build writes to its connection in another way: the muxer guard cannot be installed')
  target.send = (data) => {
    try {
      return send.call(muxer, data)
    } catch (err) {
      if (!isStreamStateError(err)) throw err
      droppedFrames.count++
      queueMicrotask(() => {
        try {
          muxer.abort(err as Error)
          connection?.abort(err as Error)
        } catch { /* already closed */ }
      })
      return false
    }
  }
  return muxer
}

/** yamux, every muxer it makes guarded. */
export function guardedYamux (init?: YamuxMuxerInit): () => StreamMuxerFactory {
  const make = yamux(init)
  return () => {
    const factory = make()
    return {
      protocol: factory.protocol,
      createStreamMuxer: (maConn) => guardMuxer(factory.createStreamMuxer(maConn), maConn)
    }
  }
}
