// The context subsystem as the node runs it: the store, presence, and the replication engine
// bound to a libp2p protocol, one stream per connected peer.
//
// Which side opens the stream: the peer whose id sorts lower dials as soon as it sees a
// connection; the other waits for the inbound stream. So each pair of peers has exactly one
// stream, without a negotiation. If the dialler's stream ends while the connection stays
// up (not for a fault), it dials again, with a bounded backoff.

import { CONTEXT_PROTOCOL, SILENT_LOG, dialFramed, serveProtocol } from '../protocol/wire/index.ts'
import { createContextStore } from './store.ts'
import { createReplication } from './replication.ts'
import { Presence } from './presence.ts'
import type { ContextStore, ContextStoreInit } from './store.ts'
import type { Link, Replication, ReplicationInit } from './replication.ts'
import type { LevelHandle } from './persistence.ts'
import type { FramedStream, ProtocolHost, ProtocolLog, ServedProtocol } from '../protocol/wire/index.ts'
import type { Connection, PeerId } from '@libp2p/interface'

export { CONTEXT_PROTOCOL }

/** The part of libp2p this subsystem uses. */
export interface ContextsLibp2p extends ProtocolHost {
  readonly peerId: PeerId
  getConnections: (peer?: PeerId) => Connection[]
  addEventListener: (type: 'peer:connect' | 'peer:disconnect', listener: (evt: CustomEvent<PeerId>) => void) => void
  removeEventListener: (type: 'peer:connect' | 'peer:disconnect', listener: (evt: CustomEvent<PeerId>) => void) => void
}

export interface ContextsInit extends Omit<ContextStoreInit, 'nodeName'>, ReplicationInit {
  protocol?: string
  /** Delays between redial attempts while a connection stays up; the last one repeats no more. */
  redialDelays?: number[]
}

export interface ContextsComponents {
  /** A LevelDB database or sublevel reserved for contexts. */
  db: LevelHandle
  libp2p: ContextsLibp2p
  /** This node's human name, shown in presence and on entries it writes. */
  nodeName: string
  /** Who may replicate with this node (hive membership); everyone when absent. */
  gate?: { allows: (peer: PeerId, protocol: string) => boolean }
  /** Whether a connection to this peer is transient (beyond an all-to-all hive, not a neighbour): no link is dialled on it. */
  transient?: (peer: string) => boolean
  log?: ProtocolLog
}

export interface Contexts {
  start: () => Promise<void>
  stop: () => Promise<void>
  readonly store: ContextStore
  readonly presence: Presence
  /** Peers with an open replication link. */
  linkedPeers: () => string[]
  /** Errors that are nobody's fault on the wire: failed writes, failed compactions. */
  onError: (fn: (err: Error) => void) => () => void
}

