// The `bid` and `award` DHT record kinds: keys, payload codecs and the checks every node applies
// before storing or believing one. Every node must register both (registerPlacementRecords).
//
// A task costs the DHT one record: the submitter's award, which carries the signed bids it was
// elected from, so any member can check each bidder's signature and recompute the election from
// that record alone. A bidder puts its own bid under its `bid` key only when it could not hand
// it to the submitter directly (the submitter looks there at its deadline).

import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { InvalidRecordError, MAX_DHT_RECORD_BYTES, createRecord, hiveRecordKey, openRecord } from '../wire/dht-records.ts'
import { sha256Hex } from './ids.ts'
import { AwardPayload, BidPayload } from './messages.ts'
import type { HiveRecord, RecordKind, RecordSigner } from '../wire/dht-records.ts'
import type { Digest, TaskId } from './ids.ts'
import type { BidSource } from './views.ts'

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

/**
 * Payloads already checked, by record: an opened record is one frozen object for the same bytes
 * (wire/dht-records.ts), read by the validator, the selector, the award and each observer.
 */
const bids = new WeakMap<HiveRecord, BidPayload>()
const awards = new WeakMap<HiveRecord, AwardPayload>()

function remembered<T extends object> (cache: WeakMap<HiveRecord, T>, record: HiveRecord, check: (record: HiveRecord) => T): T {
  if (!Object.isFrozen(record)) return check(record)
  let payload = cache.get(record)
  if (payload == null) {
    payload = check(record)
    cache.set(record, payload)
  }
  return payload
}

/** Opens a bid payload and checks it belongs under the record's key. */
export function bidFromRecord (record: HiveRecord): BidPayload {
  return remembered(bids, record, checkBid)
}

export function awardFromRecord (record: HiveRecord): AwardPayload {
  return remembered(awards, record, checkAward)
}

function checkBid (record: HiveRecord): BidPayload {
  const [task, bidder] = splitRest(record, BID_KIND)
  if (bidder !== record.publisher) throw new InvalidRecordError(`a bid under ${record.key} must be published by ${bidder}, not ${record.publisher}`)
  const bid = decodePayload(record.payload, BidPayload, BID_KIND)
  if (bid.task !== task) throw new InvalidRecordError(`bid payload names task ${bid.task} under the key of task ${task}`)
  const sum = Math.round(bid.reasons.reduce((s, r) => s + r.points, 0) * 10) / 10
  if (Math.abs(sum - bid.cost) > 0.11) throw new InvalidRecordError(`bid cost ${bid.cost} is not the sum of its reasons (${sum})`)
  return bid
}

function checkAward (record: HiveRecord): AwardPayload {
  const [task, submitter] = splitRest(record, AWARD_KIND)
  if (submitter !== record.publisher) throw new InvalidRecordError(`an award under ${record.key} must be published by ${submitter}, not ${record.publisher}`)
  const award = decodePayload(record.payload, AwardPayload, AWARD_KIND)
  if (award.task !== task || award.submitter !== submitter) throw new InvalidRecordError(`award payload does not match its key ${record.key}`)
  if (!award.bids.some(b => b.bidder === award.winner)) throw new InvalidRecordError('an award\'s winner must be one of its bids')
  for (const bytes of award.bidRecords ?? []) {
    const hash = sha256Hex(bytes)
    if (!award.bids.some(b => b.hash === hash)) throw new InvalidRecordError('an award carries a bid record it does not list')
  }
  return award
}

/**
 * The bids an award carries, each opened (its signature checked) and checked against the key it
 * belongs under. `open` is the node's record registry, which also checks membership; without
 * one, the signature alone is checked.
 */
export async function bidsOfAward (
  award: AwardPayload,
  open: (key: Uint8Array, value: Uint8Array) => Promise<HiveRecord> = openRecord
): Promise<Array<Omit<HeldBid, 'via'>>> {
  const out: Array<Omit<HeldBid, 'via'>> = []
  for (const value of award.bidRecords ?? []) {
    const hash = sha256Hex(value)
    const listed = award.bids.find(b => b.hash === hash)
    if (listed == null) throw new InvalidRecordError('an award carries a bid record it does not list')
    const record = await open(bidKey(award.task, listed.bidder), value)
    const payload = bidFromRecord(record)
    if (payload.submitter !== award.submitter) throw new InvalidRecordError(`a bid in the award names ${payload.submitter} as submitter`)
    out.push({ bidder: listed.bidder, payload, record: value, hash })
  }
  return out
}

export const bidRecordKind: RecordKind = { validate: (record) => { bidFromRecord(record) } }
/** An award's carried bids are checked too: a record with a forged bid is not stored. */
export const awardRecordKind: RecordKind = { validate: async (record) => { await bidsOfAward(awardFromRecord(record)) } }

/** A bid as the submitter (or an observer) holds it: the signed bytes, their payload and hash. */
export interface HeldBid {
  bidder: string
  payload: BidPayload
  record: Uint8Array
  hash: Digest
  via: BidSource
}

/** Room left in an award record for the bid records it carries (its other fields, the envelope). */
const AWARD_RECORD_SLACK = 6 * 1024

/** The bid records, in the given order, that fit in one award record. */
export function fitBidRecords (records: Uint8Array[]): Uint8Array[] {
  let room = MAX_DHT_RECORD_BYTES - AWARD_RECORD_SLACK
  const out: Uint8Array[] = []
  for (const r of records) {
    if (r.byteLength + 4 > room) break
    room -= r.byteLength + 4
    out.push(r)
  }
  return out
}

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
