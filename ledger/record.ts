// The record and signed-head codecs: one deterministic binary encoding, specified byte by byte
// in FORMAT.md, so anyone can re-verify a chain with a SHA-256 tool and any Ed25519 verifier.
// Everything here is pure apart from the signer's `sign`.
//
// Records come in three format versions. Version 1 has the text fields only; version 2 adds what
// the run's LLM calls used, per route; version 3 adds the run's http requests, per origin. A
// record is written in the lowest version that holds its content (no requests: version 2 or 1;
// no LLM usage either: version 1), so such records are the same bytes as before the later
// versions existed, peers on an older release keep accepting them, and every record content has
// exactly one encoding.
//
// Signatures are made by the device key (RFC 8032 Ed25519; in the node the signer is signer.ts,
// node:crypto). Verification uses Node's built-in Ed25519 (OpenSSL), an order of magnitude
// faster than noble here; the test suite cross-checks the two. S >= L is refused explicitly so
// the rule does not depend on the verifier underneath.

import { createPublicKey, hash, verify as cryptoVerify } from 'node:crypto'
import { isUtf8 } from 'node:buffer'
import { InvalidRecordFieldsError, MalformedRecordError, UnsupportedSignerError } from './errors.ts'
import type { KeyObject } from 'node:crypto'
import { hasCanonicalS } from '../protocol/wire/signing.ts'

const textEncoder = new TextEncoder()
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** First byte of every head body, and of the body of a record without LLM usage. */
export const FORMAT_VERSION = 0x01

/** First byte of the body of a record that carries LLM usage. */
export const FORMAT_VERSION_LLM = 0x02

/** First byte of the body of a record that carries http requests (and LLM usage, if any). */
export const FORMAT_VERSION_NET = 0x03

/** Where an LLM call ran, in encoding order; the route's code is its index + 1. */
export const LLM_ROUTES = ['local', 'peer', 'cloud'] as const
export type LlmRouteKind = typeof LLM_ROUTES[number]

/** What one run's LLM calls on one route add up to (the same shape as the protocol's LlmUsage). */
export interface LlmUsage {
  route: LlmRouteKind
  calls: number
  tokensIn: number
  tokensOut: number
}

/** At most one entry per route. */
export const MAX_LLM_ROUTES = LLM_ROUTES.length

/** Counts are u32 on the wire. */
export const MAX_LLM_COUNT = 0xffffffff

/** Bytes of one LLM usage entry: route code, calls, tokens in, tokens out. */
const LLM_ENTRY_BYTES = 1 + 4 + 4 + 4

/**
 * The bound of a record's http requests list, stated once: at most 32 origins (the most a
 * manifest may name, so a run's whole report fits), each at most 300 bytes of printable ASCII
 * (the longest origin a manifest may name). FORMAT.md and the sandbox refer to these.
 */
export const NET_USAGE_LIMITS = { maxOrigins: 32, maxOriginBytes: 300 } as const

/** The http requests one run made: the total, and how many went to each granted origin. */
export interface NetUsage {
  /** Every request of the run, redirect hops included; at least the sum of the listed ones. */
  requests: number
  /** Per origin, in ascending byte order of the origin; each with at least one request. */
  origins: Array<{ origin: string, requests: number }>
}

/** Prepended to a record's body to form the message its signature covers. */
export const RECORD_DOMAIN: Uint8Array = textEncoder.encode('hive-ledger/record/v1')

/** Prepended to a head's body to form the message its signature covers. */
export const HEAD_DOMAIN: Uint8Array = textEncoder.encode('hive-ledger/head/v1')

/** The previous-hash of the record with sequence number 0. */
export const GENESIS_PREV: Uint8Array = new Uint8Array(32)

export const HASH_BYTES = 32
export const SIGNATURE_BYTES = 64

/** Upper bounds, in UTF-8 bytes, of the text fields. */
export const FIELD_LIMITS = {
  task: 256,
  agent: 128,
  input: 128,
  output: 128,
  status: 32,
  placement: 1024
} as const

/** The text fields in encoding order. */
export const TEXT_FIELDS = ['task', 'agent', 'input', 'output', 'status', 'placement'] as const
export type TextField = typeof TEXT_FIELDS[number]

/** Identity multihash prefix of an Ed25519 PeerId: 0x00 (identity), 0x24 (36 bytes), then the
 * libp2p public-key protobuf header 0x08 0x01 (type Ed25519) 0x12 0x20 (32 bytes of key). */
