// The JSON listing form of a chain (`hive-node ledger --json`, `GET /ledger/records`): each
// record in FORMAT.md's JSON form; stored bytes that do not decode are listed as hex with why.

import { recordToJson, toHex } from './record.ts'
import type { RecordJson } from './record.ts'
import type { ListedRecord } from './store.ts'

export interface UndecodableJson {
  seq: number
  error: string
  bytes: string
}

export interface ListingJson {
  signer: string
  self: boolean
  records: Array<RecordJson | UndecodableJson>
}

export function listingToJson (signer: string, self: boolean, listed: ListedRecord[]): ListingJson {
  return {
    signer,
    self,
    records: listed.map(l => l.record != null
      ? recordToJson(l.record)
      : { seq: l.seq, error: l.error ?? 'undecodable', bytes: toHex(l.bytes) })
  }
}
