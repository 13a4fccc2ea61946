// The `peer` DHT record kind: what a device says about itself (name, version, addresses), under
// `/hive/peer/<its PeerId>`, published by that device only.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { decodeCbor, encodeMessage } from './codec.ts'
import { createRecord, hiveRecordKey } from './dht-records.ts'
import { InvalidRecordError } from './errors.ts'
import { DHT_NAMESPACE, RECORD_KINDS } from './ids.ts'
import type { HiveRecord, HiveRecords } from './dht-records.ts'
import type { Signer } from './signing.ts'

export const MAX_PEER_RECORD_ADDRESSES = 32

export const PeerRecordPayload = z.object({
  name: z.string().min(1).max(64),
  version: z.string().max(32),
  addresses: z.array(z.string().max(256)).max(MAX_PEER_RECORD_ADDRESSES)
})
export type PeerRecordFields = z.infer<typeof PeerRecordPayload>
export type PeerRecord = PeerRecordFields & { peerId: string, time: number }

/** The DHT operations the peer record needs; the node's `putRecord` validates before it stores. */
export interface PeerRecordDht {
  put: (key: Uint8Array, value: Uint8Array, options: { signal?: AbortSignal }) => Promise<unknown>
  get: (key: Uint8Array, options: { signal?: AbortSignal }) => AsyncIterable<Uint8Array>
}

export function peerRecordKey (peerId: string): Uint8Array {
  return hiveRecordKey(RECORD_KINDS.peer, peerId)
}

export function decodePeerRecordPayload (payload: Uint8Array): PeerRecordFields {
  return decodeCbor(payload, PeerRecordPayload, 'peer record payload', InvalidRecordError)
}

function checkPeerRecord (record: HiveRecord): void {
  if (record.key !== `/${DHT_NAMESPACE}/${RECORD_KINDS.peer}/${record.publisher}`) throw new InvalidRecordError('a peer record is published only by the peer it names')
  decodePeerRecordPayload(record.payload)
}

/** Registers the kind (identically on every node). */
export function registerPeerRecord (records: HiveRecords): void {
  records.register(RECORD_KINDS.peer, { validate: checkPeerRecord })
}

/** Signs and publishes this device's `peer` record. */
export async function publishPeerRecord (dht: PeerRecordDht, signer: Signer, fields: PeerRecordFields, options: { signal?: AbortSignal } = {}): Promise<void> {
  const key = peerRecordKey(signer.peerId)
  const payload = encodeMessage({ ...fields, addresses: fields.addresses.slice(0, MAX_PEER_RECORD_ADDRESSES) })
  await dht.put(key, await createRecord(key, payload, signer), options)
}

/** Looks a device's `peer` record up; undefined when no valid one is found. The newest wins. */
export async function findPeerRecord (dht: PeerRecordDht, records: HiveRecords, peerId: string, options: { signal?: AbortSignal } = {}): Promise<PeerRecord | undefined> {
  peerIdFromString(peerId)
  const key = peerRecordKey(peerId)
  let best: PeerRecord | undefined
  for await (const value of dht.get(key, options)) {
    const record = await records.open(key, value).catch(() => undefined)
    if (record == null) continue
    if (best == null || record.time > best.time) best = { ...decodePeerRecordPayload(record.payload), peerId, time: record.time }
  }
  return best
}
