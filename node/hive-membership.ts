// Wires the hive's membership into the node: the member list on its sublevel, the gate libp2p
// is built with (connection gater, gossip score), and, once libp2p runs, the gate's stream
// checks, replication of the list, and pairing. HiveNode owns one of these.

import { CONTEXT_PROTOCOL, DHT_PROTOCOL, PAIRING_PROTOCOL, createGate, createMeshKeeper, createMembership, createMembershipSync, createPairing, gossipTopic } from '../protocol/index.ts'
import type { Logger } from './logger.ts'
import type { GossipHost, MeshKeeper, MeshKeeperInit, Membership, MembershipDb, MembershipGate, MembershipSigner, MembershipRefusal, MembershipSync, Pairing } from '../protocol/index.ts'
import type { Libp2p } from '@libp2p/interface'

export interface HiveMembershipInit {
  name: string
  log: Logger
}

export interface HiveMembershipComponents {
  db: MembershipDb
  signer: MembershipSigner
}

/** A stranger counts as nearby this long after the gate last refused it. */
export const STRANGER_WINDOW_MS = 10 * 60_000
/** At most this many strangers are remembered (the oldest is forgotten first). */
const MAX_STRANGERS = 256

export class HiveMembership {
  readonly membership: Membership
  readonly gate: MembershipGate
  private readonly name: string
  private readonly log: Logger
  private syncPart?: MembershipSync
  private pairingPart?: Pairing
  private pubsub?: GossipHost
  private meshPart?: MeshKeeper
  private readonly guarded = new Set<string>()
  /** Non-members whose connections the gate refused, with when it last did. */
  private readonly strangers = new Map<string, number>()
  private readonly onRefused = (event: Event): void => {
    const refusal = (event as CustomEvent<MembershipRefusal>).detail
    if (refusal.layer === 'connection') this.noteStranger(refusal.peer)
  }

  private constructor (init: HiveMembershipInit, membership: Membership, gate: MembershipGate) {
    this.name = init.name
    this.log = init.log
    this.membership = membership
    this.gate = gate
    this.gate.addEventListener('refused', this.onRefused)
  }

  /**
   * A device this node met (mDNS, a bootstrap address) that is not in the hive. The first time,
   * say so and what to do, once; later sightings only refresh the time.
   */
  private noteStranger (peer: string): void {
    if (!this.strangers.has(peer)) {
      this.log.info(`a device nearby (…${peer.slice(-8)}) is not in this hive: pair it with "hive-node pair" on a device of the hive, then "hive-node join" on it`)
      if (this.strangers.size >= MAX_STRANGERS) {
        const oldest = this.strangers.keys().next().value
        if (oldest !== undefined) this.strangers.delete(oldest)
      }
    }
    this.strangers.delete(peer)
    this.strangers.set(peer, Date.now())
  }

  /** How many devices that are not members this node met in the last ten minutes. */
  strangersNearby (now = Date.now()): number {
    let n = 0
    for (const [peer, at] of this.strangers) {
      if (now - at <= STRANGER_WINDOW_MS && !this.membership.isMember(peer)) n++
    }
    return n
  }

  /** Loads (or founds) this device's hive; needed before libp2p is built, for its gater. */
  static async open (init: HiveMembershipInit, components: HiveMembershipComponents): Promise<HiveMembership> {
    const membership = createMembership({ name: init.name, log: init.log.child('membership') }, components)
    await membership.start()
    const gate = createGate({ pairingProtocol: PAIRING_PROTOCOL, log: init.log.child('gate') }, { membership })
    return new HiveMembership(init, membership, gate)
  }

  get pairing (): Pairing {
    if (this.pairingPart == null) throw new Error('pairing is not started')
    return this.pairingPart
  }

  get sync (): MembershipSync {
    if (this.syncPart == null) throw new Error('membership sync is not started')
    return this.syncPart
  }

  /** For HiveRecords: only members may publish; refusals are reported by the gate. */
  readonly isRecordPublisher = (peer: string): boolean => this.gate.admitsPublisher(peer)

  /**
   * After libp2p has started: guard its protocols, replicate the list, serve pairing, and keep
   * the connections to members bounded to this device's neighbours (`mesh`: idle time, and
   * what to keep whatever the neighbours are).
   */
  async start (libp2p: Libp2p & { services: { pubsub: GossipHost } }, options: { selfAddresses?: () => string[], relay?: boolean, redialIntervalMs?: number, mesh?: Pick<MeshKeeperInit, 'idleMs' | 'sweepMs' | 'keep'> } = {}): Promise<void> {
    this.pubsub = libp2p.services.pubsub
    this.gate.install(libp2p)
    this.syncPart = createMembershipSync({
      log: this.log.child('members'),
      ...(options.selfAddresses != null ? { selfAddresses: options.selfAddresses } : {}),
      ...(options.redialIntervalMs != null ? { redialIntervalMs: options.redialIntervalMs } : {})
    }, { membership: this.membership, gate: this.gate, network: libp2p })
    this.pairingPart = createPairing({ name: this.name, log: this.log.child('pairing'), relay: options.relay ?? false }, { membership: this.membership, gate: this.gate, network: libp2p })
    // the DHT's lookups, and the one context stream each link holds for as long as it is open
    this.meshPart = createMeshKeeper({ ...options.mesh, background: [DHT_PROTOCOL, CONTEXT_PROTOCOL], log: this.log.child('mesh') }, { membership: this.membership, network: libp2p })
    await this.syncPart.start()
    await this.pairingPart.start()
    this.meshPart.start()
  }

  get mesh (): MeshKeeper {
    if (this.meshPart == null) throw new Error('the mesh keeper is not started')
    return this.meshPart
  }

  /**
   * The gossip topic `name` of this device's hive, with the gate's validator in front of it
   * (only members relay, only members' messages count). Topics are per hive: after this
   * device joins another hive (a membership 'change' with `hiveChanged`), ask again.
   */
  topic (name: string): string {
    const topic = gossipTopic(this.membership.hiveId, name)
    if (this.pubsub == null) throw new Error('membership is not started')
    if (!this.guarded.has(topic)) {
      this.gate.guardTopic(this.pubsub, topic)
      this.guarded.add(topic)
    }
    return topic
  }

  async stop (): Promise<void> {
    this.meshPart?.stop()
    await this.pairingPart?.stop()
    await this.syncPart?.stop()
    this.gate.removeEventListener('refused', this.onRefused)
    this.gate.stop()
    await this.membership.stop()
  }
}
