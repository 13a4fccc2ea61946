// Reach: how this device stays joined to its hive beyond one LAN.
//
// - Relays. A member started with `--relay` serves circuit relay v2 to members only (the gate
//   decides, node/libp2p.ts states its limits). Every other device holds a reservation on up to
//   MAX_RELAYS such members while it has a direct connection to them, so that a member on
//   another network can reach it through them. A reservation is asked for here, not by libp2p's
//   relay discovery, which walks the DHT without end while it has fewer relays than it wants.
// - Addresses. What each device was seen at, and its addresses through relays, travel with the
//   member list (protocol/membership/sync.ts); a device that wakes up elsewhere dials them all.
//   Where members saw this device from outside (identify's observed address, with this device's
//   listen port) is offered as a candidate: behind a forwarded port it is an address that works.
// - Upgrades. A member reached only through a relay is dialled at its direct addresses every
//   UPGRADE_INTERVAL_MS; when that works (a forwarded port, a VPN, the same network after all)
//   the relayed connection is closed. So is any relayed connection to a member this device
//   also has a direct one to, whoever dialled that (the member's own upgrade, a redial by
//   libp2p or by membership): both sides may dial at once, and each then sees a direct link
//   next to the relayed one rather than a member reached only through a relay. libp2p's DCUtR
//   does the same for public addresses and punches holes where a NAT lets it.
// - Kinds. Each member's connection is `lan` (an address on one of this device's own networks),
//   `direct` (reached across networks) or `relayed` (through a member relay), for `peers`,
//   `status`, placement and `hive-node doctor`. Beyond a hive of 9 a device connects to its
//   neighbours only (protocol/membership/neighbours.ts): a member it has no connection to but
//   hears over gossip is `mesh`, reached through the others, and nothing is wrong with it.

import { networkInterfaces } from 'node:os'
import { RELAY_V2_HOP_CODEC } from '@libp2p/circuit-relay-v2'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import type { Logger } from './logger.ts'
import type { Membership, MembershipSync } from '../protocol/index.ts'
import type { Connection, IdentifyResult, Libp2p } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

/** How a member is connected to this device. */
export type LinkKind = 'lan' | 'direct' | 'relayed'

/** Reservations held at once (relays this device can be reached through). */
export const MAX_RELAYS = 2
/** How often members reached only through a relay are tried directly, and reservations checked. */
export const UPGRADE_INTERVAL_MS = 10_000
/**
 * A relayed connection this young is left open even beside a direct one, until a later tick:
 * whoever dialled it has it just now (libp2p fails a dial whose connection closes as it opens).
 */
const RELAYED_GRACE_MS = 1_000
/** A relay whose reservation failed is asked again after this. */
const RESERVE_RETRY_MS = 30_000
/** Outside addresses remembered as candidates (newest first). */
const MAX_CANDIDATES = 4

export interface Link {
  peerId: string
  via: LinkKind
  /** The relay's PeerId, for a relayed link. */
  relay?: string
}

export interface ReachInit {
  log: Logger
  /** This device relays for its members (started with --relay). */
  relay: boolean
  upgradeIntervalMs?: number
  /** False keeps relayed links as they are (tests of what a relay carries). Default true. */
  upgrade?: boolean
}

export interface ReachComponents {
  libp2p: Libp2p
  membership: Pick<Membership, 'isMember' | 'members' | 'addressesOf' | 'peerId'>
  sync: Pick<MembershipSync, 'addressesFor'>
  /** Called when a new outside address of this device is learnt (members are told). */
  onOutside?: () => void
  /** Whether a member this device has no connection to is heard through the mesh: not a neighbour, its reports fresh. */
  meshed?: (peer: string) => boolean
  /** Starts listening on a multiaddr at run time (a `/p2p-circuit` address makes a reservation). */
  listen: (addrs: Multiaddr[]) => Promise<void>
}

/** What `hive-node doctor` says about one member. */
export interface Diagnosis {
  peerId: string
  name?: string
  /** How it is connected; `mesh`: not connected, not a neighbour, heard through the others. */
  via?: LinkKind | 'mesh'
  relay?: string
  /** What is wrong, in a sentence; absent when nothing is. */
  problem?: string
  /** What to do about it. */
  advice?: string
  direct: string[]
  relayed: string[]
}

