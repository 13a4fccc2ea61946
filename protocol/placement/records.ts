// The `bid` and `award` DHT record kinds: keys, payload codecs and the checks every node applies
// before storing or believing one. Every node must register both (registerPlacementRecords).

import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { InvalidRecordError, createRecord, hiveRecordKey } from '../dht-records.ts'
import { AwardPayload, BidPayload } from './messages.ts'
import type { HiveRecord, RecordKind, RecordSigner } from '../dht-records.ts'
import type { TaskId } from './ids.ts'

export const BID_KIND = 'bid'
export const AWARD_KIND = 'award'

/** `/hive/bid/<task>/<bidder>`: one bid per device per task, so bids can be enumerated by member. */
export function bidKey (task: string, bidder: string): Uint8Array {
  return hiveRecordKey(BID_KIND, `${task}/${bidder}`)
}

/** `/hive/award/<task>/<submitter>`: only the submitter may publish the award; newest round wins. */
export function awardKey (task: string, submitter: string): Uint8Array {
  return hiveRecordKey(AWARD_KIND, `${task}/${submitter}`)
}

function splitRest (record: HiveRecord, kind: string): [string, string] {
  const rest = record.key.slice(`/hive/${kind}/`.length)
  const slash = rest.indexOf('/')
  if (slash < 0) throw new InvalidRecordError(`a ${kind} record key is /hive/${kind}/<task>/<peer>`)
  return [rest.slice(0, slash), rest.slice(slash + 1)]
}

function decodePayload<T> (bytes: Uint8Array, schema: { safeParse: (v: unknown) => { success: true, data: T } | { success: false, error: { issues: Array<{ path: PropertyKey[], message: string }> } } }, kind: string): T {
  let raw: unknown
  try {
    raw = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch {
    throw new InvalidRecordError(`${kind} record payload is not CBOR`)
  }
  const parsed = schema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new InvalidRecordError(`${kind} record payload is invalid: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'unknown'}`)
  }
  return parsed.data
}

/** Opens a bid payload and checks it belongs under the record's key. */
export function bidFromRecord (record: HiveRecord): BidPayload {
  const [task, bidder] = splitRest(record, BID_KIND)
  if (bidder !== record.publisher) throw new InvalidRecordError(`a bid under ${record.key} must be published by ${bidder}, not ${record.publisher}`)
  const bid = decodePayload(record.payload, BidPayload, BID_KIND)
  if (bid.task !== task) throw new InvalidRecordError(`bid payload names task ${bid.task} under the key of task ${task}`)
  const sum = Math.round(bid.reasons.reduce((s, r) => s + r.points, 0) * 10) / 10
  if (Math.abs(sum - bid.cost) > 0.11) throw new InvalidRecordError(`bid cost ${bid.cost} is not the sum of its reasons (${sum})`)
  return bid
}

export function awardFromRecord (record: HiveRecord): AwardPayload {
  const [task, submitter] = splitRest(record, AWARD_KIND)
  if (submitter !== record.publisher) throw new InvalidRecordError(`an award under ${record.key} must be published by ${submitter}, not ${record.publisher}`)
  const award = decodePayload(record.payload, AwardPayload, AWARD_KIND)
  if (award.task !== task || award.submitter !== submitter) throw new InvalidRecordError(`award payload does not match its key ${record.key}`)
  if (!award.bids.some(b => b.bidder === award.winner)) throw new InvalidRecordError('an award\'s winner must be one of its bids')
  return award
}

export const bidRecordKind: RecordKind = { validate: (record) => { bidFromRecord(record) } }
export const awardRecordKind: RecordKind = { validate: (record) => { awardFromRecord(record) } }

/** Registers both kinds with a node's record registry (identically on every node). */
export function registerPlacementRecords (records: { register: (kind: string, spec: RecordKind) => void }): void {
  records.register(BID_KIND, bidRecordKind)
  records.register(AWARD_KIND, awardRecordKind)
}

export async function createBidRecord (bid: BidPayload, signer: RecordSigner): Promise<Uint8Array> {
  return createRecord(bidKey(bid.task, signer.peerId), cborEncode(BidPayload.parse(bid)), signer)
}

export async function createAwardRecord (award: AwardPayload, signer: RecordSigner): Promise<Uint8Array> {
  return createRecord(awardKey(award.task as TaskId, signer.peerId), cborEncode(AwardPayload.parse(award)), signer)
}