export function createContexts (init: ContextsInit, components: ContextsComponents): Contexts {
  const { libp2p, nodeName } = components
  const protocol = init.protocol ?? CONTEXT_PROTOCOL
  const redialDelays = init.redialDelays ?? [100, 500, 2000, 5000]
  const store = createContextStore({ ...init, nodeName }, { db: components.db })
  let presence: Presence | undefined
  let replication: Replication | undefined
  let served: ServedProtocol | undefined
  const links = new Map<string, Link>()
  const dialling = new Map<string, AbortController>()
  const errorListeners = new Set<(err: Error) => void>()
  const detach: Array<() => void> = []
  let running = false

  function reportError (err: Error): void {
    for (const fn of errorListeners) {
      try { fn(err) } catch {}
    }
  }

  function allowed (peer: PeerId): boolean {
    return components.gate?.allows(peer, protocol) ?? true
  }

  function shouldDial (peer: PeerId): boolean {
    return libp2p.peerId.toString() < peer.toString() && allowed(peer) && components.transient?.(peer.toString()) !== true
  }

  function connected (peer: PeerId): boolean {
    return libp2p.getConnections(peer).some(c => c.status === 'open')
  }

  function attach (stream: FramedStream, peer: PeerId): Link | undefined {
    if (replication == null) {
      stream.abort(new Error('context replication is not running'))
      return undefined
    }
    const key = peer.toString()
    links.get(key)?.close()
    let faulted = false
    const link = replication.attach(stream, {
      peer: key,
      onFault: (err) => {
        faulted = true
        reportError(err)
        libp2p.hangUp(peer).catch(() => {})
      }
    })
    links.set(key, link)
    void link.closed.then(() => {
      if (links.get(key) === link) links.delete(key)
      if (running && !faulted && shouldDial(peer) && connected(peer)) void dial(peer)
    })
    return link
  }

  async function dial (peer: PeerId): Promise<void> {
    const key = peer.toString()
    if (!running || links.has(key) || dialling.has(key)) return
    const controller = new AbortController()
    dialling.set(key, controller)
    try {
      for (let attempt = 0; attempt <= redialDelays.length; attempt++) {
        if (!running || controller.signal.aborted || !connected(peer)) return
        try {
          const stream = await dialFramed(libp2p, peer, protocol, { signal: controller.signal, maxMessageBytes: replication?.maxFrameBytes })
          if (!running || controller.signal.aborted) {
            stream.abort(new Error('context replication stopped'))
            return
          }
          attach(stream, peer)
          return
        } catch (err) {
          const wait = redialDelays[attempt]
          if (wait == null) {
            reportError(new Error(`could not open a context stream to ${key}: ${(err as Error).message}`, { cause: err }))
            return
          }
          await abortableDelay(wait, controller.signal)
        }
      }
    } finally {
      if (dialling.get(key) === controller) dialling.delete(key)
    }
  }

  const onConnect = (evt: CustomEvent<PeerId>): void => {
    if (shouldDial(evt.detail)) void dial(evt.detail)
  }

  const onDisconnect = (evt: CustomEvent<PeerId>): void => {
    const key = evt.detail.toString()
    dialling.get(key)?.abort()
    links.get(key)?.close()
  }

  return {
    store,
    get presence () {
      if (presence == null) throw new Error('contexts are not started')
      return presence
    },

    async start () {
      if (running) return
      await store.start()
      presence = new Presence(nodeName)
      replication = createReplication(init, { store, presence })
      detach.push(replication.onError(reportError))
      detach.push(store.events.error.add(reportError))
      const maxMessageBytes = replication.maxFrameBytes
      // one long-lived stream per peer; the link itself hangs up on a peer that breaks the protocol
      served = await serveProtocol(libp2p, protocol, async (stream, { peer, signal }) => {
        const link = attach(stream, peer)
        if (link == null) return
        signal.addEventListener('abort', () => { link.close() }, { once: true })
        await link.closed
      }, { log: components.log ?? SILENT_LOG, gate: { allows: allowed }, maxMessageBytes, longLived: true, maxInboundStreams: 4, maxOutboundStreams: 4, isPeerFault: () => false })
      libp2p.addEventListener('peer:connect', onConnect)
      libp2p.addEventListener('peer:disconnect', onDisconnect)
      running = true
      const peers = new Map<string, PeerId>()
      for (const connection of libp2p.getConnections()) peers.set(connection.remotePeer.toString(), connection.remotePeer)
      for (const peer of peers.values()) {
        if (shouldDial(peer)) void dial(peer)
      }
    },

    async stop () {
      if (!running) return
      running = false
      libp2p.removeEventListener('peer:connect', onConnect)
      libp2p.removeEventListener('peer:disconnect', onDisconnect)
      for (const controller of dialling.values()) controller.abort()
      dialling.clear()
      await served?.stop().catch(() => {})
      served = undefined
      await replication?.stop()
      links.clear()
      for (const off of detach.splice(0)) off()
      presence?.destroy()
      await store.stop()
      replication = undefined
    },

    linkedPeers: () => [...links.keys()].sort(),

    onError (fn) {
      errorListeners.add(fn)
      return () => { errorListeners.delete(fn) }
    }
  }
}

async function abortableDelay (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return
  await new Promise<void>(resolve => {
    const timer = setTimeout(done, ms)
    function done (): void {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