export interface ReachReport {
  /** This device relays for its members. */
  relay: boolean
  /** Relays (PeerIds) this device holds a reservation on. */
  reservedOn: string[]
  /** Members connected and able to relay for this device. */
  relays: string[]
  /** Addresses where members saw this device from outside (candidates). */
  outside: string[]
  members: Diagnosis[]
  /** What is wrong with this device's own reach, if anything, and what to do. */
  problem?: string
  advice?: string
}

function isCircuit (ma: Multiaddr): boolean {
  return ma.getComponents().some(c => c.name === 'p2p-circuit')
}

/** The relay a circuit address goes through (the PeerId before /p2p-circuit). */
export function relayOf (ma: Multiaddr): string | undefined {
  const parts = ma.getComponents()
  const at = parts.findIndex(c => c.name === 'p2p-circuit')
  if (at < 0) return undefined
  return parts.slice(0, at).findLast(c => c.name === 'p2p')?.value
}

/** How long the interfaces read are trusted: a bid asks how a member is reached, many a second. */
const NETWORKS_TTL_MS = 5_000
let networksRead: { at: number, networks: Array<[number, number]> } | undefined

/** IPv4 networks of this device's interfaces, as [address, mask] numbers (read at most every 5 s). */
function localNetworks (): Array<[number, number]> {
  const now = performance.now()
  if (networksRead == null || now - networksRead.at > NETWORKS_TTL_MS) networksRead = { at: now, networks: readNetworks() }
  return networksRead.networks
}

function readNetworks (): Array<[number, number]> {
  const out: Array<[number, number]> = []
  for (const list of Object.values(networkInterfaces())) {
    for (const iface of list ?? []) {
      if (iface.family !== 'IPv4') continue
      const addr = ipv4Number(iface.address)
      const mask = ipv4Number(iface.netmask)
      if (addr != null && mask != null) out.push([addr, mask])
    }
  }
  return out
}

function ipv4Number (text: string): number | undefined {
  const parts = text.split('.').map(Number)
  if (parts.length !== 4 || parts.some(p => !Number.isInteger(p) || p < 0 || p > 255)) return undefined
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0
}

function ipOf (ma: Multiaddr): string | undefined {
  return ma.getComponents().find(c => c.name === 'ip4' || c.name === 'ip6')?.value
}

/** The kind of one connection: through a relay, on one of this device's networks, or across. */
export function connectionKind (connection: Pick<Connection, 'remoteAddr'>, networks: Array<[number, number]> = localNetworks()): LinkKind {
  const addr = connection.remoteAddr
  if (isCircuit(addr)) return 'relayed'
  const ip = ipOf(addr)
  if (ip == null) return 'direct'
  if (ip === '::1' || ip.startsWith('127.')) return 'lan'
  const n = ipv4Number(ip)
  if (n == null) return 'direct'
  return networks.some(([a, m]) => ((a & m) >>> 0) === ((n & m) >>> 0)) ? 'lan' : 'direct'
}

const RANK: Record<LinkKind, number> = { lan: 0, direct: 1, relayed: 2 }

export class Reach {
  private readonly log: Logger
  private readonly libp2p: Libp2p
  private readonly membership: ReachComponents['membership']
  private readonly sync: ReachComponents['sync']
  private readonly listen: ReachComponents['listen']
  private readonly onOutside?: () => void
  private readonly meshed: (peer: string) => boolean
  readonly relay: boolean
  private readonly intervalMs: number
  private upgrades: boolean
  /** Relays a reservation was asked of, with when (to ask again after RESERVE_RETRY_MS). */
  private readonly asked = new Map<string, number>()
  private readonly upgrading = new Set<string>()
  /** When each relayed connection to a member opened (for RELAYED_GRACE_MS). */
  private readonly relayedSince = new WeakMap<Connection, number>()
  private readonly candidates: string[] = []
  private timer?: NodeJS.Timeout
  private started = false
  private readonly stopping = new AbortController()

