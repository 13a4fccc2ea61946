// The JSON listing form of a chain (`hive-node ledger --json`, `GET /ledger/records`): each
// record in FORMAT.md's JSON form; stored bytes that do not decode are listed as hex with why.

import { recordToJson, toHex } from './record.ts'
import type { NetUsage, RecordJson } from './record.ts'
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

/** A record's http requests in one line: `9 http requests: https://a.example ×6, http://127.0.0.1:8080 ×3`. */
export function netUsageText (net: NetUsage): string {
  const listed = net.origins.reduce((n, o) => n + o.requests, 0)
  const others = net.requests - listed
  return `${net.requests} http request${net.requests === 1 ? '' : 's'}: ${net.origins.map(o => `${o.origin} ×${o.requests}`).join(', ')}` +
    (others > 0 ? `, ${others} to origins not listed` : '')
}