export const ED25519_PEER_ID_PREFIX: Uint8Array = Uint8Array.from([0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
export const SIGNER_BYTES = ED25519_PEER_ID_PREFIX.byteLength + 32

/** The largest version-1 record (the text fields at their bounds, signature included). */
export const MAX_RECORD_BYTES = 1 + 8 + HASH_BYTES + 8 + 2 + SIGNER_BYTES +
  TEXT_FIELDS.reduce((sum, f) => sum + 2 + FIELD_LIMITS[f], 0) + SIGNATURE_BYTES

/** The largest version-2 record: version 2 adds the LLM usage list. */
export const MAX_RECORD_V2_BYTES = MAX_RECORD_BYTES + 1 + MAX_LLM_ROUTES * LLM_ENTRY_BYTES

/** The largest record of any version: version 3 adds the requests total and the origins list. */
export const MAX_RECORD_V3_BYTES = MAX_RECORD_V2_BYTES + 4 + 1 +
  NET_USAGE_LIMITS.maxOrigins * (2 + NET_USAGE_LIMITS.maxOriginBytes + 4)

/** What the signer decides about one execution; the chain position is filled in by the store. */
export interface RecordContent {
  /** Milliseconds since the Unix epoch (UTC). */
  time: number
  task: string
  agent: string
  input: string
  output: string
  status: string
  placement: string
  /** LLM calls the run made, per route; absent or empty when it made none (a version-1 record). */
  llm?: LlmUsage[]
  /** http requests the run made, per origin; absent or 0 requests when it made none. */
  net?: NetUsage
}

export interface RecordFields extends RecordContent {
  seq: number
  /** SHA-256 of the previous record's whole encoding; 32 zero bytes for seq 0. */
  prev: Uint8Array
  /** The signer's PeerId (Ed25519) as a string. */
  signer: string
}

export interface LedgerRecord extends RecordFields {
  signature: Uint8Array
  /** SHA-256 over `bytes`, the signature included. */
  hash: Uint8Array
  /** The whole encoding: body then signature. */
  bytes: Uint8Array
}

/** The JSON listing form (`hive-node ledger --json`): bytes as lowercase hex. */
export interface RecordJson {
  seq: number
  prev: string
  time: number
  signer: string
  task: string
  agent: string
  input: string
  output: string
  status: string
  placement: string
  /** Present (non-empty) when the run made LLM calls (version 2 or 3). */
  llm?: LlmUsage[]
  /** Present when the run made http requests (version 3). */
  net?: NetUsage
  signature: string
  hash: string
}

/** Anything that can sign with the device key (the node's identity). */
export interface RecordSigner {
  /** PeerId string of the key `sign` uses. */
  readonly peerId: { toString: () => string }
  sign: (message: Uint8Array) => Promise<Uint8Array>
}

// ---------------------------------------------------------------------------------------------
// signers

const signerCache = new Map<string, { bytes: Uint8Array, publicKey: Uint8Array }>()
const signerStringCache = new Map<string, string>()
const CACHE_LIMIT = 4096

function remember<K, V> (cache: Map<K, V>, key: K, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.clear()
  cache.set(key, value)
  return value
}

function parseSigner (signer: string): { bytes: Uint8Array, publicKey: Uint8Array } {
  const cached = signerCache.get(signer)
  if (cached != null) return cached
  if (typeof signer !== 'string' || !signer.startsWith('12D3KooW')) {
    throw new UnsupportedSignerError(`"${String(signer)}" is not an Ed25519 PeerId (those read 12D3KooW…); ledger signers must be Ed25519 PeerIds`)
  }
  const bytes = base58Decode(signer)
  if (bytes == null || bytes.byteLength !== SIGNER_BYTES || !startsWith(bytes, ED25519_PEER_ID_PREFIX)) {
    throw new UnsupportedSignerError(`"${signer}" is not an Ed25519 PeerId embedding its 32-byte key`)
  }
  return remember(signerCache, signer, { bytes, publicKey: bytes.subarray(ED25519_PEER_ID_PREFIX.byteLength) })
}

// base58btc (the Bitcoin alphabet), the text form of PeerIds. Written out here so this module,
// which audit workers load, needs nothing beyond node:crypto.
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

function base58Decode (text: string): Uint8Array | undefined {
  let n = 0n
  for (const ch of text) {
    const digit = BASE58.indexOf(ch)
    if (digit < 0) return undefined
    n = n * 58n + BigInt(digit)
  }
  const out: number[] = []
  while (n > 0n) {
    out.push(Number(n & 0xffn))
    n >>= 8n
  }
  for (const ch of text) {
    if (ch !== '1') break
    out.push(0)
  }
  return Uint8Array.from(out.reverse())
}

function base58Encode (bytes: Uint8Array): string {
  let n = 0n
  for (const b of bytes) n = (n << 8n) | BigInt(b)
  let out = ''
  while (n > 0n) {
    out = BASE58[Number(n % 58n)] + out
    n /= 58n
  }
  for (const b of bytes) {
    if (b !== 0) break
    out = '1' + out
  }
  return out
}

/** The 38 bytes a record carries in its signer field for this PeerId. */
export function signerBytes (signer: string): Uint8Array {
  return parseSigner(signer).bytes
}

/** The 32-byte Ed25519 public key embedded in an Ed25519 PeerId. */
export function signerPublicKey (signer: string): Uint8Array {
  return parseSigner(signer).publicKey
}

/** The PeerId string of a 38-byte signer field. */
export function signerFromBytes (bytes: Uint8Array): string {
  if (bytes.byteLength !== SIGNER_BYTES || !startsWith(bytes, ED25519_PEER_ID_PREFIX)) {
    throw new MalformedRecordError('signer field is not an Ed25519 PeerId (38 bytes starting 00 24 08 01 12 20)')
  }
  const key = toHex(bytes)
  const cached = signerStringCache.get(key)
  if (cached != null) return cached
  return remember(signerStringCache, key, base58Encode(bytes))
}

// ---------------------------------------------------------------------------------------------
// encoding

class Writer {
  private readonly parts: Uint8Array[] = []
  private length = 0

  bytes (b: Uint8Array): void {
    this.parts.push(b)
    this.length += b.byteLength
  }

  u8 (v: number): void {
    this.bytes(Uint8Array.of(v))
  }

  u16 (v: number): void {
    const b = new Uint8Array(2)
    new DataView(b.buffer).setUint16(0, v, false)
    this.bytes(b)
  }

  u32 (v: number): void {
    const b = new Uint8Array(4)
    new DataView(b.buffer).setUint32(0, v, false)
    this.bytes(b)
  }

  u64 (v: number): void {
    const b = new Uint8Array(8)
    new DataView(b.buffer).setBigUint64(0, BigInt(v), false)
    this.bytes(b)
  }

  prefixed (b: Uint8Array): void {
    this.u16(b.byteLength)
    this.bytes(b)
  }

  finish (): Uint8Array {
    const out = new Uint8Array(this.length)
    let offset = 0
    for (const part of this.parts) {
      out.set(part, offset)
      offset += part.byteLength
    }
    return out
  }
}

class Reader {
  private readonly view: DataView
  readonly bytes: Uint8Array
  offset = 0

  constructor (bytes: Uint8Array) {
    this.bytes = bytes
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  need (n: number, what: string): void {
    if (this.offset + n > this.bytes.byteLength) {
      throw new MalformedRecordError(`truncated at ${what} (offset ${this.offset}, ${n} bytes needed, ${this.bytes.byteLength - this.offset} left)`)
    }
  }

  u8 (what: string): number {
    this.need(1, what)
    return this.view.getUint8(this.offset++)
  }

  u16 (what: string): number {
    this.need(2, what)
    const v = this.view.getUint16(this.offset, false)
    this.offset += 2
    return v
  }

  u32 (what: string): number {
    this.need(4, what)
    const v = this.view.getUint32(this.offset, false)
    this.offset += 4
    return v
  }

  u64 (what: string): number {
    this.need(8, what)
    const hi = this.view.getUint32(this.offset, false)
    const lo = this.view.getUint32(this.offset + 4, false)
    this.offset += 8
    // 2^53 - 1 is the largest sequence number or time a JS number holds exactly
    if (hi >= 0x200000) throw new MalformedRecordError(`${what} exceeds 2^53-1`)
    return hi * 0x100000000 + lo
  }

  take (n: number, what: string): Uint8Array {
    this.need(n, what)
    const b = this.bytes.subarray(this.offset, this.offset + n)
    this.offset += n
    return b
  }

  prefixed (max: number, what: string): Uint8Array {
    const n = this.u16(what)
    if (n > max) throw new MalformedRecordError(`${what} is ${n} bytes, more than the ${max} allowed`)
    return this.take(n, what)
  }
}

function utf8Field (field: TextField, value: unknown): Uint8Array {
  if (typeof value !== 'string') throw new InvalidRecordFieldsError(`${field} must be a string`)
  if (!value.isWellFormed()) throw new InvalidRecordFieldsError(`${field} holds a lone surrogate and cannot be encoded as UTF-8; pass well-formed text`)
  const b = textEncoder.encode(value)
  if (b.byteLength > FIELD_LIMITS[field]) {
    throw new InvalidRecordFieldsError(`${field} is ${b.byteLength} bytes of UTF-8; at most ${FIELD_LIMITS[field]} fit in a record`)
  }
  return b
}

function checkU64 (name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidRecordFieldsError(`${name} must be a non-negative integer no larger than 2^53-1, got ${String(v)}`)
  }
  return v
}

function checkU32 (name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_LLM_COUNT) {
    throw new InvalidRecordFieldsError(`${name} must be an integer from 0 to ${MAX_LLM_COUNT} (u32), got ${String(v)}`)
  }
  return v
}

/**
 * The LLM usage list in its one encoding order (by route), checked against the bounds: at most
 * one entry per route, u32 counts, at least one call per entry listed (a route not used is left
 * out). Returns an empty list for no usage.
 */
export function normalizeLlmUsage (llm: unknown): LlmUsage[] {
  if (llm == null) return []
  if (!Array.isArray(llm)) throw new InvalidRecordFieldsError('llm must be a list of { route, calls, tokensIn, tokensOut }')
  if (llm.length > MAX_LLM_ROUTES) throw new InvalidRecordFieldsError(`llm lists ${llm.length} entries; at most ${MAX_LLM_ROUTES}, one per route (${LLM_ROUTES.join(', ')})`)
  const out: LlmUsage[] = []
  for (const entry of llm as unknown[]) {
    if (entry == null || typeof entry !== 'object') throw new InvalidRecordFieldsError('each llm entry is { route, calls, tokensIn, tokensOut }')
    const { route, calls, tokensIn, tokensOut } = entry as Record<string, unknown>
    if (typeof route !== 'string' || !(LLM_ROUTES as readonly string[]).includes(route)) {
      throw new InvalidRecordFieldsError(`llm route must be one of ${LLM_ROUTES.join(', ')}, got ${String(route)}`)
    }
    if (out.some(u => u.route === route)) throw new InvalidRecordFieldsError(`llm lists route ${route} twice; add its counts into one entry`)
    if (checkU32('llm calls', calls) === 0) throw new InvalidRecordFieldsError(`llm route ${route} has 0 calls; leave out a route that was not used`)
    out.push({ route: route as LlmRouteKind, calls: calls as number, tokensIn: checkU32('llm tokensIn', tokensIn), tokensOut: checkU32('llm tokensOut', tokensOut) })
  }
  return out.sort((a, b) => LLM_ROUTES.indexOf(a.route) - LLM_ROUTES.indexOf(b.route))
}

const ORIGIN_TEXT = /^[\x21-\x7e]+$/

function compareBytes (a: string, b: string): number {
  // printable ASCII: code-unit order is byte order
  return a < b ? -1 : a > b ? 1 : 0
}

/**
 * The http requests in their one encoding order (origins ascending), checked against the bounds:
 * at most NET_USAGE_LIMITS.maxOrigins origins, each once, 1 to maxOriginBytes of printable ASCII
 * with at least one request, u32 counts, and a total no smaller than the listed requests.
 * Returns undefined for no requests.
 */
export function normalizeNetUsage (net: unknown): NetUsage | undefined {
  if (net == null) return undefined
  if (typeof net !== 'object') throw new InvalidRecordFieldsError('net must be { requests, origins: [{ origin, requests }] }')
  const { requests, origins } = net as Record<string, unknown>
  const total = checkU32('net requests', requests)
  if (!Array.isArray(origins)) throw new InvalidRecordFieldsError('net origins must be a list of { origin, requests }')
  if (total === 0) {
    if (origins.length > 0) throw new InvalidRecordFieldsError('net lists origins but 0 requests')
    return undefined
  }
  if (origins.length === 0) throw new InvalidRecordFieldsError(`net counts ${total} requests but lists no origin`)
  if (origins.length > NET_USAGE_LIMITS.maxOrigins) throw new InvalidRecordFieldsError(`net lists ${origins.length} origins; at most ${NET_USAGE_LIMITS.maxOrigins} fit in a record (fitNetUsage keeps the busiest)`)
  const out: NetUsage['origins'] = []
  let listed = 0
  for (const entry of origins as unknown[]) {
    if (entry == null || typeof entry !== 'object') throw new InvalidRecordFieldsError('each net origin is { origin, requests }')
    const { origin, requests: n } = entry as Record<string, unknown>
    if (typeof origin !== 'string' || origin.length === 0 || origin.length > NET_USAGE_LIMITS.maxOriginBytes || !ORIGIN_TEXT.test(origin)) {
      throw new InvalidRecordFieldsError(`a net origin is 1 to ${NET_USAGE_LIMITS.maxOriginBytes} printable ASCII characters, got ${JSON.stringify(String(origin).slice(0, 80))}`)
    }
    if (out.some(o => o.origin === origin)) throw new InvalidRecordFieldsError(`net lists origin ${origin} twice; add its requests into one entry`)
    if (checkU32('net origin requests', n) === 0) throw new InvalidRecordFieldsError(`net origin ${origin} has 0 requests; leave out an origin that was not used`)
    listed += n as number
    out.push({ origin, requests: n as number })
  }
  if (listed > total) throw new InvalidRecordFieldsError(`net lists ${listed} requests across its origins but counts ${total} in all`)
  return { requests: total, origins: out.sort((a, b) => compareBytes(a.origin, b.origin)) }
}

/**
 * What a run's request report becomes in its record, whatever the report holds: the busiest
 * NET_USAGE_LIMITS.maxOrigins origins that fit the bound are listed, and the total still counts
 * every request (so nothing a run did goes uncounted, and the record is always writable).
 */
export function fitNetUsage (report: { requests: number, origins: ReadonlyArray<{ origin: string, requests: number }> } | undefined): NetUsage | undefined {
  if (report == null) return undefined
  const clamp = (n: number): number => Number.isFinite(n) && n > 0 ? Math.min(Math.floor(n), MAX_LLM_COUNT) : 0
  const fit = report.origins
    .filter(o => typeof o.origin === 'string' && o.origin.length > 0 && o.origin.length <= NET_USAGE_LIMITS.maxOriginBytes && ORIGIN_TEXT.test(o.origin) && clamp(o.requests) > 0)
    .map(o => ({ origin: o.origin, requests: clamp(o.requests) }))
    .sort((a, b) => b.requests - a.requests || compareBytes(a.origin, b.origin))
    .slice(0, NET_USAGE_LIMITS.maxOrigins)
  const listed = fit.reduce((n, o) => n + o.requests, 0)
  const total = Math.min(Math.max(clamp(report.requests), listed), MAX_LLM_COUNT)
  if (total === 0) return undefined
  if (fit.length === 0) return undefined
  return { requests: total, origins: fit.sort((a, b) => compareBytes(a.origin, b.origin)) }
}

/** The body of a record: every field except the signature, in FORMAT.md order. */
export function encodeRecordBody (fields: RecordFields): Uint8Array {
  const llm = normalizeLlmUsage(fields.llm)
  const net = normalizeNetUsage(fields.net)
  const w = new Writer()
  w.u8(net != null ? FORMAT_VERSION_NET : llm.length > 0 ? FORMAT_VERSION_LLM : FORMAT_VERSION)
  w.u64(checkU64('seq', fields.seq))
  if (!(fields.prev instanceof Uint8Array) || fields.prev.byteLength !== HASH_BYTES) {
    throw new InvalidRecordFieldsError('prev must be 32 bytes')
  }
  w.bytes(fields.prev)
  w.u64(checkU64('time', fields.time))
  w.prefixed(signerBytes(fields.signer))
  for (const field of TEXT_FIELDS) w.prefixed(utf8Field(field, fields[field]))
  // version 3 always has the usage list, which may be empty there
  if (llm.length > 0 || net != null) {
    w.u8(llm.length)
    for (const usage of llm) {
      w.u8(LLM_ROUTES.indexOf(usage.route) + 1)
      w.u32(usage.calls)
      w.u32(usage.tokensIn)
      w.u32(usage.tokensOut)
    }
  }
  if (net != null) {
    w.u32(net.requests)
    w.u8(net.origins.length)
    for (const o of net.origins) {
      w.prefixed(textEncoder.encode(o.origin))
      w.u32(o.requests)
    }
  }
  return w.finish()
}

/** The message a record's signature covers: RECORD_DOMAIN || body. */
export function recordSigningMessage (body: Uint8Array): Uint8Array {
  return concat(RECORD_DOMAIN, body)
}

export function sha256 (bytes: Uint8Array): Uint8Array {
  // a copy: the digest may sit in Node's shared buffer pool
  return new Uint8Array(hash('sha256', bytes, 'buffer'))
}

/** Signs the fields with the signer's key; the signer must be the one the fields name. */
export async function signRecord (fields: RecordFields, signer: RecordSigner): Promise<LedgerRecord> {
  if (signer.peerId.toString() !== fields.signer) {
    throw new InvalidRecordFieldsError(`the record names signer ${fields.signer} but is being signed by ${signer.peerId.toString()}`)
  }
  const body = encodeRecordBody(fields)
  const signature = await signer.sign(recordSigningMessage(body))
  if (!(signature instanceof Uint8Array) || signature.byteLength !== SIGNATURE_BYTES) {
    throw new InvalidRecordFieldsError('the signer returned something other than a 64-byte Ed25519 signature')
  }
  const bytes = concat(body, signature)
  return decodeRecord(bytes)
}

/** Where the parts of a well-formed record lie; produced without decoding any text. */
export interface RecordLayout {
  seq: number
  time: number
  /** The 38 signer bytes (a view into the record). */
  signer: Uint8Array
  /** [start, end) of each text field, in TEXT_FIELDS order. */
  fields: Array<[number, number]>
  /** The LLM usage of a version-2 or -3 record, in encoding order; empty for version 1. */
  llm: LlmUsage[]
  /** The http requests of a version-3 record. */
  net?: NetUsage
}

/**
 * Checks that `bytes` is exactly one record encoding (version, bounds, signer form, UTF-8, no
 * trailing bytes) and says where its parts are. The audit's hot path uses this; decodeRecord
 * builds on it.
 */
export function scanRecord (bytes: Uint8Array): RecordLayout {
  const r = new Reader(bytes)
  const version = r.u8('version')
  if (version !== FORMAT_VERSION && version !== FORMAT_VERSION_LLM && version !== FORMAT_VERSION_NET) throw new MalformedRecordError(`unknown record version ${version}`)
  const seq = r.u64('seq')
  r.take(HASH_BYTES, 'prev')
  const time = r.u64('time')
  const signer = r.prefixed(SIGNER_BYTES, 'signer')
  if (signer.byteLength !== SIGNER_BYTES || !startsWith(signer, ED25519_PEER_ID_PREFIX)) {
    throw new MalformedRecordError('signer field is not an Ed25519 PeerId (38 bytes starting 00 24 08 01 12 20)')
  }
  const fields: Array<[number, number]> = []
  for (const field of TEXT_FIELDS) {
    const raw = r.prefixed(FIELD_LIMITS[field], field)
    if (!isUtf8(raw)) throw new MalformedRecordError(`${field} is not valid UTF-8`)
    fields.push([r.offset - raw.byteLength, r.offset])
  }
  const llm = version === FORMAT_VERSION ? [] : readLlmUsage(r, version === FORMAT_VERSION_NET)
  const net = version === FORMAT_VERSION_NET ? readNetUsage(r) : undefined
  r.take(SIGNATURE_BYTES, 'signature')
  if (r.offset !== bytes.byteLength) {
    throw new MalformedRecordError(`${bytes.byteLength - r.offset} unexpected bytes after the signature`)
  }
  return { seq, time, signer, fields, llm, ...(net != null ? { net } : {}) }
}

/** The requests of a version-3 body: total, then 1 to 32 origins in ascending byte order. */
function readNetUsage (r: Reader): NetUsage {
  const requests = r.u32('net requests')
  if (requests === 0) throw new MalformedRecordError('a version-3 record counts 0 requests; a record without requests is version 1 or 2')
  const count = r.u8('net origin count')
  if (count === 0) throw new MalformedRecordError('a version-3 record lists no origin')
  if (count > NET_USAGE_LIMITS.maxOrigins) throw new MalformedRecordError(`net origin count is ${count}, more than the ${NET_USAGE_LIMITS.maxOrigins} a record may list`)
  const origins: NetUsage['origins'] = []
  let listed = 0
  let last = ''
  for (let i = 0; i < count; i++) {
    const raw = r.prefixed(NET_USAGE_LIMITS.maxOriginBytes, 'net origin')
    let origin = ''
    for (const b of raw) {
      if (b < 0x21 || b > 0x7e) throw new MalformedRecordError('a net origin holds a byte outside printable ASCII')
      origin += String.fromCharCode(b)
    }
    if (origin === '') throw new MalformedRecordError('a net origin is empty')
    if (i > 0 && compareBytes(last, origin) >= 0) throw new MalformedRecordError('net origins must be listed once each, in ascending byte order')
    last = origin
    const n = r.u32('net origin requests')
    if (n === 0) throw new MalformedRecordError(`net origin ${origin} lists 0 requests; an origin not used is left out`)
    listed += n
    origins.push({ origin, requests: n })
  }
  if (listed > requests) throw new MalformedRecordError(`net origins list ${listed} requests, more than the ${requests} counted in all`)
  return { requests, origins }
}

/** The LLM usage list of a version-2 body (1 to 3 entries) or a version-3 body (0 to 3), routes in ascending code order. */
function readLlmUsage (r: Reader, mayBeEmpty: boolean): LlmUsage[] {
  const count = r.u8('llm count')
  if (count === 0 && !mayBeEmpty) throw new MalformedRecordError('a version-2 record lists no LLM usage; a record without it is version 1')
  if (count > MAX_LLM_ROUTES) throw new MalformedRecordError(`llm count is ${count}, more than the ${MAX_LLM_ROUTES} routes`)
  const out: LlmUsage[] = []
  let last = 0
  for (let i = 0; i < count; i++) {
    const code = r.u8('llm route')
    const route = LLM_ROUTES[code - 1]
    if (route == null) throw new MalformedRecordError(`unknown llm route code ${code}`)
    if (code <= last) throw new MalformedRecordError('llm routes must be listed once each, in ascending code order')
    last = code
    const calls = r.u32('llm calls')
    if (calls === 0) throw new MalformedRecordError(`llm route ${route} lists 0 calls; a route not used is left out`)
    out.push({ route, calls, tokensIn: r.u32('llm tokens in'), tokensOut: r.u32('llm tokens out') })
  }
  return out
}

/** Decodes a whole record; throws MalformedRecordError on anything but an exact encoding. */
export function decodeRecord (bytes: Uint8Array): LedgerRecord {
  const layout = scanRecord(bytes)
  const own = Uint8Array.from(bytes)
  const text = layout.fields.map(([start, end]) => textDecoder.decode(own.subarray(start, end)))
  return {
    seq: layout.seq,
    prev: own.subarray(9, 9 + HASH_BYTES),
    time: layout.time,
    signer: signerFromBytes(layout.signer),
    task: text[0] as string,
    agent: text[1] as string,
    input: text[2] as string,
    output: text[3] as string,
    status: text[4] as string,
    placement: text[5] as string,
    ...(layout.llm.length > 0 ? { llm: layout.llm } : {}),
    ...(layout.net != null ? { net: layout.net } : {}),
    signature: own.subarray(own.byteLength - SIGNATURE_BYTES),
    hash: sha256(own),
    bytes: own
  }
}

/** The part of an encoding the signature covers (without the domain). */
export function recordBody (bytes: Uint8Array): Uint8Array {
  return bytes.subarray(0, bytes.byteLength - SIGNATURE_BYTES)
}

// ---------------------------------------------------------------------------------------------
// signatures

/**
 * True when the signature's S (its last 32 bytes, little-endian) is below L (RFC 8032 5.1.7):
 * the hive's one acceptance rule, shared with DHT records and membership entries.
 */
export { hasCanonicalS }

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const keyCache = new Map<string, KeyObject>()

/** A Node KeyObject for a raw 32-byte Ed25519 public key, cached. */
export function ed25519KeyObject (publicKey: Uint8Array): KeyObject {
  const id = toHex(publicKey)
  const cached = keyCache.get(id)
  if (cached != null) return cached
  if (publicKey.byteLength !== 32) throw new UnsupportedSignerError('an Ed25519 public key is 32 bytes')
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
  return remember(keyCache, id, key)
}

/** Ed25519 verify (RFC 8032) with Node's built-in implementation; S >= L is refused first. */
export function verifyEd25519 (publicKey: Uint8Array | KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (!hasCanonicalS(signature)) return false
  const key = publicKey instanceof Uint8Array ? ed25519KeyObject(publicKey) : publicKey
  try {
    return cryptoVerify(null, message, key, signature)
  } catch {
    return false
  }
}

/** True when the record's signature verifies under the key its signer field names. */
export function verifyRecordSignature (record: LedgerRecord): boolean {
  return verifyEd25519(signerPublicKey(record.signer), recordSigningMessage(recordBody(record.bytes)), record.signature)
}

// ---------------------------------------------------------------------------------------------
// signed heads

export interface SignedHead {
  signer: string
  seq: number
  /** Hash of the record at `seq`. */
  hash: Uint8Array
  signature: Uint8Array
  bytes: Uint8Array
}

export interface HeadJson {
  signer: string
  seq: number
  hash: string
  signature: string
}

export const MAX_HEAD_BYTES = 1 + 2 + SIGNER_BYTES + 8 + HASH_BYTES + SIGNATURE_BYTES

function encodeHeadBody (signer: string, seq: number, hash: Uint8Array): Uint8Array {
  if (hash.byteLength !== HASH_BYTES) throw new InvalidRecordFieldsError('a head names a 32-byte hash')
  const w = new Writer()
  w.u8(FORMAT_VERSION)
  w.prefixed(signerBytes(signer))
  w.u64(checkU64('seq', seq))
  w.bytes(hash)
  return w.finish()
}

export async function signHead (seq: number, hash: Uint8Array, signer: RecordSigner): Promise<SignedHead> {
  const body = encodeHeadBody(signer.peerId.toString(), seq, hash)
  const signature = await signer.sign(concat(HEAD_DOMAIN, body))
  return decodeHead(concat(body, signature))
}

export function decodeHead (bytes: Uint8Array): SignedHead {
  const r = new Reader(bytes)
  const version = r.u8('version')
  if (version !== FORMAT_VERSION) throw new MalformedRecordError(`unknown head version ${version}`)
  const signer = signerFromBytes(r.prefixed(SIGNER_BYTES, 'signer'))
  const seq = r.u64('seq')
  r.take(HASH_BYTES, 'hash')
  r.take(SIGNATURE_BYTES, 'signature')
  if (r.offset !== bytes.byteLength) throw new MalformedRecordError('unexpected bytes after the head signature')
  const own = Uint8Array.from(bytes)
  const hashAt = own.byteLength - SIGNATURE_BYTES - HASH_BYTES
  return {
    signer,
    seq,
    hash: own.subarray(hashAt, hashAt + HASH_BYTES),
    signature: own.subarray(own.byteLength - SIGNATURE_BYTES),
    bytes: own
  }
}

export function verifyHeadSignature (head: SignedHead): boolean {
  const body = head.bytes.subarray(0, head.bytes.byteLength - SIGNATURE_BYTES)
  return verifyEd25519(signerPublicKey(head.signer), concat(HEAD_DOMAIN, body), head.signature)
}

export function headToJson (head: SignedHead): HeadJson {
  return { signer: head.signer, seq: head.seq, hash: toHex(head.hash), signature: toHex(head.signature) }
}

// ---------------------------------------------------------------------------------------------
// JSON listing form

export function recordToJson (record: LedgerRecord): RecordJson {
  return {
    seq: record.seq,
    prev: toHex(record.prev),
    time: record.time,
    signer: record.signer,
    task: record.task,
    agent: record.agent,
    input: record.input,
    output: record.output,
    status: record.status,
    placement: record.placement,
    ...(record.llm != null && record.llm.length > 0 ? { llm: record.llm.map(u => ({ ...u })) } : {}),
    ...(record.net != null ? { net: { requests: record.net.requests, origins: record.net.origins.map(o => ({ ...o })) } } : {}),
    signature: toHex(record.signature),
    hash: toHex(record.hash)
  }
}

/** Rebuilds the encoding from the JSON form; the result's hash is recomputed, not trusted. */
export function recordFromJson (json: RecordJson): LedgerRecord {
  const body = encodeRecordBody({ ...json, prev: fromHex(json.prev, 'prev') })
  return decodeRecord(concat(body, fromHex(json.signature, 'signature')))
}

// ---------------------------------------------------------------------------------------------
// bytes

export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

export function fromHex (hex: string, what = 'value'): Uint8Array {
  if (typeof hex !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(hex)) throw new InvalidRecordFieldsError(`${what} must be lowercase hex`)
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

export function concat (...parts: Uint8Array[]): Uint8Array {
  let length = 0
  for (const p of parts) length += p.byteLength
  const out = new Uint8Array(length)
  let offset = 0
  for (const p of parts) {
    out.set(p, offset)
    offset += p.byteLength
  }
  return out
}

export function bytesEqual (a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)
}

function startsWith (bytes: Uint8Array, prefix: Uint8Array): boolean {
  if (bytes.byteLength < prefix.byteLength) return false
  for (let i = 0; i < prefix.byteLength; i++) if (bytes[i] !== prefix[i]) return false
  return true
}
