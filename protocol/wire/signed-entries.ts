// Signed entries: the one codec of the atoms the hive's replicated sets are made of (catalog
// entries, halt, policy and budget entries). Each set names its kind (a domain, a body schema, an
// error class); what it means to be one is decided here, once.
//
// An entry is a canonical CBOR body signed by a member's Ed25519 device key, carried and stored
// as { b: body bytes, s: signature }. The signature covers domainSigningBytes(domain, body), each
// kind with a domain of its own, so no signature of one kind is ever valid as another. The body
// must be canonical (decoding and encoding it again gives the same bytes: cborg's sorted keys),
// so one entry has one id: the hex SHA-256 of the body bytes. Opening checks, in this order, the
// size before any decoding, CBOR, the kind's schema, the kind's own size rule, canonical form,
// the signer's key, and the signature under the one verifier (signing.ts).

import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { decodeCbor, describeIssues } from './codec.ts'
import { ED25519_SIGNATURE_BYTES, domainSigningBytes, verifyEd25519 } from './signing.ts'
import type { CodecErrorClass } from './codec.ts'
import type { Signer } from './signing.ts'

/** Issues of a body's schema named in one error: enough to say what was wrong, bounded for a log line. */
const MAX_ISSUES = 4

/** The form an entry travels and is stored in. */
export interface WireSignedEntry { b: Uint8Array, s: Uint8Array }

export interface SignedEntry<B, Id extends string = string> {
  readonly id: Id
  readonly body: B
  /** The body bytes exactly as signed. */
  readonly bytes: Uint8Array
  readonly sig: Uint8Array
}

/** What one kind of entry is: every body has at least its signer. */
export interface SignedEntryKind<B extends { by: string, type: string }> {
  /** Names an entry of this kind in errors ("catalog entry"). */
  what: string
  /** The signature's domain, this kind's alone. */
  domain: string
  schema: z.ZodType<B>
  /** The error every refusal throws; a peer that sent one is at fault. */
  error: CodecErrorClass
  /** A body above this is refused before it is decoded. */
  maxBodyBytes: number
  /** A rule on the size of a valid body (a type may be held smaller): throws `error`. On create and open. */
  checkSize?: (body: B, bytes: Uint8Array) => void
  /** Says which entry failed to verify beyond its id ("publish notes@0.1.0"). */
  describe?: (body: B) => string
}

/** The { b, s } schema of a kind whose bodies are at most `maxBodyBytes`. */
export function wireSignedEntrySchema (maxBodyBytes: number): z.ZodType<WireSignedEntry> {
  return z.strictObject({
    b: z.instanceof(Uint8Array).refine(b => b.byteLength <= maxBodyBytes, `a body of at most ${maxBodyBytes} bytes`),
    s: z.instanceof(Uint8Array).refine(s => s.byteLength === ED25519_SIGNATURE_BYTES, 'a 64-byte signature')
  })
}

export function signedEntryId<Id extends string = string> (bytes: Uint8Array): Id {
  return createHash('sha256').update(bytes).digest('hex') as Id
}

function canonical (body: object): Uint8Array {
  return cborEncode(Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)))
}

/** Builds a body of `fields` (version 1, signed by `signer`), checks it as a peer would, and signs it. */
export async function createSignedEntry<B extends { by: string, type: string }, Id extends string> (
  kind: SignedEntryKind<B>, fields: { type: string }, signer: Signer
): Promise<SignedEntry<B, Id>> {
  const parsed = kind.schema.safeParse({ v: 1, ...fields, by: signer.peerId })
  if (!parsed.success) throw new kind.error(`cannot create a ${fields.type} entry: ${describeIssues(parsed.error, MAX_ISSUES)}`)
  const bytes = canonical(parsed.data)
  kind.checkSize?.(parsed.data, bytes)
  const sig = await signer.sign(domainSigningBytes(kind.domain, bytes))
  return { id: signedEntryId<Id>(bytes), body: parsed.data, bytes, sig }
}

