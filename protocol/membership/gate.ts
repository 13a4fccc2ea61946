// The gate: membership turned into libp2p's checks, so a device outside the hive gets nothing.
//
// 1. Connections: a libp2p ConnectionGater refuses dials to and connections from non-members
//    once the remote's key is proven (after the noise handshake).
// 2. Pairing: the one exception. While this node has an open invite it admits a bounded number
//    of non-member connections, and while it joins a hive it admits the one connection to its
//    inviter. Such a connection is marked limited as it opens, so libp2p itself refuses every
//    protocol on it that did not opt in to limited connections, and no service (DHT, gossip)
//    is told about the peer; the gate's own checks allow it the pairing protocol alone; and it
//    is closed when its time is up. (Ping is allowed too: it carries nothing, and libp2p's
//    connection monitor drops a connection whose ping is refused.)
// 3. Streams: `allows(peer, protocol)` for every hive protocol handler, and a libp2p stream
//    middleware for libp2p's own protocols (identify, ping, kad-dht, gossipsub), inbound and
//    outbound.
// 4. Records and gossip: `isMember` for the DHT validator, a gossipsub score that graylists
//    non-members (their RPCs are dropped unread) and a topic validator that rejects messages
//    relayed by or authored by a non-member.
// 5. Removal: when a peer stops being a member, its connections are closed at once.
// 6. Relays: a member that relays (circuit relay v2) grants reservations to members only, and
//    opens relayed connections only from a member to a member; a device accepts a relayed
//    connection only through a member relay. A stranger is refused before any of this, at the
//    connection, so it never reaches the relay's hop protocol; these checks hold even for a
//    connection the gate admitted (pairing), which libp2p marks limited and the stream checks
//    keep to the pairing protocol.
// 7. Pairing through a relay: a member that invites while it holds a reservation on a member
//    relay opens a relay window there (protocol/pairing/relay-window.ts), for as long as its
//    invite is open and at most RELAY_WINDOW_MAX_MS at a time. While one is open the relay
//    admits a bounded number of strangers' connections as guests: marked limited like a
//    pairing connection, they may speak circuit relay's hop protocol (and ping) and nothing
//    else; a guest is refused any reservation, and gets a relayed connection only to a member
//    whose window is open, whose own gate then admits it as a pairing connection (limited,
//    the pairing protocol alone) as long as that member's invite is open. The window comes
//    from the inviter over its own authenticated connection, never from anything the
//    stranger sends.

import { TopicValidatorResult } from '@libp2p/gossipsub'
import { PeerNotAllowedError } from '../wire/errors.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { Membership, MembershipChange } from './membership.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import type { Connection, ConnectionGater, MultiaddrConnection, PeerId, Stream, StreamMiddleware } from '@libp2p/interface'

/** What the gate refused, for logs and tests. */
export interface Refusal {
  peer: string
  layer: 'connection' | 'stream' | 'gossip' | 'record' | 'relay'
  protocol?: string
  reason: string
}

export type GateLog = Pick<ProtocolLog, 'debug'>

export interface GateInit {
  /** The pairing protocol id: the only protocol a pairing connection may speak. */
  pairingProtocol: string
  /** Circuit relay v2's hop protocol: the one protocol a relay's guest may speak. */
  relayHopProtocol?: string
  /** How long a pairing connection may stay open. Default 60 s. */
  pairingConnectionTtlMs?: number
  /** How many pairing connections may be open at once. Default 4. */
  maxPairingConnections?: number
  /**
   * Protocols a pairing connection may speak besides pairing. Default: libp2p's ping, which
   * carries nothing but echoed random bytes, and without which libp2p's connection monitor
   * aborts the pairing connection mid-exchange when its periodic ping is refused.
   */
  pairingAlsoAllows?: string[]
  log?: GateLog
}

export interface GateComponents {
  membership: Pick<Membership, 'isMember' | 'peerId' | 'addEventListener' | 'removeEventListener'>
}