  constructor (init: ReachInit, components: ReachComponents) {
    this.log = init.log
    this.relay = init.relay
    this.intervalMs = init.upgradeIntervalMs ?? UPGRADE_INTERVAL_MS
    this.upgrades = init.upgrade ?? true
    this.libp2p = components.libp2p
    this.membership = components.membership
    this.sync = components.sync
    this.listen = components.listen
    this.onOutside = components.onOutside
    this.meshed = components.meshed ?? (() => false)
    this.onIdentify = this.onIdentify.bind(this)
    this.onConnectionOpen = this.onConnectionOpen.bind(this)
  }

  start (): void {
    if (this.started) return
    this.started = true
    this.libp2p.addEventListener('peer:identify', this.onIdentify)
    this.libp2p.addEventListener('connection:open', this.onConnectionOpen)
    this.tick()
  }

  stop (): void {
    if (!this.started) return
    this.started = false
    clearTimeout(this.timer)
    this.stopping.abort(new Error('stopping'))
    this.libp2p.removeEventListener('peer:identify', this.onIdentify)
    this.libp2p.removeEventListener('connection:open', this.onConnectionOpen)
  }

  /** Turns upgrades of relayed links on or off (a bench measures a relayed link first, then upgrades it). */
  setUpgrades (on: boolean): void {
    this.upgrades = on
  }

  /** How each connected member is reached, by its best open connection. */
  links (): Link[] {
    return this.best()
  }

  /** Links by their best open connection, of every peer or of `only`. */
  private best (only?: string): Link[] {
    const networks = localNetworks()
    const best = new Map<string, Link>()
    for (const connection of this.libp2p.getConnections()) {
      if (connection.status !== 'open') continue
      const peer = connection.remotePeer.toString()
      if (only != null && peer !== only) continue
      const via = connectionKind(connection, networks)
      const link: Link = { peerId: peer, via, ...(via === 'relayed' ? { relay: relayOf(connection.remoteAddr) } : {}) }
      const known = best.get(peer)
      if (known == null || RANK[via] < RANK[known.via]) best.set(peer, link)
    }
    return [...best.values()]
  }

  link (peer: string): Link | undefined {
    return this.best(peer)[0]
  }

  /** Addresses where members saw this device from outside, with its listen port. */
  outsideAddresses (): string[] {
    return [...this.candidates]
  }

  /** Relays this device holds a reservation on (from its own circuit addresses). */
  reservedOn (): string[] {
    const out = new Set<string>()
    for (const ma of this.libp2p.getMultiaddrs()) {
      const relay = relayOf(ma)
      if (relay != null) out.add(relay)
    }
    return [...out]
  }

  /** Connected members that relay (their identify listed the hop protocol). */
  async relays (): Promise<string[]> {
    const out: string[] = []
    for (const peer of new Set(this.libp2p.getConnections().filter(c => !isCircuit(c.remoteAddr)).map(c => c.remotePeer.toString()))) {
      if (!this.membership.isMember(peer)) continue
      if (await this.speaksHop(peer)) out.push(peer)
    }
    return out
  }

