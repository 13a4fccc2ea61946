// The mesh keeper: keeps this device's member connections to its neighbours (./neighbours.ts)
// beyond an all-to-all hive, by letting the others go.
//
// A connection to a member that is not a neighbour opens for a reason (a task's winner calling
// its submitter, a ledger fetch, a DHT lookup, a join through an inviter) and is closed once it
// has been idle for `idleMs`: no stream open on it but libp2p's own background ones (gossip,
// ping, identify, the DHT) and gossip's direct links at any sweep in that time. Never closed:
// - connections to neighbours, and every connection in a hive of at most ALL_TO_ALL_MAX;
// - limited connections (pairing), which the gate owns;
// - connections kept for another reason: a peer libp2p tags keep-alive for something other
//   than the DHT (a relay this device holds a reservation on), a peer holding a reservation on
//   this relay, and whatever the `keep` predicate says (node/: relays, relayed links).
//
// kad-dht tags the peers closest to this device keep-alive, and libp2p redials a keep-alive peer
// whenever it disconnects: in a hive of up to 20 that is every member, which would undo the
// bound. The keeper removes the DHT's keep-alive tag from members that are not neighbours, as
// soon as it is set, and before closing their connections. The DHT still reaches them: it dials
// for a query as it needs.

import { KEEP_ALIVE } from '@libp2p/interface'
import { isAllToAll, neighboursOf } from './neighbours.ts'
import { DIRECT_GOSSIP_PROTOCOL } from '../wire/ids.ts'
import type { Membership } from './membership.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { Connection, Libp2p, PeerId, PeerUpdate } from '@libp2p/interface'

/** A non-neighbour member's connection idle this long is closed. */
export const MESH_IDLE_MS = 60_000
/** How often connections are looked at. */
export const MESH_SWEEP_MS = 5_000
/** The tag kad-dht keeps its closest peers with. */
export const DHT_KEEP_ALIVE_TAG = `${KEEP_ALIVE}-kad-dht`
/** The tag circuit relay's server puts on a peer that holds a reservation on it. */
const RELAY_SOURCE_TAG = 'circuit-relay-source'

/** Protocols that run on every connection and say nothing about whether it is used. */
/** Gossip's direct links count as gossip: open while the twins go on them, and no use of the connection. */
const BACKGROUND_PREFIXES = ['/meshsub/', '/floodsub/', '/ipfs/ping/', '/ipfs/id/', DIRECT_GOSSIP_PROTOCOL]

export type MeshNetwork = Pick<Libp2p, 'getConnections' | 'peerStore' | 'addEventListener' | 'removeEventListener'>

export interface MeshKeeperInit {
  idleMs?: number
  sweepMs?: number
  /** More protocols that count as background (the hive's DHT protocol). */
  background?: string[]
  /** Connections to keep whatever else holds (relays, relayed links). */
  keep?: (peer: string, connection: Connection) => boolean
  log?: Pick<ProtocolLog, 'debug'>
}

export interface MeshKeeperComponents {
  membership: Pick<Membership, 'peerId' | 'members' | 'isMember'>
  network: MeshNetwork
}

export class MeshKeeper {
  private readonly idleMs: number
  private readonly sweepMs: number
  private readonly background: string[]
  private readonly keep: (peer: string, connection: Connection) => boolean
  private readonly log?: Pick<ProtocolLog, 'debug'>
  private readonly membership: MeshKeeperComponents['membership']
  private readonly network: MeshNetwork
  /** When each connection (by id) was last seen carrying a stream of its own. */
  private readonly busyAt = new Map<string, number>()
  private timer?: NodeJS.Timeout
  private started = false
  /** Connections this keeper closed, for metrics and tests. */
  closed = 0

  constructor (init: MeshKeeperInit, components: MeshKeeperComponents) {
    this.idleMs = init.idleMs ?? MESH_IDLE_MS
    this.sweepMs = init.sweepMs ?? Math.min(MESH_SWEEP_MS, Math.max(250, Math.floor(this.idleMs / 4)))
    this.background = [...BACKGROUND_PREFIXES, ...(init.background ?? [])]
    this.keep = init.keep ?? (() => false)
    this.log = init.log
    this.membership = components.membership
    this.network = components.network
  }