/** The libp2p calls the gate needs to enforce itself. Libp2p satisfies it. */
export interface GateHost {
  addEventListener: (type: 'connection:open', listener: (event: CustomEvent<Connection>) => void) => void
  removeEventListener: (type: 'connection:open', listener: (event: CustomEvent<Connection>) => void) => void
  getProtocols: () => string[]
  use: (protocol: string, middleware: StreamMiddleware | StreamMiddleware[]) => void
  unuse: (protocol: string) => void
  getConnections: (peer?: PeerId) => Connection[]
  hangUp: (peer: PeerId) => Promise<void>
}

/** The part of gossipsub the gate hooks into. */
export interface GossipHost {
  topicValidators: Map<string, TopicValidatorFn>
}

/** libp2p's ping, which its connection monitor runs on every connection. */
export const PING_PROTOCOL = '/ipfs/ping/1.0.0'

/** Circuit relay v2's hop protocol (reserve, connect), as libp2p names it. */
export const RELAY_HOP_PROTOCOL = '/libp2p/circuit/relay/0.2.0/hop'

/** Longest a relay window stays open without being renewed by its inviter. */
export const RELAY_WINDOW_MAX_MS = 10 * 60_000

/** Relay windows one member may hold open on a relay at once (one per open invite). */
export const MAX_RELAY_WINDOWS_PER_MEMBER = 4

/** A score far below gossipsub's default graylist threshold (-80). */
export const NON_MEMBER_GOSSIP_SCORE = -1_000_000

interface PairingSlot {
  peer: string
  /**
   * Admitted under an open invite (inbound), for a join this node started (outbound), or as
   * a relay's guest on its way to an inviter that opened a relay window here (guest), or the
   * joiner's connection to the relay its invite leads through (relay).
   */
  direction: 'inbound' | 'outbound' | 'guest' | 'relay'
  timer?: NodeJS.Timeout
}

interface RelayWindow {
  /** Milliseconds since the epoch. */
  until: number
  timer: NodeJS.Timeout
}

export class MembershipGate extends EventTarget {
  readonly pairingProtocol: string
  private readonly pairingProtocols: Set<string>
  private readonly membership: GateComponents['membership']
  private readonly ttlMs: number
  private readonly maxPairing: number
  private readonly log?: GateLog
  private openWindows = 0
  private readonly expected = new Map<string, number>()
  private readonly expectedRelays = new Map<string, number>()
  private readonly pairing = new Map<string, PairingSlot>()
  private readonly hopProtocol: string
  /** Relay side: open relay windows per inviting member, by window id. */
  private readonly relayWindows = new Map<string, Map<string, RelayWindow>>()
  private host?: GateHost
  private guarded: string[] = []
  private enforceConnections = true

  constructor (init: GateInit, components: GateComponents) {
    super()
    this.pairingProtocol = init.pairingProtocol
    this.pairingProtocols = new Set([init.pairingProtocol, ...(init.pairingAlsoAllows ?? [PING_PROTOCOL])])
    this.hopProtocol = init.relayHopProtocol ?? RELAY_HOP_PROTOCOL
    this.membership = components.membership
    this.ttlMs = init.pairingConnectionTtlMs ?? 60_000
    this.maxPairing = init.maxPairingConnections ?? 4
    this.log = init.log
    this.onConnectionOpen = this.onConnectionOpen.bind(this)
    this.onMembershipChange = this.onMembershipChange.bind(this)
    this.membership.addEventListener('change', this.onMembershipChange)
  }

  isMember (peer: PeerId | string): boolean {
    return this.membership.isMember(peer.toString())
  }

  /** Whether `peer` may speak `protocol` with this node now. */
  allows (peer: PeerId | string, protocol: string): boolean {
    const id = peer.toString()
    if (this.isMember(id)) return true
    const slot = this.pairing.get(id)
    if (slot == null) return false
    if (protocol === this.hopProtocol) return (slot.direction === 'inbound' || slot.direction === 'guest') && this.relayWindowsOpen()
    if (slot.direction === 'guest' || slot.direction === 'relay') return protocol === PING_PROTOCOL && this.pairingProtocols.has(PING_PROTOCOL)
    return this.pairingProtocols.has(protocol)
  }