/** Decodes and checks one entry from a peer or from disk: size, shape, canonical encoding, the signature of `by`. */
export function openSignedEntry<B extends { by: string, type: string }, Id extends string> (kind: SignedEntryKind<B>, wire: WireSignedEntry): SignedEntry<B, Id> {
  const { b: bytes, s: sig } = wire
  if (bytes.byteLength > kind.maxBodyBytes) throw new kind.error(`${kind.what} body is ${bytes.byteLength} bytes, more than ${kind.maxBodyBytes}`)
  const body: B = decodeCbor(bytes, kind.schema, `${kind.what} body`, kind.error, MAX_ISSUES)
  kind.checkSize?.(body, bytes)
  if (Buffer.compare(Buffer.from(canonical(body)), Buffer.from(bytes)) !== 0) throw new kind.error(`${kind.what} body is not canonically encoded`)
  let publicKey: Uint8Array
  try {
    const id = peerIdFromString(body.by)
    if (id.type !== 'Ed25519') throw new Error('not an Ed25519 PeerId')
    publicKey = id.publicKey.raw
  } catch (err) {
    throw new kind.error(`${kind.what} names a bad signer: ${(err as Error).message}`)
  }
  const id = signedEntryId<Id>(bytes)
  if (!verifyEd25519(publicKey, domainSigningBytes(kind.domain, bytes), sig)) {
    const which = kind.describe != null ? ` (${kind.describe(body)})` : ''
    throw new kind.error(`${kind.what} ${id.slice(0, 12)}${which} has a signature that does not verify for ${body.by}`)
  }
  return { id, body, bytes, sig }
}

/** An entry as it travels: fresh copies, so a frame never carries a view into a larger buffer. */
export function toWireSignedEntry (entry: SignedEntry<unknown>): WireSignedEntry {
  return { b: new Uint8Array(entry.bytes), s: new Uint8Array(entry.sig) }
}

/** The stored form: the CBOR of { b, s }. */
export function encodeSignedEntry (entry: SignedEntry<unknown>): Uint8Array {
  return cborEncode({ b: entry.bytes, s: entry.sig })
}

/** Decodes an entry from its stored form, checked as one from the network. */
export function decodeSignedEntry<B extends { by: string, type: string }, Id extends string> (kind: SignedEntryKind<B>, stored: Uint8Array): SignedEntry<B, Id> {
  const wire = decodeCbor(stored, wireSignedEntrySchema(kind.maxBodyBytes), `stored ${kind.what}`, kind.error)
  return openSignedEntry<B, Id>(kind, wire)
}

/** One kind's codec: its signing bytes, id, wire schema, and the create, open, store and load of its entries. */
export interface SignedEntryCodec<B extends { by: string, type: string }, Id extends string> {
  wireSchema: z.ZodType<WireSignedEntry>
  signingBytes: (body: Uint8Array) => Uint8Array
  id: (bytes: Uint8Array) => Id
  create: (fields: { type: string }, signer: Signer) => Promise<SignedEntry<B, Id>>
  open: (wire: WireSignedEntry) => SignedEntry<B, Id>
  encode: (entry: SignedEntry<B, Id>) => Uint8Array
  decode: (stored: Uint8Array) => SignedEntry<B, Id>
}

export function signedEntryCodec<B extends { by: string, type: string }, Id extends string> (kind: SignedEntryKind<B>): SignedEntryCodec<B, Id> {
  return {
    wireSchema: wireSignedEntrySchema(kind.maxBodyBytes),
    signingBytes: (body) => domainSigningBytes(kind.domain, body),
    id: (bytes) => signedEntryId<Id>(bytes),
    create: async (fields, signer) => createSignedEntry<B, Id>(kind, fields, signer),
    open: (wire) => openSignedEntry<B, Id>(kind, wire),
    encode: encodeSignedEntry,
    decode: (stored) => decodeSignedEntry<B, Id>(kind, stored)
  }
}