  /** Why each member is or is not reached, and what to do; and this device's own reach. */
  async report (): Promise<ReachReport> {
    const links = new Map(this.links().map(l => [l.peerId, l]))
    const relays = await this.relays()
    const reservedOn = this.reservedOn()
    const members: Diagnosis[] = []
    for (const member of this.membership.members()) {
      if (member.self) continue
      const { direct, relayed } = await this.sync.addressesFor(member.peerId)
      const d: Diagnosis = {
        peerId: member.peerId,
        ...(member.name != null ? { name: member.name } : {}),
        direct: direct.map(a => a.toString()),
        relayed: relayed.map(a => a.toString())
      }
      const link = links.get(member.peerId)
      if (link != null) {
        d.via = link.via
        if (link.relay != null) d.relay = link.relay
        if (link.via === 'relayed') {
          d.problem = `reached only through the relay ${link.relay ?? ''}; its direct addresses (${d.direct.length}) do not answer from here`
          d.advice = 'it still works, more slowly for large agents and inputs; for a direct link put both devices on one network, or forward its port (4190/tcp by default) on its router'
        }
      } else if (this.meshed(member.peerId)) {
        // not a neighbour: reached through the members this device is connected to
        d.via = 'mesh'
      } else if (d.direct.length === 0 && d.relayed.length === 0) {
        d.problem = 'no address is known for it: it was never seen, and no member told of one'
        d.advice = 'start it on a network with a member (mDNS finds it), or give its address once with --bootstrap'
      } else if (d.relayed.length === 0) {
        d.problem = `none of its ${d.direct.length} known address${d.direct.length === 1 ? '' : 'es'} answers, and it holds no reservation on a relay`
        d.advice = relays.length === 0 && !this.relay
          ? 'the hive has no relay: start a member with an address the others can reach (a home server with a forwarded port, a VPS) with "hive-node start --relay"'
          : 'it may be off, asleep, or on a network whose NAT lets nothing in; once it reaches a relay of the hive it is reachable through it'
      } else {
        d.problem = `none of its known addresses answers, direct (${d.direct.length}) or through a relay (${d.relayed.length})`
        d.advice = relays.length === 0
          ? 'this device reaches no relay of the hive: check that the relay is running and that this network lets connections out to it'
          : 'it may be off or asleep, or its reservation lapsed; it is tried again every few seconds'
      }
      members.push(d)
    }
    const report: ReachReport = { relay: this.relay, reservedOn, relays, outside: this.outsideAddresses(), members }
    if (!this.relay && reservedOn.length === 0) {
      report.problem = relays.length === 0
        ? 'this device holds no reservation on a relay, and no member it is connected to relays: members on other networks cannot reach it'
        : 'this device holds no reservation on a relay yet: members on other networks cannot reach it until it does'
      report.advice = relays.length === 0
        ? 'start a member with an address every device can reach with "hive-node start --relay" (a home server with a forwarded port, a VPS you own)'
        : 'it is asked for every few seconds; if it stays so, see the relay\'s log'
    }
    return report
  }

  private async speaksHop (peer: string): Promise<boolean> {
    try {
      const record = await this.libp2p.peerStore.get(peerIdFromString(peer))
      return record.protocols.includes(RELAY_V2_HOP_CODEC)
    } catch {
      return false
    }
  }

  private onIdentify (event: CustomEvent<IdentifyResult>): void {
    const { peerId, protocols, connection, observedAddr } = event.detail
    const peer = peerId.toString()
    if (!this.membership.isMember(peer) || connection.limits != null) return
    if (observedAddr != null && !isCircuit(observedAddr) && !isCircuit(connection.remoteAddr)) this.noteObserved(observedAddr)
    if (protocols.includes(RELAY_V2_HOP_CODEC) && !isCircuit(connection.remoteAddr)) this.reserve(peer, connection)
  }

  private onConnectionOpen (event: CustomEvent<Connection>): void {
    const connection = event.detail
    const peer = connection.remotePeer.toString()
    if (!this.membership.isMember(peer)) return
    // a new relayed link: try the member directly at once rather than at the next tick; a new
    // direct link (whoever dialled it) ends the relayed ones it makes needless
    if (isCircuit(connection.remoteAddr)) {
      this.relayedSince.set(connection, Date.now())
      this.upgrade(peer)
    } else {
      this.dropRelayed(peer)
    }
  }

  /** Where a member saw this device: that IP with this device's listen port is a candidate. */
  private noteObserved (observed: Multiaddr): void {
    const ip = ipOf(observed)
    const port = this.listenPort()
    if (ip == null || port == null || ip.startsWith('127.') || ip === '::1') return
    if (localNetworks().some(([a]) => a === ipv4Number(ip))) return
    const family = ip.includes(':') ? 'ip6' : 'ip4'
    const candidate = `/${family}/${ip}/tcp/${port}`
    const at = this.candidates.indexOf(candidate)
    if (at === 0) return
    if (at > 0) this.candidates.splice(at, 1)
    this.candidates.unshift(candidate)
    this.candidates.length = Math.min(this.candidates.length, MAX_CANDIDATES)
    if (at < 0) this.onOutside?.()
  }

  private listenPort (): string | undefined {
    for (const ma of this.libp2p.getMultiaddrs()) {
      if (isCircuit(ma)) continue
      const port = ma.getComponents().find(c => c.name === 'tcp')?.value
      if (port != null) return port
    }
    return undefined
  }