  /**
   * Relay side: `inviter` (a member, over its own connection) opens a relay window `id` until
   * `until`, at most RELAY_WINDOW_MAX_MS from now and MAX_RELAY_WINDOWS_PER_MEMBER per member
   * (the oldest gives way). Returns when the window closes.
   */
  openRelayWindow (inviter: string, id: string, until: number, now = Date.now()): number {
    if (!this.isMember(inviter)) throw new PeerNotAllowedError(`${inviter} is not a member of this hive and may open no relay window`)
    const end = Math.min(until, now + RELAY_WINDOW_MAX_MS)
    let windows = this.relayWindows.get(inviter)
    if (windows == null) {
      windows = new Map()
      this.relayWindows.set(inviter, windows)
    }
    const known = windows.get(id)
    if (known != null) {
      clearTimeout(known.timer)
      windows.delete(id)
    }
    while (windows.size >= MAX_RELAY_WINDOWS_PER_MEMBER) {
      const oldest = windows.keys().next().value as string
      clearTimeout(windows.get(oldest)?.timer)
      windows.delete(oldest)
    }
    const timer = setTimeout(() => { this.closeRelayWindow(inviter, id) }, Math.max(0, end - now))
    timer.unref()
    windows.set(id, { until: end, timer })
    this.log?.debug(`relay window ${id} for ${inviter} open until ${new Date(end).toISOString()}`)
    return end
  }

  /** Relay side: closes a relay window; with none left, every guest's connection is closed. */
  closeRelayWindow (inviter: string, id?: string): void {
    const windows = this.relayWindows.get(inviter)
    if (windows == null) return
    for (const [key, window] of [...windows]) {
      if (id != null && key !== id) continue
      clearTimeout(window.timer)
      windows.delete(key)
    }
    if (windows.size === 0) this.relayWindows.delete(inviter)
    if (this.relayWindows.size > 0) return
    for (const slot of [...this.pairing.values()]) {
      if (slot.direction === 'guest') this.endPairing(slot.peer)
    }
  }

  /** Relay side: whether `inviter` has a relay window open here now. */
  relayWindowOpen (inviter: string, now = Date.now()): boolean {
    for (const window of this.relayWindows.get(inviter)?.values() ?? []) {
      if (window.until > now) return true
    }
    return false
  }

  private relayWindowsOpen (): boolean {
    return this.relayWindows.size > 0
  }

  /** Whether `peer` holds a pairing connection admitted by the gate. */
  isPairing (peer: PeerId | string): boolean {
    return this.pairing.has(peer.toString())
  }

  /**
   * Inviter side: while at least one window is open, non-members may connect to pair. Returns
   * the function that closes this window.
   */
  openPairingWindow (): () => void {
    this.openWindows++
    let closed = false
    return () => {
      if (closed) return
      closed = true
      this.openWindows--
      if (this.openWindows > 0) return
      // no invite left: no reason for any non-member to stay connected
      for (const slot of [...this.pairing.values()]) {
        if (slot.direction === 'inbound') this.endPairing(slot.peer)
      }
    }
  }

  /**
   * Joiner side: admit the connection to the inviter, or (`relay`) to the relay the invite leads
   * through. The connection to a relay is not marked limited, since the relay's hop protocol
   * must run on it and libp2p offers a dial no way to allow that; the stream checks still keep
   * it to ping, and this device speaks hop only as circuit relay's client. Returns the function
   * that withdraws it.
   */
  expectPairing (peer: PeerId | string, options: { relay?: boolean } = {}): () => void {
    const id = peer.toString()
    const expected = options.relay === true ? this.expectedRelays : this.expected
    expected.set(id, (expected.get(id) ?? 0) + 1)
    let done = false
    return () => {
      if (done) return
      done = true
      const left = (expected.get(id) ?? 1) - 1
      if (left <= 0) expected.delete(id)
      else expected.set(id, left)
    }
  }

  /** A pairing exchange is over: its connection has no more business here. */
  endPairing (peer: PeerId | string): void {
    const id = peer.toString()
    const slot = this.pairing.get(id)
    if (slot == null) return
    clearTimeout(slot.timer)
    this.pairing.delete(id)
    for (const connection of this.host?.getConnections() ?? []) {
      if (connection.remotePeer.toString() === id && (connection.limits != null || slot.direction === 'relay')) {
        connection.close().catch(() => { connection.abort(new Error('pairing connection closed')) })
      }
    }
  }

