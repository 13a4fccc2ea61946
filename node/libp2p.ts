// Builds the node's libp2p instance: TCP, noise, yamux, identify, ping, kad-dht in LAN server
// mode under the hive's own protocol id, gossipsub and mDNS; beyond one LAN, the circuit relay
// v2 transport (a reservation on a member that relays), a relay server on a device started with
// `--relay`, DCUtR and AutoNAT. Kept apart from HiveNode so the transport choices read in one
// place. Every protocol here is behind the membership gate (its gater and stream middleware).

import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { autoNAT } from '@libp2p/autonat'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { dcutr } from '@libp2p/dcutr'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, removePublicAddressesMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { createLibp2p } from 'libp2p'
import { guardedYamux } from './muxer.ts'
import { noiseCrypto } from './noise-crypto.ts'
import { DHT_PROTOCOL, HIVE_PROTOCOL_PREFIX } from '../protocol/index.ts'
import { batchedTcp } from './tcp-batching.ts'
import { cachedEd25519Keys } from './ed25519-keys.ts'
import { lengthPrefixWithoutThrow } from './length-prefix.ts'
import { halfWindowUpdates } from './yamux-window.ts'
import type { HiveRecords } from '../protocol/index.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { ConnectionGater, Ed25519PrivateKey, Libp2p, Metrics, PeerDiscovery } from '@libp2p/interface'

export interface HiveServices extends Record<string, unknown> {
  identify: Identify
  ping: Ping
  dht: KadDHT
  pubsub: GossipSub
}

export type HiveLibp2p = Libp2p<HiveServices>

export interface Libp2pInit {
  privateKey: Ed25519PrivateKey
  listen: string[]
  records: HiveRecords
  mdns: boolean
  /** 'lan' keeps private addresses only (a home LAN); 'loopback' keeps everything (tests). */
  addressScope: 'lan' | 'loopback'
  /** New inbound connections per second accepted from one host. */
  inboundConnectionThreshold: number
  connectionGater?: ConnectionGater
  /** gossipsub score hooks (membership graylists non-members). */
  gossipScoreParams?: { appSpecificScore: (peer: string) => number, appSpecificWeight: number, IPColocationFactorWeight: number }
  version: string
  /** Where libp2p's own metrics go (the node's registry). */
  metrics?: (components: any) => Metrics
  /** Relay for members (circuit relay v2 server, within RELAY_LIMITS). */
  relay?: boolean
  /** Limits other than RELAY_LIMITS (tests). */
  relayLimits?: Partial<RelayLimits>
  /** The connection monitor's least ping timeout (ms); libp2p's default when omitted. */
  pingTimeoutMs?: number
}

/**
 * What a relay gives its hive. Reservations and relayed connections go to members only (the
 * gate's gater decides); within that, these bound what a relay spends. Relayed connections
 * carry no per-connection time or data limit: libp2p refuses every protocol that has not opted
 * in on a limited connection, so a limit would stop the hive's own protocols, and the traffic
 * is the hive's own. The number of them is bounded instead.
 */
export const RELAY_LIMITS = {
  /** Reservations held at once (members relayed for). */
  maxReservations: 32,
  /** A reservation lapses after this unless renewed (the client renews it before). */
  reservationTtlMs: 60 * 60_000,
  /** Hop requests (reserve or connect) under way at once. */
  maxInboundHopStreams: 32,
  /** Relayed connections being opened to reserved members at once. */
  maxOutboundStopStreams: 64,
  /** A hop exchange must finish within this. */
  hopTimeoutMs: 30_000
} as const

export type RelayLimits = { [K in keyof typeof RELAY_LIMITS]: number }

/** Author and sequence number of a signed gossip message; a hash of the data otherwise. */
export function gossipFastMsgId (msg: { from?: Uint8Array, seqno?: Uint8Array, data?: Uint8Array }): string {
  if (msg.from != null && msg.seqno != null) return `${Buffer.from(msg.from).toString('base64')}/${Buffer.from(msg.seqno).toString('base64')}`
  return createHash('sha256').update(msg.data ?? new Uint8Array()).digest('base64')
}

/**
 * gossipsub's mesh degree and IDONTWANT threshold, for a hive of the user's own devices.
 *
 * A publisher sends its message to every connected member (flood publish); each receiver then
 * forwards it to its mesh peers. With gossipsub's default degree of 6 a message crossed the wire
 * about 16 times for 4 deliveries in a hive of five, each copy encrypted, written, read and
 * decoded. The members are not peers to outvote, so the hive keeps half the degree: in an
 * all-to-all hive everyone still hears the publisher itself, and in a bounded mesh (8
 * neighbours) 3 mesh peers each keep the mesh connected, with gossip (IHAVE) to the others
 * repairing a lost copy at the next heartbeat.
 *
 * IDONTWANT tells mesh peers not to forward a message this node already has. gossipsub sends it
 * for every message of 512 bytes or more; the hive's messages (capability reports, task
 * announcements, ledger heads) are a few KiB at most, and a notice costs each peer about what
 * the duplicate it spares would: in a virtual hive of 24 devices sending them took a third of
 * the time spent validating received messages. Only a message of 16 KiB or more is worth one.
 */
