// The inbound-handler wrapper every hive protocol registers through, and the outbound dial
// helper. The wrapper checks the peer against the hive's gate, bounds frames, validates, and
// turns a peer's malformed input into a closed stream and a dropped connection instead of an
// exception inside the node. A peer gets a bounded number of exchanges at once per protocol,
// counted over all its connections, so opening more connections buys it no more of the node's
// memory. One-shot exchanges (placement, agent fetch, membership sync,
// pairing) run under a deadline; long-lived streams (context replication) run until either
// side ends them or the protocol stops.

import { PeerNotAllowedError, TooManyStreamsError, isPeerFault } from './errors.ts'
import { FramedStream } from './framing.ts'
import type { ProtocolLog } from './log.ts'
import type { AbortOptions, Connection, PeerId, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** The part of libp2p a protocol needs. Libp2p itself satisfies it; tests may pass less. */
export interface ProtocolHost {
  handle: (protocol: string, handler: StreamHandler, options?: StreamHandlerOptions) => Promise<void>
  unhandle: (protocol: string) => Promise<void>
  dialProtocol: (peer: PeerId | Multiaddr | Multiaddr[], protocols: string | string[], options?: AbortOptions & { runOnLimitedConnection?: boolean }) => Promise<Stream>
  hangUp: (peer: PeerId | Multiaddr, options?: AbortOptions) => Promise<void>
}

/** Decides whether a remote peer may speak a protocol. Membership provides the real one. */
export interface PeerGate {
  allows: (peer: PeerId, protocol: string) => boolean
}

export const OPEN_GATE: PeerGate = { allows: () => true }

export type { ProtocolLog }

/** Inbound streams at once per connection, and per peer, unless a protocol says otherwise. */
export const DEFAULT_MAX_INBOUND_STREAMS = 32

export interface InboundContext {
  peer: PeerId
  connection: Connection
  /** Aborted when the handler's time is up or the protocol is being stopped. */
  signal: AbortSignal
}

export type InboundHandler = (stream: FramedStream, context: InboundContext) => Promise<void>

export interface ServeOptions {
  log: ProtocolLog
  gate?: PeerGate
  maxMessageBytes?: number
  /** Upper bound for one inbound exchange; omit (or set `longLived`) for long-lived streams. */
  timeoutMs?: number
  /** The stream lives as long as the exchange wants: no deadline even if `timeoutMs` is set. */
  longLived?: boolean
  /** Inbound streams at once on one connection (libp2p's own check). Default 32. */
  maxInboundStreams?: number
  /**
   * Inbound streams at once from one peer over all its connections: a peer that opens more
   * connections gets no more of this node. Default: `maxInboundStreams`.
   */
  maxInboundStreamsPerPeer?: number
  maxOutboundStreams?: number
  /**
   * Accept streams on a limited connection (a relayed one, or one the gate admits only for
   * pairing). Default false: only pairing needs it.
   */
  runOnLimitedConnection?: boolean
  /** Which errors are the peer's fault and get it hung up on. Default: malformed or oversized frames. */
  isPeerFault?: (err: Error) => boolean
  /** Told when a peer is dropped for sending something malformed (tests and metrics). */
  onPeerFault?: (peer: PeerId, err: Error) => void
}

export interface ServedProtocol {
  readonly protocol: string
  /** Unregisters and aborts every exchange still running. */
  stop: () => Promise<void>
}

export async function serveProtocol (host: Pick<ProtocolHost, 'handle' | 'unhandle' | 'hangUp'>, protocol: string, handler: InboundHandler, options: ServeOptions): Promise<ServedProtocol> {
  const { log } = options
  const gate = options.gate ?? OPEN_GATE
  const exchanges = new Set<AbortController>()
  const peerFault = options.isPeerFault ?? isPeerFault
  const maxInbound = options.maxInboundStreams ?? DEFAULT_MAX_INBOUND_STREAMS
  const maxPerPeer = options.maxInboundStreamsPerPeer ?? maxInbound
  /** Exchanges under way per peer; a peer is forgotten when its last one ends. */
  const perPeer = new Map<string, number>()

  const wrapped: StreamHandler = async (stream, connection) => {
    const peer = connection.remotePeer
    if (!gate.allows(peer, protocol)) {
      log.debug(`refused ${protocol} stream from ${peer.toString()}: not allowed`)
      stream.abort(new PeerNotAllowedError(`${peer.toString()} may not open ${protocol}`))
      return
    }
    const key = peer.toString()
    const open = perPeer.get(key) ?? 0
    if (open >= maxPerPeer) {
      log.debug(`refused ${protocol} stream from ${key}: ${open} already open`)
      stream.abort(new TooManyStreamsError(`${key} has ${open} ${protocol} streams open, the most one peer may`))
      return
    }
    perPeer.set(key, open + 1)
    // One controller per exchange, released when it ends: a timer or a dependent signal
    // left on a long-lived `stopping` signal would hold every stream's state until it fired.
    const exchange = new AbortController()
    exchanges.add(exchange)
    const timer = options.timeoutMs != null && options.longLived !== true
      ? setTimeout(() => { exchange.abort(new Error(`${protocol} exchange timed out`)) }, options.timeoutMs)
      : undefined
    const signal = exchange.signal
    const framed = new FramedStream(stream, { maxMessageBytes: options.maxMessageBytes })
    try {
      await handler(framed, { peer, connection, signal })
      if (stream.status === 'open') await stream.close({ signal: AbortSignal.timeout(5_000) }).catch(() => { stream.abort(new Error('close timed out')) })
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err))
      framed.abort(error)
      if (peerFault(error)) {
        log.warn(`dropping peer ${peer.toString()} on ${protocol}: ${error.name}: ${error.message}`)
        options.onPeerFault?.(peer, error)
        await host.hangUp(peer).catch(() => {})
      } else {
        log.debug(`${protocol} exchange with ${peer.toString()} ended: ${error.name}: ${error.message}`)
      }
    } finally {
      clearTimeout(timer)
      exchanges.delete(exchange)
      const left = (perPeer.get(key) ?? 1) - 1
      if (left > 0) perPeer.set(key, left)
      else perPeer.delete(key)
    }
  }

  await host.handle(protocol, wrapped, {
    maxInboundStreams: maxInbound,
    ...(options.maxOutboundStreams != null ? { maxOutboundStreams: options.maxOutboundStreams } : {}),
    runOnLimitedConnection: options.runOnLimitedConnection ?? false
  })
  return {
    protocol,
    stop: async () => {
      for (const exchange of exchanges) exchange.abort(new Error(`${protocol} stopped`))
      await host.unhandle(protocol)
    }
  }
}

export interface DialOptions extends AbortOptions {
  maxMessageBytes?: number
  /** Open the stream even on a limited connection (pairing). */
  runOnLimitedConnection?: boolean
}

/** Opens a framed stream to a peer. */
export async function dialFramed (host: Pick<ProtocolHost, 'dialProtocol'>, peer: PeerId | Multiaddr | Multiaddr[], protocol: string, options: DialOptions = {}): Promise<FramedStream> {
  const stream = await host.dialProtocol(peer, protocol, { signal: options.signal, ...(options.runOnLimitedConnection === true ? { runOnLimitedConnection: true } : {}) })
  return new FramedStream(stream, { maxMessageBytes: options.maxMessageBytes })
}

/** Opens a framed stream on a connection already made (pairing dials a fresh one first). */
export async function openFramed (connection: Pick<Connection, 'newStream'>, protocol: string, options: DialOptions = {}): Promise<FramedStream> {
  const stream = await connection.newStream(protocol, { signal: options.signal, ...(options.runOnLimitedConnection === true ? { runOnLimitedConnection: true } : {}) })
  return new FramedStream(stream, { maxMessageBytes: options.maxMessageBytes })
}