  /** The ConnectionGater to hand libp2p at construction. */
  readonly connectionGater: ConnectionGater = {
    denyDialPeer: (peer) => this.denyOutbound(peer, 'dial'),
    denyOutboundConnection: (peer) => this.denyOutbound(peer, 'dial'),
    denyInboundEncryptedConnection: (peer, maConn) => this.denyInbound(peer, maConn),
    denyOutboundEncryptedConnection: (peer) => this.denyOutbound(peer, 'connect', true),
    denyInboundUpgradedConnection: (peer) => !this.isMember(peer) && !this.pairing.has(peer.toString()),
    denyOutboundUpgradedConnection: (peer) => !this.isMember(peer) && !this.pairing.has(peer.toString()),
    denyInboundRelayReservation: (source) => this.denyRelay(source, undefined, 'a reservation for a non-member'),
    denyOutboundRelayedConnection: (source, destination) => this.denyRelay(source, destination, 'a relayed connection'),
    denyInboundRelayedConnection: (relay, remote) => this.denyRelayed(relay, remote)
  }

  /** Relay side: reservations and relayed connections are for members, between members. */
  private denyRelay (source: PeerId, destination: PeerId | undefined, what: string): boolean {
    const from = source.toString()
    const to = destination?.toString()
    if (this.isMember(from) && (to == null || this.isMember(to))) return false
    // a guest, to a member whose relay window is open: the one relayed connection a stranger gets
    if (to != null && this.isMember(to) && this.pairing.get(from)?.direction !== 'outbound' && this.pairing.has(from) && this.relayWindowOpen(to)) return false
    const who = !this.isMember(from) ? `${from} is not a member` : `${to ?? ''} is not a member`
    this.refuse({ peer: from, layer: 'relay', reason: `${what} refused: ${who}` })
    return true
  }

  /** Destination side: a relayed connection only through a member relay, from a member. */
  private denyRelayed (relay: PeerId, remote: PeerId): boolean {
    const through = relay.toString()
    if (!this.isMember(through)) {
      this.refuse({ peer: remote.toString(), layer: 'relay', reason: `relayed through ${through}, not a member` })
      return true
    }
    if (this.isMember(remote)) return false
    // a joiner reaching this inviter through a member relay: admitted as on a LAN, while an invite is open
    const id = remote.toString()
    if (this.openWindows > 0 && (this.pairing.has(id) || this.pairing.size < this.maxPairing)) {
      this.admitPairing(id, 'inbound')
      return false
    }
    this.refuse({ peer: id, layer: 'relay', reason: 'relayed connection from a non-member' })
    return true
  }

  /** Stream middleware refusing non-members; libp2p runs it on inbound and outbound streams. */
  middleware (protocol: string): StreamMiddleware {
    return (stream: Stream, connection: Connection, next) => {
      const peer = connection.remotePeer
      if (!this.allows(peer, protocol) || (connection.limits != null && !this.pairingProtocols.has(protocol) && !(protocol === this.hopProtocol && !this.isMember(peer)))) {
        this.refuse({ peer: peer.toString(), layer: 'stream', protocol, reason: 'not a member' })
        throw new PeerNotAllowedError(`${peer.toString()} is not a member of this hive and may not use ${protocol}`)
      }
      next(stream, connection)
    }
  }

  /**
   * Hooks into a started libp2p: marks pairing connections limited as they open (and aborts a
   * non-member connection that got past the gater, unless `enforceConnections` is false),
   * guards every protocol registered so far (except pairing, which checks itself) with the
   * middleware, and closes connections of peers that stop being members.
   */
  install (host: GateHost, options: { protocols?: string[], enforceConnections?: boolean } = {}): void {
    this.host = host
    this.enforceConnections = options.enforceConnections ?? true
    host.addEventListener('connection:open', this.onConnectionOpen)
    const protocols = options.protocols ?? host.getProtocols().filter(p => p !== this.pairingProtocol)
    for (const protocol of protocols) host.use(protocol, guardChain(this.middleware(protocol)))
    this.guarded = protocols
  }

  uninstall (): void {
    const host = this.host
    if (host == null) return
    host.removeEventListener('connection:open', this.onConnectionOpen)
    for (const protocol of this.guarded) host.unuse(protocol)
    for (const slot of this.pairing.values()) clearTimeout(slot.timer)
    this.pairing.clear()
    for (const windows of this.relayWindows.values()) {
      for (const window of windows.values()) clearTimeout(window.timer)
    }
    this.relayWindows.clear()
    this.guarded = []
    this.host = undefined
  }