export const GOSSIP_OPTIONS = { D: 3, Dlo: 2, Dhi: 5, Dout: 1, Dscore: 2, idontwantMinDataSize: 16 * 1024 } as const

/** mDNS service tag: distinct from IPFS's so hive nodes only announce to each other. */
export const MDNS_SERVICE_TAG = 'hive-node.local'

export async function buildLibp2p (init: Libp2pInit): Promise<HiveLibp2p> {
  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (init.mdns) {
    // loaded only when used: a node started with --no-mdns does not carry it
    const { mdns } = await import('@libp2p/mdns')
    peerDiscovery.push(mdns({ serviceTag: MDNS_SERVICE_TAG, interval: 5_000 }))
  }

  const limits: RelayLimits = { ...RELAY_LIMITS, ...init.relayLimits }
  halfWindowUpdates()
  // gossipsub, noise and identify verify Ed25519 signatures under a key object made once per key
  cachedEd25519Keys()
  // noise takes its frames out of a read without throwing at the end of each (node/length-prefix.ts)
  lengthPrefixWithoutThrow()
  return createLibp2p<HiveServices>({
    privateKey: init.privateKey,
    start: false,
    nodeInfo: { name: 'hive-node', version: init.version },
    addresses: { listen: init.listen },
    // TCP's writes leave once per tick per connection, not once per frame (node/tcp-batching.ts)
    transports: [batchedTcp(), circuitRelayTransport({ reservationCompletionTimeout: 10_000 })],
    // noise's default ciphers, with a session's key made a key object once (node/noise-crypto.ts)
    connectionEncrypters: [noise({ crypto: noiseCrypto })],
    // yamux, guarded: a frame written after its connection started closing must not end the process
    streamMuxers: [guardedYamux()],
    peerDiscovery,
    ...(init.metrics != null ? { metrics: init.metrics } : {}),
    connectionGater: init.connectionGater ?? {},
    connectionManager: {
      inboundConnectionThreshold: init.inboundConnectionThreshold
    },
    // libp2p's default (an adaptive timeout from 5 s up) unless the node asks for more: it
    // aborts a connection whose ping is late, and under load late is not dead
    ...(init.pingTimeoutMs != null ? { connectionMonitor: { pingTimeout: { minTimeout: init.pingTimeoutMs, maxTimeout: Math.max(init.pingTimeoutMs, 60_000) } } } : {}),
    services: {
      identify: identify(),
      // libp2p's connection monitor pings every connection and aborts it when a ping fails; with
      // the default of one ping stream each way, a late ping still open when the next starts
      // fails the next, and a busy device would lose every connection (and every stream on it).
      ping: ping({ maxOutboundStreams: 4, maxInboundStreams: 4 }),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: false,
        peerInfoMapper: init.addressScope === 'loopback' ? passthroughMapper : removePublicAddressesMapper,
        validators: init.records.validators(),
        selectors: init.records.selectors()
      }),
      // a connection through a relay is upgraded to a direct one where the peer has a public
      // address (AutoNAT learns whether this device has one); hive-node's own upgrader covers
      // the private addresses of a home network (node/reach.ts)
      autoNAT: autoNAT({ protocolPrefix: HIVE_PROTOCOL_PREFIX.slice(1) }),
      dcutr: dcutr(),
      ...(init.relay === true
        ? {
            relay: circuitRelayServer({
              hopTimeout: limits.hopTimeoutMs,
              maxInboundHopStreams: limits.maxInboundHopStreams,
              maxOutboundStopStreams: limits.maxOutboundStopStreams,
              reservations: {
                maxReservations: limits.maxReservations,
                reservationTtl: limits.reservationTtlMs,
                applyDefaultLimit: false
              }
            })
          }
        : {}),
      pubsub: gossipsub({
        ...GOSSIP_OPTIONS,
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        // without it every copy of a message (one per mesh peer) is signature-checked before
        // being found a duplicate; only messages that passed validation are remembered here
        fastMsgIdFn: gossipFastMsgId,
        ...(init.gossipScoreParams != null ? { scoreParams: init.gossipScoreParams } : {})
      })
    }
  })
}

/**
 * Starts listening on more addresses once libp2p runs: a `/p2p-circuit` address through a
 * member relay makes a reservation there. libp2p keeps its transport manager on the instance's
 * components; fail loudly should a version ever move it.
 */
export function runtimeListener (libp2p: HiveLibp2p): (addrs: Multiaddr[]) => Promise<void> {
  const manager = (libp2p as unknown as { components?: { transportManager?: { listen?: (addrs: Multiaddr[]) => Promise<void> } } }).components?.transportManager
  if (typeof manager?.listen !== 'function') throw new Error('this libp2p build does not expose its transport manager: relay reservations cannot be made')
  return async (addrs) => { await manager.listen!(addrs) }
}
