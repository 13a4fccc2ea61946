// Signed records the hive keeps in its Kademlia DHT.
//
// Keys are `/hive/<kind>/<rest>` and each kind is registered with its own check. A value is a
// CBOR map { v: 1, publisher, time, payload, sig } where `sig` is the publisher's Ed25519
// signature over a domain-separated, length-prefixed encoding of the key, publisher, time and
// payload. Every node validates what it is asked to store and what it reads back, so a record
// from outside the hive, a forged one, or one in a namespace nobody registered is refused.

import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { decodeCbor } from './codec.ts'
import { InvalidRecordError, UnknownRecordKindError } from './errors.ts'
import { DHT_NAMESPACE } from './ids.ts'
import { rememberOwnSignature, verifyEd25519 } from './signing.ts'
import type { Signer } from './signing.ts'

export const DHT_RECORD_DOMAIN = 'hive-node/dht-record/v1'
export const MAX_DHT_RECORD_BYTES = 16 * 1024

export { InvalidRecordError, UnknownRecordKindError }

/** The signer of a record: the wire kit's one Signer. */
export type RecordSigner = Signer

export interface HiveRecord {
  key: string
  kind: string
  publisher: string
  /** Milliseconds since the epoch, set by the publisher; newer wins. */
  time: number
  payload: Uint8Array
  signature: Uint8Array
}

export interface RecordKind {
  /** Kind-specific checks (payload shape, who may publish under this key). Throw to refuse. */
  validate?: (record: HiveRecord) => void | Promise<void>
}

const Envelope = z.object({
  v: z.literal(1),
  publisher: z.string().min(1).max(128),
  time: z.number().int().nonnegative(),
  payload: z.instanceof(Uint8Array),
  sig: z.instanceof(Uint8Array).refine(s => s.byteLength === 64, 'a 64-byte signature')
})

const encoder = new TextEncoder()
const decoder = new TextDecoder('utf-8', { fatal: true })

function u32 (n: number): Uint8Array {
  const b = new Uint8Array(4)
  new DataView(b.buffer).setUint32(0, n)
  return b
}

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.byteLength }
  return out
}

function lp (bytes: Uint8Array): Uint8Array[] {
  return [u32(bytes.byteLength), bytes]
}

/** The bytes a record's signature covers. */
export function recordSigningBytes (key: string, publisher: string, time: number, payload: Uint8Array): Uint8Array {
  const t = new Uint8Array(8)
  new DataView(t.buffer).setBigUint64(0, BigInt(time))
  return concat([...lp(encoder.encode(DHT_RECORD_DOMAIN)), ...lp(encoder.encode(key)), ...lp(encoder.encode(publisher)), t, ...lp(payload)])
}

/** Splits `/hive/<kind>/<rest>`; anything else is not a hive key. */
export function parseRecordKey (key: Uint8Array | string): { key: string, kind: string, rest: string } {
  let text: string
  try {
    text = typeof key === 'string' ? key : decoder.decode(key)
  } catch {
    throw new InvalidRecordError('record key is not UTF-8')
  }
  const match = /^\/([^/]+)\/([a-z][a-z0-9-]{0,31})\/(.{1,256})$/s.exec(text)
  if (match?.[1] !== DHT_NAMESPACE || match[2] == null || match[3] == null) {
    throw new InvalidRecordError(`record key "${text.slice(0, 80)}" is not of the form /${DHT_NAMESPACE}/<kind>/<id>`)
  }
  return { key: text, kind: match[2], rest: match[3] }
}

export function hiveRecordKey (kind: string, rest: string): Uint8Array {
  return encoder.encode(`/${DHT_NAMESPACE}/${kind}/${rest}`)
}

export async function createRecord (key: Uint8Array, payload: Uint8Array, signer: RecordSigner, time = Date.now()): Promise<Uint8Array> {
  const { key: text } = parseRecordKey(key)
  const signing = recordSigningBytes(text, signer.peerId, time, payload)
  const sig = await signer.sign(signing)
  rememberOwnSignature(publisherKey(signer.peerId), signing, sig)
  const value = cborEncode({ v: 1, publisher: signer.peerId, time, payload, sig })
  if (value.byteLength > MAX_DHT_RECORD_BYTES) throw new InvalidRecordError(`record of ${value.byteLength} bytes exceeds ${MAX_DHT_RECORD_BYTES}`)
  return value
}

/**
 * Records opened lately, by key and value digest. A record is opened again and again: the
 * DHT's validator on each node asked to store it, its selector on every lookup, the award that
 * carries the bids, each observer of the task. Opening is a pure function of the bytes, so the
 * first answer holds for every later one; only successes are kept (a refusal is cheap to redo
 * and must not fill the cache), and the bound keeps it small (records are ≤ 16 KiB).
 */
const opened = new Map<string, HiveRecord>()
const MAX_OPENED = 512

function openedKey (key: string, value: Uint8Array): string {
  return `${key}\u0000${createHash('sha256').update(value).digest('base64')}`
}

/** Raw public keys of publishers lately seen, by PeerId string (a base58 and multihash decode each). */
const publisherKeys = new Map<string, Uint8Array>()
const MAX_PUBLISHER_KEYS = 1024