  stop (): void {
    this.uninstall()
    this.membership.removeEventListener('change', this.onMembershipChange)
  }

  /**
   * gossipsub `scoreParams` entries: non-members are graylisted, so their RPCs go unread.
   * gossipsub's own penalty for many peers behind one IP address is off: it stands against
   * Sybil peers, which the member list already keeps out, and it graylisted every member of a
   * hive with more than 11 devices behind one address (all of them on a host running a
   * simulated hive, or behind one NAT), whose reports and tasks then went unheard.
   */
  gossipScoreParams (): { appSpecificScore: (peer: string) => number, appSpecificWeight: number, IPColocationFactorWeight: number } {
    return {
      appSpecificScore: (peer) => this.isMember(peer) ? 0 : NON_MEMBER_GOSSIP_SCORE,
      appSpecificWeight: 1,
      IPColocationFactorWeight: 0
    }
  }

  /** A gossipsub topic validator: only members may relay, and only members' messages count. */
  readonly gossipValidator = (peer: PeerId, message: Message): TopicValidatorResult => {
    if (!this.isMember(peer)) {
      this.refuse({ peer: peer.toString(), layer: 'gossip', reason: 'relayed by a non-member' })
      return TopicValidatorResult.Reject
    }
    if (message.type !== 'signed' || !this.isMember(message.from)) {
      const author = message.type === 'signed' ? message.from.toString() : 'unsigned'
      this.refuse({ peer: peer.toString(), layer: 'gossip', reason: `message authored by ${author}, not a member` })
      return TopicValidatorResult.Reject
    }
    return TopicValidatorResult.Accept
  }

  /** Puts the gossip validator in front of a topic, keeping any validator already there. */
  guardTopic (pubsub: GossipHost, topic: string): void {
    const inner = pubsub.topicValidators.get(topic)
    pubsub.topicValidators.set(topic, async (peer, message) => {
      const verdict = this.gossipValidator(peer, message)
      if (verdict !== TopicValidatorResult.Accept || inner == null) return verdict
      return inner(peer, message)
    })
  }

  /** A DHT validator's check as a predicate (for HiveRecords' `isMember`); a refusal is reported. */
  admitsPublisher (publisher: string): boolean {
    if (this.isMember(publisher)) return true
    this.refuse({ peer: publisher, layer: 'record', reason: 'publisher is not a member' })
    return false
  }

  /** A DHT validator's check: throws unless the record's publisher is a member. */
  checkPublisher (publisher: string): void {
    if (!this.isMember(publisher)) {
      this.refuse({ peer: publisher, layer: 'record', reason: 'publisher is not a member' })
      throw new PeerNotAllowedError(`record publisher ${publisher} is not a member of this hive`)
    }
  }

  private denyOutbound (peer: PeerId, stage: 'dial' | 'connect', admit = false): boolean {
    const id = peer.toString()
    if (this.isMember(id)) return false
    if (this.expected.has(id)) {
      if (admit) this.admitPairing(id, 'outbound')
      return false
    }
    if (this.expectedRelays.has(id)) {
      if (admit) this.admitPairing(id, 'relay')
      return false
    }
    this.refuse({ peer: id, layer: 'connection', reason: `${stage} to a non-member` })
    return true
  }

  private denyInbound (peer: PeerId, _maConn: MultiaddrConnection): boolean {
    const id = peer.toString()
    if (this.isMember(id)) return false
    if (this.openWindows > 0 && (this.pairing.has(id) || this.pairing.size < this.maxPairing)) {
      this.admitPairing(id, 'inbound')
      return false
    }
    if (this.relayWindowsOpen() && (this.pairing.has(id) || this.pairing.size < this.maxPairing)) {
      this.admitPairing(id, 'guest')
      return false
    }
    const reason = this.openWindows > 0 || this.relayWindowsOpen() ? 'too many pairing connections' : 'not a member'
    this.refuse({ peer: id, layer: 'connection', reason })
    return true
  }

