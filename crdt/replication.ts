// Replication engine: y-protocols sync and awareness for every context, over one stream per
// peer. It knows nothing of libp2p beyond the `Stream` interface, so tests run it over
// in-memory stream pairs and the node runs it over libp2p protocol streams (served and dialled
// through protocol/wire's serveProtocol and dialFramed, which hand it framed streams).
//
// Wire: each frame is protocol/wire/framing.ts framing (varint length + CBOR map), validated by zod:
//   { t: 0, c: <context id>, m: <y-protocols sync message> }   sync step 1 / step 2 / update
//   { t: 1, m: <y-protocols awareness update> }                 presence
// When a link opens each side sends step 1 (its state vector) for every context it holds, and
// its whole awareness state. A step 1 for a context the receiver lacks creates it there (that
// is how a new context reaches every node) and is answered with step 2 plus the receiver's own
// step 1. Step 2 and update payloads go through ContextStore.applyRemote: validated, stored
// with a synced write, applied; the store then reports the update with the link as its origin
// and the engine forwards it to every other link, never back to the one it came from.
//
// A peer that sends a malformed frame, an invalid update or an oversized one is cut off: its
// stream is aborted and `onFault` is called (the node hangs up on it). The document is not
// touched, and the other links carry on. An update that is well-formed but beyond a limit (a
// value nested too deep, too much pending) is only refused: an honest peer can hold one (stored
// before the limits were enforced on local writes, or written into its store by hand), and
// hanging up would cut it off for good, since it sends the same update on every reconnect. The
// receiver drops that update, answers { t: 2, c, code, reason } so the sender can say which
// context does not reach whom, and the link carries every other update on.

import { z } from 'zod'
import * as syncProtocol from 'y-protocols/sync'
import * as encoding from 'lib0/encoding'
import * as Y from 'yjs'
import { Bytes, encodeFrame, FramedStream, isPeerFault } from '../protocol/wire/index.ts'
import { ContextStoreClosedError, MalformedUpdateError, PeerRefusedUpdateError, PendingOverLimitError, ReplicationProtocolError, UpdateRefusedError, UpdateTooLargeError, ValueTooDeepError } from './errors.ts'
import { MAX_REFUSAL_REASON } from './limits.ts'
import { isContextId } from './ids.ts'
import { readSyncMessage, SYNC_STEP1, validateStateVector } from './validate.ts'
import { MAX_AWARENESS_BYTES } from './presence.ts'
import type { ContextId } from './ids.ts'
import type { Presence } from './presence.ts'
import type { ContextStore } from './store.ts'
import type { Stream } from '@libp2p/interface'

export const MESSAGE_SYNC = 0
export const MESSAGE_AWARENESS = 1
export const MESSAGE_REFUSED = 2

/** Updates from one peer being validated and stored at once, before reading waits. */
const MAX_INFLIGHT_PER_LINK = 256

/** Room for the CBOR envelope and the y-protocols header around an update. */
const FRAME_OVERHEAD = 1024


const messageSchema = z.discriminatedUnion('t', [
  z.object({ t: z.literal(MESSAGE_SYNC), c: z.string().refine(isContextId, 'invalid context id'), m: Bytes }),
  z.object({ t: z.literal(MESSAGE_AWARENESS), m: Bytes }),
  z.object({ t: z.literal(MESSAGE_REFUSED), c: z.string().refine(isContextId, 'invalid context id'), code: z.string().max(64), reason: z.string().max(MAX_REFUSAL_REASON) })
])

type Message = z.infer<typeof messageSchema>

export interface ReplicationInit {
  /** Largest update accepted (defaults to the store's limit). */
  maxUpdateBytes?: number
  /** Bytes queued for one slow peer before its link is dropped (it catches up on reconnect). */
  maxQueuedBytes?: number
}

export interface ReplicationComponents {
  store: ContextStore
  presence: Presence
}

export interface AttachOptions {
  /** A label for the peer, used in errors. */
  peer: string
  /** Called once if the peer broke the protocol; the link is already closed. */
  onFault?: (err: Error) => void
}

export interface Link {
  readonly peer: string
  /** Resolves when the link has closed, for whatever reason. */
  readonly closed: Promise<void>
  close: () => void
}

export interface Replication {
  /** Runs the protocol over a stream; a FramedStream must be bounded by `maxFrameBytes`. */
  attach: (stream: Stream | FramedStream, options: AttachOptions) => Link
  /** The largest frame either side may send: updates up to the limit, plus the envelope. */
  readonly maxFrameBytes: number
  links: () => Link[]
  /** Fires for every error that is not a peer's fault (failed writes, oversized outgoing sync). */
  onError: (fn: (err: Error) => void) => () => void
  stop: () => Promise<void>
}

