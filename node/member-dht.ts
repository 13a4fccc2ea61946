// The DHT as placement puts records in it. In an all-to-all hive (at most ALL_TO_ALL_MAX
// members, every one connected to every other) the k closest peers (Kademlia's k is 20) to any
// key are every member there is: a record goes straight to each member connected now
// (protocol/wire/dht-put.ts), several records on one stream per member, with no walk of the
// network first. Beyond it a device is connected to its neighbours only, which are not the
// peers closest to a key, so it puts through kad-dht's own routing, as does a device with no
// member connected. Either way the record is where `get` looks, and is checked by every member
// that stores it.

import { KAD_K, putRecords } from '../protocol/index.ts'
import type { PlacementDht, ProtocolHost } from '../protocol/index.ts'
import type { KadDHT } from '@libp2p/kad-dht'
import type { AbortOptions, PeerId } from '@libp2p/interface'

export interface MemberDhtComponents {
  dht: Pick<KadDHT, 'put' | 'get'>
  host: Pick<ProtocolHost, 'dialProtocol'> & { getPeers: () => PeerId[] }
  isMember: (peer: string) => boolean
  /** Whether every member is connected to every other (a hive of at most ALL_TO_ALL_MAX). */
  allToAll: () => boolean
  /** The hive's Kademlia protocol id. */
  protocol: string
  /** A record's largest size, for the answers read back. */
  maxRecordBytes: number
}

export function memberDht (components: MemberDhtComponents): PlacementDht {
  const { dht, host, isMember } = components
  const putEach = async (records: Array<{ key: Uint8Array, value: Uint8Array }>, options: AbortOptions): Promise<void> => {
    for (const { key, value } of records) {
      for await (const _ of dht.put(key, value, options)) { /* drain */ }
    }
  }
  return {
    put: (key, value, options) => dht.put(key, value, options),
    get: (key, options) => dht.get(key, options),
    async putMany (records, options = {}) {
      const members = host.getPeers().filter(p => isMember(p.toString()))
      if (members.length === 0 || members.length >= KAD_K || !components.allToAll()) {
        await putEach(records, options)
        return
      }
      await Promise.all(members.map(async (peer) => {
        await putRecords(host, peer, records, { protocol: components.protocol, maxMessageBytes: components.maxRecordBytes + 4096, signal: options.signal }).catch(() => 0)
      }))
    }
  }
}