  private admitPairing (peer: string, direction: PairingSlot['direction']): void {
    if (this.pairing.has(peer)) return
    const slot: PairingSlot = { peer, direction }
    this.pairing.set(peer, slot)
    slot.timer = setTimeout(() => {
      this.log?.debug(`pairing connection with ${peer} timed out`)
      this.endPairing(peer)
    }, this.ttlMs)
    slot.timer.unref()
  }

  private onConnectionOpen (event: CustomEvent<Connection>): void {
    const connection = event.detail
    const peer = connection.remotePeer.toString()
    if (this.isMember(peer)) return
    const slot = this.pairing.get(peer)
    if (slot?.direction === 'relay') return
    if (slot != null) {
      // Limited: libp2p refuses every protocol that did not opt in, and tells no service
      // about this peer. Set here, synchronously, before identify completes.
      ;(connection as { limits?: Connection['limits'] }).limits = { seconds: Math.ceil(this.ttlMs / 1000) }
      connection.addEventListener('close', () => {
        if (this.host?.getConnections().some(c => c.remotePeer.toString() === peer && c.limits != null) !== true) {
          const slot = this.pairing.get(peer)
          if (slot != null) {
            clearTimeout(slot.timer)
            this.pairing.delete(peer)
          }
        }
      })
      return
    }
    if (!this.enforceConnections) return
    // the gater should have stopped it; this catches a connection that got past it anyway
    this.refuse({ peer, layer: 'connection', reason: 'not a member' })
    connection.abort(new PeerNotAllowedError(`${peer} is not a member of this hive`))
  }

  private onMembershipChange (event: Event): void {
    const change = (event as CustomEvent<MembershipChange>).detail
    const host = this.host
    if (host == null) return
    const gone = new Set(change.left)
    if (change.hiveChanged) {
      for (const connection of host.getConnections()) {
        const id = connection.remotePeer.toString()
        if (!this.isMember(id) && !this.pairing.has(id)) gone.add(id)
      }
    }
    for (const peer of gone) {
      if (peer === this.membership.peerId) continue
      this.closeRelayWindow(peer)
      // a device removed unawares hears of it while it dials the inviter to pair again: that
      // connection stays; as for any non-member, the stream checks keep it to pairing
      if (this.expected.has(peer) || this.pairing.has(peer)) continue
      const connections = host.getConnections().filter(c => c.remotePeer.toString() === peer)
      if (connections.length === 0) continue
      this.log?.debug(`closing connections of ${peer}: no longer a member`)
      for (const connection of connections) connection.abort(new PeerNotAllowedError(`${peer} is no longer a member of this hive`))
    }
  }

  private refuse (refusal: Refusal): void {
    this.log?.debug(`refused ${refusal.layer}${refusal.protocol != null ? ` ${refusal.protocol}` : ''} from ${refusal.peer}: ${refusal.reason}`)
    this.dispatchEvent(new CustomEvent<Refusal>('refused', { detail: refusal }))
  }
}

/**
 * The middleware list handed to libp2p for one protocol. libp2p 3.3 appends the protocol's
 * handler to the very list it stores (Connection.onIncomingStream pushes onto what
 * Registrar.getMiddleware returns), so with a plain array every inbound stream adds another
 * handler, and later streams, outbound ones included, run the handlers of earlier ones. This
 * list keeps only the guard: the handler pushed for an inbound stream is held aside and run by
 * the guard itself, which libp2p calls synchronously right after the push.
 */
function guardChain (guard: StreamMiddleware): StreamMiddleware[] {
  let pending: StreamMiddleware | undefined
  const chain: StreamMiddleware[] = [(stream, connection, next) => {
    const handler = stream.direction === 'inbound' ? pending : undefined
    pending = undefined
    let passed = false
    const result = guard(stream, connection, () => { passed = true })
    if (result instanceof Promise) throw new Error('the gate\'s stream guard is synchronous')
    if (!passed) return
    if (handler != null) return handler(stream, connection, next)
    next(stream, connection)
  }]
  chain.push = (...items: StreamMiddleware[]): number => {
    pending = items.at(-1)
    return chain.length
  }
  return chain
}

export function createGate (init: GateInit, components: GateComponents): MembershipGate {
  return new MembershipGate(init, components)
}
