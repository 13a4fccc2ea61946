// The DHT as placement puts records in it. A hive has fewer members than Kademlia's k (20), so
// the k closest peers to any key are every member there is: a record goes straight to each
// member connected now (protocol/wire/dht-put.ts), several records on one stream per member,
// with no walk of the network first. A larger hive, or a device with no member connected, puts
// through kad-dht as before. Either way the record is where `get` looks, and is checked by
// every member that stores it.

import { KAD_K, putRecords } from '../protocol/index.ts'
import type { PlacementDht, ProtocolHost } from '../protocol/index.ts'
import type { KadDHT } from '@libp2p/kad-dht'
import type { AbortOptions, PeerId } from '@libp2p/interface'

export interface MemberDhtComponents {
  dht: Pick<KadDHT, 'put' | 'get'>
  host: Pick<ProtocolHost, 'dialProtocol'> & { getPeers: () => PeerId[] }
  isMember: (peer: string) => boolean
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
      if (members.length === 0 || members.length >= KAD_K) {
        await putEach(records, options)
        return
      }
      await Promise.all(members.map(async (peer) => {
        await putRecords(host, peer, records, { protocol: components.protocol, maxMessageBytes: components.maxRecordBytes + 4096, signal: options.signal }).catch(() => 0)
      }))
    }
  }
}
