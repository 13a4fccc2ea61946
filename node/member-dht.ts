// The DHT as placement puts records in it. Kademlia keeps a record on the k peers (k = 20)
// closest to its key, by the XOR of SHA-256 ids, and kad-dht's own put first walks the network
// to find them: a FIND_NODE to each peer it learns of, each answered from the peer store, before
// a PUT_VALUE to each. Every member holds the whole member list, and in a hive only members are
// peers of the DHT, so a device can name the closest peers to a key itself:
//   - in an all-to-all hive (at most ALL_TO_ALL_MAX members, every one connected to every
//     other, fewer than k) they are every member there is: a record goes straight to each member
//     connected now;
//   - beyond it they are the k members closest to the key, by the same distance kad-dht uses,
//     among the members heard from lately (an offline member is not dialled, and the walk of a
//     later `get` finds the live ones only): a record goes straight to those, dialled if this
//     device has no connection to them, as the walk would dial them.
// Either way it goes as Kademlia PUT_VALUE messages (protocol/wire/dht-put.ts), several records
// on one stream per peer, with no walk first; `get` (kad-dht's own walk) finds it on the same
// peers, and every member that stores it checks it. A device that knows no other member puts
// through kad-dht.

import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { KAD_K, putRecords } from '../protocol/index.ts'
import type { PlacementDht, ProtocolHost } from '../protocol/index.ts'
import type { KadDHT } from '@libp2p/kad-dht'
import type { AbortOptions, PeerId } from '@libp2p/interface'

export interface MemberDhtComponents {
  dht: Pick<KadDHT, 'put' | 'get'>
  host: Pick<ProtocolHost, 'dialProtocol'> & { getPeers: () => PeerId[] }
  isMember: (peer: string) => boolean
  /** The PeerIds of the other members that are live (heard from lately): the peers a record may go to. */
  others: () => string[]
  /** Whether every member is connected to every other (a hive of at most ALL_TO_ALL_MAX). */
  allToAll: () => boolean
  /** The hive's Kademlia protocol id. */
  protocol: string
  /** A record's largest size, for the answers read back. */
  maxRecordBytes: number
  /** Peers that hold each record: Kademlia's k unless a test says otherwise. */
  k?: number
}

const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest()

/** Kademlia ids of PeerIds (SHA-256 of the PeerId's multihash, as kad-dht computes them). */
const kadIds = new Map<string, Buffer>()
const MAX_KAD_IDS = 4096

function kadIdOf (peer: string): Buffer {
  let id = kadIds.get(peer)
  if (id == null) {
    id = sha256(peerIdFromString(peer).toMultihash().bytes)
    if (kadIds.size >= MAX_KAD_IDS) kadIds.delete(kadIds.keys().next().value as string)
    kadIds.set(peer, id)
  }
  return id
}

/** The `k` of `peers` closest to `key` by Kademlia's distance (XOR of SHA-256 ids), closest first. */
export function closestPeers (key: Uint8Array, peers: readonly string[], k: number): string[] {
  const target = sha256(key)
  const distance = (peer: string): Buffer => {
    const id = kadIdOf(peer)
    const out = Buffer.allocUnsafe(id.byteLength)
    for (let i = 0; i < id.byteLength; i++) out[i] = (id[i] as number) ^ (target[i] as number)
    return out
  }
  return peers.map(peer => ({ peer, d: distance(peer) }))
    .sort((a, b) => Buffer.compare(a.d, b.d))
    .slice(0, k)
    .map(e => e.peer)
}

export function memberDht (components: MemberDhtComponents): PlacementDht {
  const { dht, host, isMember } = components
  const k = components.k ?? KAD_K
  const putEach = async (records: Array<{ key: Uint8Array, value: Uint8Array }>, options: AbortOptions): Promise<void> => {
    for (const { key, value } of records) {
      for await (const _ of dht.put(key, value, options)) { /* drain */ }
    }
  }
  const putStraight = async (byPeer: Map<string, Array<{ key: Uint8Array, value: Uint8Array }>>, options: AbortOptions): Promise<void> => {
    await Promise.all([...byPeer].map(async ([peer, records]) => {
      await putRecords(host, peerIdFromString(peer), records, { protocol: components.protocol, maxMessageBytes: components.maxRecordBytes + 4096, signal: options.signal }).catch(() => 0)
    }))
  }
  return {
    put: (key, value, options) => dht.put(key, value, options),
    get: (key, options) => dht.get(key, options),
    async putMany (records, options = {}) {
      if (components.allToAll()) {
        const connected = host.getPeers().map(p => p.toString()).filter(isMember)
        if (connected.length === 0 || connected.length >= k) {
          await putEach(records, options)
          return
        }
        await putStraight(new Map(connected.map(peer => [peer, records])), options)
        return
      }
      const others = components.others()
      if (others.length === 0) {
        await putEach(records, options)
        return
      }
      const byPeer = new Map<string, Array<{ key: Uint8Array, value: Uint8Array }>>()
      for (const record of records) {
        for (const peer of closestPeers(record.key, others, k)) {
          const list = byPeer.get(peer)
          if (list == null) byPeer.set(peer, [record])
          else list.push(record)
        }
      }
      await putStraight(byPeer, options)
    }
  }
}