  /** Asks a member relay for a reservation, through the direct connection to it. */
  private reserve (relay: string, connection: Connection): void {
    if (relay === this.membership.peerId) return
    const held = this.reservedOn()
    if (held.includes(relay) || held.length >= MAX_RELAYS) return
    const last = this.asked.get(relay)
    if (last != null && Date.now() - last < RESERVE_RETRY_MS) return
    this.asked.set(relay, Date.now())
    const base = multiaddr(connection.remoteAddr.getComponents().filter(c => c.name !== 'p2p'))
    const listenAddr = base.encapsulate(`/p2p/${relay}/p2p-circuit`)
    this.listen([listenAddr]).then(() => {
      this.log.info(`reachable through the relay ${relay}`)
    }, (err: Error) => {
      this.log.debug(`no reservation on the relay ${relay}: ${err.message}`)
    })
  }

  /** Tries a member reached only through a relay at its direct addresses; closes the relayed link on success. */
  private upgrade (peer: string): void {
    if (this.upgrading.has(peer) || !this.started || !this.upgrades) return
    const connections = this.libp2p.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open')
    if (!connections.some(c => isCircuit(c.remoteAddr))) return
    // already connected directly (the member dialled this device, or libp2p redialled it)
    if (this.dropRelayed(peer)) return
    this.upgrading.add(peer)
    void (async () => {
      try {
        const { direct } = await this.sync.addressesFor(peer)
        if (direct.length === 0) return
        const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(Math.max(5_000, this.intervalMs))])
        const opened = await this.libp2p.dial(direct, { signal, force: true })
        // a dial joins one already under way to the same member: that one may have gone
        // through the relay (the next tick tries again)
        if (isCircuit(opened.remoteAddr)) return
        this.log.info(`now connected directly to ${peer} at ${opened.remoteAddr.toString()}, no longer through a relay`)
        this.dropRelayed(peer)
      } catch (err) {
        this.log.debug(`${peer} is not reachable directly yet: ${(err as Error).message}`)
      } finally {
        this.upgrading.delete(peer)
      }
    })()
  }

  /**
   * Closes a member's relayed connections once it has a direct one, whichever side dialled it
   * and however (this device's upgrade, the member's, a redial by libp2p or by membership);
   * one opened less than RELAYED_GRACE_MS ago is left to a later tick. Returns whether there
   * is a direct connection.
   */
  private dropRelayed (peer: string): boolean {
    if (!this.started || !this.upgrades) return false
    const connections = this.libp2p.getConnections(peerIdFromString(peer)).filter(c => c.status === 'open')
    if (!connections.some(c => !isCircuit(c.remoteAddr) && c.limits == null)) return false
    const now = Date.now()
    for (const c of connections) {
      if (!isCircuit(c.remoteAddr) || now - (this.relayedSince.get(c) ?? 0) < RELAYED_GRACE_MS) continue
      this.log.debug(`closing the relayed connection to ${peer}: it is connected directly`)
      c.close().catch(() => { c.abort(new Error('upgraded to a direct connection')) })
    }
    return true
  }

  private tick (): void {
    if (!this.started) return
    const byPeer = new Map<string, Connection[]>()
    for (const c of this.libp2p.getConnections()) {
      const peer = c.remotePeer.toString()
      if (!this.membership.isMember(peer)) continue
      byPeer.set(peer, [...(byPeer.get(peer) ?? []), c])
    }
    for (const [peer, connections] of byPeer) {
      if (connections.some(c => isCircuit(c.remoteAddr))) this.upgrade(peer)
    }
    // a relay this device lost its reservation on (the relay restarted, the link dropped) is
    // asked again through a direct connection to it
    void this.relays().then((relays) => {
      for (const relay of relays) {
        const direct = this.libp2p.getConnections(peerIdFromString(relay)).find(c => !isCircuit(c.remoteAddr) && c.status === 'open')
        if (direct != null) this.reserve(relay, direct)
      }
    }).catch(() => {})
    this.timer = setTimeout(() => { this.tick() }, this.intervalMs)
    this.timer.unref()
  }
}

export function createReach (init: ReachInit, components: ReachComponents): Reach {
  return new Reach(init, components)
}