/** The raw Ed25519 public key a publisher's PeerId carries; InvalidRecordError for any other PeerId. */
function publisherKey (publisher: string): Uint8Array {
  let publicKey = publisherKeys.get(publisher)
  if (publicKey != null) return publicKey
  try {
    const id = peerIdFromString(publisher)
    if (id.type !== 'Ed25519') throw new Error('not an Ed25519 peer id')
    publicKey = id.publicKey.raw
  } catch {
    throw new InvalidRecordError(`record publisher "${publisher.slice(0, 80)}" is not an Ed25519 PeerId`)
  }
  if (publisherKeys.size >= MAX_PUBLISHER_KEYS) publisherKeys.delete(publisherKeys.keys().next().value as string)
  publisherKeys.set(publisher, publicKey)
  return publicKey
}

export interface OpenOptions {
  /**
   * The peer these bytes came from, when the way they came proves it (a gossip message's
   * author, a stream's remote peer). A record whose publisher is that peer is taken without its
   * signature checked: the connection already says who wrote it. Such a record is for this
   * node's own use only; it is not remembered, so a record this node stores or hands on is
   * always checked in full.
   */
  from?: string
}

/** Decodes and checks a record's envelope and signature; kind checks are separate. */
export async function openRecord (key: Uint8Array | string, value: Uint8Array, options: OpenOptions = {}): Promise<HiveRecord> {
  const parsedKey = parseRecordKey(key)
  if (value.byteLength > MAX_DHT_RECORD_BYTES) throw new InvalidRecordError(`record of ${value.byteLength} bytes exceeds ${MAX_DHT_RECORD_BYTES}`)
  const cacheKey = openedKey(parsedKey.key, value)
  const held = opened.get(cacheKey)
  if (held != null) return held
  const envelope = decodeCbor(value, Envelope, 'record envelope', InvalidRecordError)
  const publicKey = publisherKey(envelope.publisher)
  if (options.from != null && options.from === envelope.publisher) return recordOf(parsedKey, envelope)
  const ok = verifyEd25519(publicKey, recordSigningBytes(parsedKey.key, envelope.publisher, envelope.time, envelope.payload), envelope.sig)
  if (!ok) throw new InvalidRecordError('record signature does not verify')
  // frozen: the one object is handed to every caller that opens the same bytes
  const record = Object.freeze(recordOf(parsedKey, envelope))
  opened.set(cacheKey, record)
  if (opened.size > MAX_OPENED) opened.delete(opened.keys().next().value as string)
  return record
}

function recordOf (parsedKey: { key: string, kind: string }, envelope: z.infer<typeof Envelope>): HiveRecord {
  const { publisher, time, payload, sig } = envelope
  return { key: parsedKey.key, kind: parsedKey.kind, publisher, time, payload: payload.slice(), signature: sig.slice() }
}

export interface HiveRecordsInit {
  /** Whether a publisher belongs to the hive. Membership supplies it; default: anyone. */
  isMember?: (peerId: string) => boolean
}

/**
 * The registry of record kinds, and the validator and selector every node hands kad-dht for
 * the hive namespace. Kinds must be registered identically on every node.
 */
export class HiveRecords {
  private readonly kinds = new Map<string, RecordKind>()
  /** Records that passed their kind's check here (opened records are shared objects, see openRecord). */
  private readonly validated = new WeakSet<HiveRecord>()
  isMember: (peerId: string) => boolean

  constructor (init: HiveRecordsInit = {}) {
    this.isMember = init.isMember ?? (() => true)
  }

  register (kind: string, spec: RecordKind = {}): void {
    if (!/^[a-z][a-z0-9-]{0,31}$/.test(kind)) throw new InvalidRecordError(`bad record kind "${kind}"`)
    if (this.kinds.has(kind)) throw new InvalidRecordError(`record kind "${kind}" is registered twice`)
    this.kinds.set(kind, spec)
  }

  async open (key: Uint8Array | string, value: Uint8Array, options: OpenOptions = {}): Promise<HiveRecord> {
    const { kind } = parseRecordKey(key)
    const spec = this.kinds.get(kind)
    if (spec == null) throw new UnknownRecordKindError(`no record kind "${kind}" is registered in this hive`)
    const record = await openRecord(key, value, options)
    if (!this.isMember(record.publisher)) throw new InvalidRecordError(`record publisher ${record.publisher} is not a member of this hive`)
    if (this.validated.has(record)) return record
    await spec.validate?.(record)
    this.validated.add(record)
    return record
  }

  /** kad-dht validator map: only the hive namespace, so every other namespace is refused. */
  validators (): Record<string, (key: Uint8Array, value: Uint8Array) => Promise<void>> {
    return {
      [DHT_NAMESPACE]: async (key, value) => { await this.open(key, value) }
    }
  }

  /** kad-dht selector map: the newest valid record wins; ties go to the greater signature. */
  selectors (): Record<string, (key: Uint8Array, records: Uint8Array[]) => Promise<number>> {
    return {
      [DHT_NAMESPACE]: async (key, records) => {
        let best = -1
        let bestRecord: HiveRecord | undefined
        for (let i = 0; i < records.length; i++) {
          const value = records[i]
          if (value == null) continue
          const record = await this.open(key, value).catch(() => undefined)
          if (record == null) continue
          if (bestRecord == null || record.time > bestRecord.time ||
            (record.time === bestRecord.time && Buffer.compare(record.signature, bestRecord.signature) > 0)) {
            best = i
            bestRecord = record
          }
        }
        return Math.max(best, 0)
      }
    }
  }
}
