// Builds the node's libp2p instance: TCP, noise, yamux, identify, ping, kad-dht in LAN server
// mode under the hive's own protocol id, gossipsub and mDNS. Kept apart from HiveNode so the
// transport choices read in one place.

import { createHash } from 'node:crypto'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, removePublicAddressesMapper } from '@libp2p/kad-dht'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { DHT_PROTOCOL } from '../protocol/index.ts'
import type { HiveRecords } from '../protocol/index.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
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
}

/** Author and sequence number of a signed gossip message; a hash of the data otherwise. */
export function gossipFastMsgId (msg: { from?: Uint8Array, seqno?: Uint8Array, data?: Uint8Array }): string {
  if (msg.from != null && msg.seqno != null) return `${Buffer.from(msg.from).toString('base64')}/${Buffer.from(msg.seqno).toString('base64')}`
  return createHash('sha256').update(msg.data ?? new Uint8Array()).digest('base64')
}

/** mDNS service tag: distinct from IPFS's so hive nodes only announce to each other. */
export const MDNS_SERVICE_TAG = 'hive-node.local'

export async function buildLibp2p (init: Libp2pInit): Promise<HiveLibp2p> {
  const peerDiscovery: Array<(components: any) => PeerDiscovery> = []
  if (init.mdns) {
    // loaded only when used: a node started with --no-mdns does not carry it
    const { mdns } = await import('@libp2p/mdns')
    peerDiscovery.push(mdns({ serviceTag: MDNS_SERVICE_TAG, interval: 5_000 }))
  }

  return createLibp2p<HiveServices>({
    privateKey: init.privateKey,
    start: false,
    nodeInfo: { name: 'hive-node', version: init.version },
    addresses: { listen: init.listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    peerDiscovery,
    ...(init.metrics != null ? { metrics: init.metrics } : {}),
    connectionGater: init.connectionGater ?? {},
    connectionManager: {
      inboundConnectionThreshold: init.inboundConnectionThreshold
    },
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
      pubsub: gossipsub({
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