  start (): void {
    if (this.started) return
    this.started = true
    this.network.addEventListener('peer:update', this.onPeerUpdate)
    this.schedule()
  }

  stop (): void {
    if (!this.started) return
    this.started = false
    clearTimeout(this.timer)
    this.network.removeEventListener('peer:update', this.onPeerUpdate)
    this.busyAt.clear()
  }

  /** The members this device keeps connections to; undefined when it keeps them all. */
  private neighbours (): Set<string> | undefined {
    const members = this.membership.members().map(m => m.peerId)
    if (isAllToAll(members.length)) return undefined
    return neighboursOf(this.membership.peerId, members)
  }

  /** Whether `peer` is a member this device lets go of when idle. */
  private transient (peer: string, neighbours: Set<string> | undefined): boolean {
    return neighbours != null && this.membership.isMember(peer) && !neighbours.has(peer) && peer !== this.membership.peerId
  }

  private readonly onPeerUpdate = (event: CustomEvent<PeerUpdate>): void => {
    const { peer } = event.detail
    if (!peer.tags.has(DHT_KEEP_ALIVE_TAG)) return
    if (!this.transient(peer.id.toString(), this.neighbours())) return
    this.untag(peer.id)
  }

  private untag (peer: PeerId): void {
    this.network.peerStore.merge(peer, { tags: { [DHT_KEEP_ALIVE_TAG]: undefined } }).catch(() => {})
  }

  private schedule (): void {
    if (!this.started) return
    this.timer = setTimeout(() => {
      this.sweep().catch((err: Error) => { this.log?.debug(`mesh sweep failed: ${err.message}`) }).finally(() => { this.schedule() })
    }, this.sweepMs)
    this.timer.unref()
  }

  private isBackground (protocol: string | undefined): boolean {
    if (protocol == null || protocol === '') return true
    return this.background.some(p => protocol.startsWith(p))
  }

  /** One look at every connection: notes which are in use, closes idle ones to non-neighbours. */
  async sweep (now = Date.now()): Promise<number> {
    const neighbours = this.neighbours()
    const open = new Set<string>()
    let closed = 0
    for (const connection of this.network.getConnections()) {
      open.add(connection.id)
      if (connection.streams.some(s => !this.isBackground(s.protocol))) this.busyAt.set(connection.id, now)
      const peer = connection.remotePeer.toString()
      if (!this.transient(peer, neighbours) || connection.limits != null || connection.status !== 'open') continue
      const since = Math.max(connection.timeline.open, this.busyAt.get(connection.id) ?? 0)
      if (now - since < this.idleMs) continue
      if (this.keep(peer, connection) || await this.taggedToKeep(connection.remotePeer)) continue
      this.untag(connection.remotePeer)
      this.log?.debug(`closing the idle connection to ${peer}: not a neighbour`)
      closed++
      this.closed++
      connection.close().catch((err: Error) => { connection.abort(err) })
    }
    for (const id of this.busyAt.keys()) if (!open.has(id)) this.busyAt.delete(id)
    return closed
  }

  /** A keep-alive tag other than the DHT's, or a reservation held on this relay. */
  private async taggedToKeep (peer: PeerId): Promise<boolean> {
    try {
      const record = await this.network.peerStore.get(peer)
      for (const tag of record.tags.keys()) {
        if (tag === RELAY_SOURCE_TAG || (tag.startsWith(KEEP_ALIVE) && tag !== DHT_KEEP_ALIVE_TAG)) return true
      }
    } catch { /* a peer the store does not know has no tags */ }
    return false
  }
}

export function createMeshKeeper (init: MeshKeeperInit, components: MeshKeeperComponents): MeshKeeper {
  return new MeshKeeper(init, components)
}