export function createReplication (init: ReplicationInit, components: ReplicationComponents): Replication {
  const { store, presence } = components
  const maxUpdateBytes = init.maxUpdateBytes ?? store.maxUpdateBytes
  const maxFrameBytes = Math.max(maxUpdateBytes, MAX_AWARENESS_BYTES) + FRAME_OVERHEAD
  const maxQueuedBytes = init.maxQueuedBytes ?? 4 * maxFrameBytes
  const links = new Set<PeerLink>()
  const errorListeners = new Set<(err: Error) => void>()

  function reportError (err: Error): void {
    for (const fn of errorListeners) {
      try { fn(err) } catch {}
    }
  }

  class PeerLink implements Link {
    readonly peer: string
    readonly closed: Promise<void>
    private readonly framed: FramedStream
    private readonly onFault?: (err: Error) => void
    private readonly announced = new Set<ContextId>()
    private readonly outbox: Uint8Array[] = []
    private outboxBytes = 0
    private sending = false
    private done = false
    private readonly inflight = new Set<Promise<void>>()

    constructor (stream: Stream | FramedStream, options: AttachOptions) {
      this.peer = options.peer
      this.onFault = options.onFault
      this.framed = stream instanceof FramedStream ? stream : new FramedStream(stream, { maxMessageBytes: maxFrameBytes })
      this.closed = this.run()
    }

    private async run (): Promise<void> {
      try {
        for (const id of store.ids()) this.sendStep1(id)
        this.send({ t: MESSAGE_AWARENESS, m: presence.fullUpdate() })
        for await (const message of this.framed.messages(messageSchema)) {
          if (this.done) break
          await this.handle(message)
        }
        this.finish()
      } catch (err) {
        this.fail(err as Error)
      }
    }

    private async handle (message: Message): Promise<void> {
      if (message.t === MESSAGE_AWARENESS) {
        presence.apply(message.m, this)
        return
      }
      if (message.t === MESSAGE_REFUSED) {
        reportError(new PeerRefusedUpdateError(`${this.peer} refused an update of context ${message.c} (${message.code}: ${message.reason}); that context's changes do not reach it, every other context still does`))
        return
      }
      const id = message.c as ContextId
      const { type, payload } = readSyncMessage(message.m)
      if (type === SYNC_STEP1) {
        validateStateVector(payload, maxUpdateBytes)
        const ctx = await store.ensure(id, this)
        this.sendStep1(id)
        const update = Y.encodeStateAsUpdate(ctx.doc, payload)
        if (update.byteLength > maxUpdateBytes) {
          reportError(new UpdateTooLargeError(`context ${id} needs ${update.byteLength} bytes to sync with ${this.peer}, over the limit of ${maxUpdateBytes}`))
          return
        }
        const encoder = encoding.createEncoder()
        encoding.writeVarUint(encoder, syncProtocol.messageYjsSyncStep2)
        encoding.writeVarUint8Array(encoder, update)
        this.send({ t: MESSAGE_SYNC, c: id, m: encoding.toUint8Array(encoder) })
        return
      }
      // Step 2 and update are handled alike: both carry an update. They are not awaited one by
      // one, so that updates arriving together are stored together (the store's group commit);
      // the store keeps them in order, and a bounded number may be in flight per link.
      const applying = store.applyRemote(id, payload, this).then(() => {}, (err: Error) => {
        if (isRefusal(err)) this.refuse(id, err)
        else this.fail(err)
      })
      this.inflight.add(applying)
      void applying.finally(() => this.inflight.delete(applying))
      if (this.inflight.size >= MAX_INFLIGHT_PER_LINK) await Promise.race(this.inflight)
    }

    sendStep1 (id: ContextId): void {
      if (this.announced.has(id)) return
      const ctx = store.get(id)
      if (ctx == null) return
      this.announced.add(id)
      const encoder = encoding.createEncoder()
      syncProtocol.writeSyncStep1(encoder, ctx.doc)
      this.send({ t: MESSAGE_SYNC, c: id, m: encoding.toUint8Array(encoder) })
    }

    sendUpdate (id: ContextId, update: Uint8Array): void {
      if (update.byteLength > maxUpdateBytes) {
        reportError(new UpdateTooLargeError(`an update of context ${id} (${update.byteLength} bytes) is over the limit of ${maxUpdateBytes} and was not sent to ${this.peer}; it reaches it on the next sync`))
        return
      }
      this.announced.add(id)
      const encoder = encoding.createEncoder()
      syncProtocol.writeUpdate(encoder, update)
      this.send({ t: MESSAGE_SYNC, c: id, m: encoding.toUint8Array(encoder) })
    }

    sendAwareness (update: Uint8Array): void {
      this.send({ t: MESSAGE_AWARENESS, m: update })
    }

    private send (message: Message): void {
      if (this.done) return
      const frame = encodeFrame(message, maxFrameBytes)
      this.outbox.push(frame)
      this.outboxBytes += frame.byteLength
      if (this.outboxBytes > maxQueuedBytes) {
        this.terminate(new ReplicationProtocolError(`${this.peer} is not reading: more than ${maxQueuedBytes} bytes queued; dropping the link, it catches up on reconnect`))
        return
      }
      void this.pump()
    }

    private async pump (): Promise<void> {
      if (this.sending) return
      this.sending = true
      try {
        while (this.outbox.length > 0 && !this.done) {
          const frame = this.outbox.shift() as Uint8Array
          this.outboxBytes -= frame.byteLength
          await this.framed.writeRaw(frame)
        }
      } catch (err) {
        this.terminate(err as Error)
      } finally {
        this.sending = false
      }
    }

    /** Drops one update that is beyond a limit, says so on both sides, and keeps the link. */
    private refuse (id: ContextId, err: Error): void {
      if (this.done) return
      reportError(new UpdateRefusedError(`refused an update of context ${id} from ${this.peer}: ${err.message}; the update was dropped, the link stays open`, { cause: err }))
      this.send({ t: MESSAGE_REFUSED, c: id, code: err.name.slice(0, 64), reason: err.message.slice(0, MAX_REFUSAL_REASON) })
    }

    /** The remote closed cleanly: finish sending what is queued, then close our side. */
    private finish (): void {
      if (this.done) return
      this.done = true
      this.cleanup()
      this.framed.close().catch(() => { this.framed.abort(new Error('close failed')) })
    }

    private fail (err: Error): void {
      if (this.done) return
      const fault = isPeerFault(err) || err instanceof MalformedUpdateError || err instanceof UpdateTooLargeError
      if (fault) {
        const protocolError = new ReplicationProtocolError(`${this.peer} sent something invalid and was disconnected: ${err.message}`, { cause: err })
        this.terminate(protocolError)
        this.onFault?.(protocolError)
      } else {
        if (!(err instanceof ContextStoreClosedError) && !isStreamEnd(err)) reportError(err)
        this.terminate(err)
      }
    }

    private terminate (err: Error): void {
      if (this.done) return
      this.done = true
      this.outbox.length = 0
      this.outboxBytes = 0
      this.cleanup()
      this.framed.abort(err)
    }

    private cleanup (): void {
      links.delete(this)
      presence.linkClosed(this)
    }

    close (): void {
      this.terminate(new Error('link closed locally'))
    }
  }

  const offUpdate = store.events.update.add(({ id, update, origin }) => {
    for (const link of links) {
      if (link !== origin) link.sendUpdate(id, update)
    }
  })
  const offCreated = store.events.created.add(({ id }) => {
    for (const link of links) link.sendStep1(id)
  })
  const offPresence = presence.onChange(({ update, origin }) => {
    for (const link of links) {
      if (link !== origin) link.sendAwareness(update)
    }
  })

  return {
    attach (stream, options) {
      const link = new PeerLink(stream, options)
      links.add(link)
      return link
    },
    maxFrameBytes,
    links: () => [...links],
    onError (fn) {
      errorListeners.add(fn)
      return () => { errorListeners.delete(fn) }
    },
    async stop () {
      offUpdate()
      offCreated()
      offPresence()
      const open = [...links]
      for (const link of open) link.close()
      await Promise.allSettled(open.map(async l => await l.closed))
      errorListeners.clear()
    }
  }
}

/** Well-formed, but beyond a limit: refused without dropping the peer (see the header). */
function isRefusal (err: Error): boolean {
  return err instanceof ValueTooDeepError || err instanceof PendingOverLimitError
}

function isStreamEnd (err: Error): boolean {
  return err.name === 'StreamResetError' || err.name === 'StreamAbortedError' || err.name === 'StreamClosedError' || err.name === 'StreamStateError' || err.name === 'AbortError'
}
