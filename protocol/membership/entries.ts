// Signed membership entries: the atoms of a hive's member list.
//
// An entry is a CBOR body signed by a member's Ed25519 device key. On the wire and on disk it
// travels as { b: body bytes, s: signature }. The signature covers a domain-separated message,
// u32be(len(domain)) || domain || body, so an entry signature is never valid as anything else.
// An entry's id is the hex SHA-256 of its body bytes; entries name the entries they build on
// (`deps`) by id, which makes the list a hash-linked graph whose order no member can rewrite.
//
// Three types: `found` (the genesis: the founder adds itself; the hive id is derived from it),
// `add` (a member adds a device, after pairing) and `remove` (a member revokes a device).

import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { z } from 'zod'
import type { Signer } from '../wire/signing.ts'
import { domainSigningBytes, verifyEd25519 } from '../wire/signing.ts'
import { base32Encode } from './base32.ts'
import { InvalidEntryError, InvalidPeerIdError } from './errors.ts'

export const ENTRY_DOMAIN = 'hive-node/membership-entry/v1'
export const MAX_ENTRY_BODY_BYTES = 8 * 1024
export const MAX_DEPS = 64
export const MAX_ADDRS = 8

/** Hex SHA-256 of an entry's body. */
export type EntryId = string & { readonly __brand: 'EntryId' }
/** 26 lowercase base32 characters: the first 128 bits of the genesis entry's SHA-256. */
export type HiveId = string & { readonly __brand: 'HiveId' }

export type EntryType = 'found' | 'add' | 'remove'

/** Signs with this device's key: the wire kit's one Signer. */
export type MembershipSigner = Signer

const PEER_ID = z.string().min(1).max(128)
const ENTRY_ID = z.string().regex(/^[0-9a-f]{64}$/)
export const HIVE_ID_PATTERN = /^[a-z2-7]{26}$/

export const EntryBodySchema = z.strictObject({
  v: z.literal(1),
  type: z.enum(['found', 'add', 'remove']),
  hive: z.string().regex(HIVE_ID_PATTERN).optional(),
  peer: PEER_ID,
  by: PEER_ID,
  at: z.number().int().nonnegative(),
  deps: z.array(ENTRY_ID).max(MAX_DEPS),
  name: z.string().min(1).max(64).optional(),
  addrs: z.array(z.string().min(1).max(256)).max(MAX_ADDRS).optional(),
  nonce: z.instanceof(Uint8Array).refine(n => n.byteLength === 16, 'a 16-byte nonce').optional(),
  invite: z.string().regex(/^[0-9a-f]{16}$/).optional()
}).superRefine((body, ctx) => {
  const problem = (message: string): void => { ctx.addIssue({ code: 'custom', message }) }
  if (body.type === 'found') {
    if (body.hive != null) problem('a genesis entry carries no hive id (it is derived from it)')
    if (body.nonce == null) problem('a genesis entry needs a nonce')
    if (body.deps.length > 0) problem('a genesis entry builds on nothing')
    if (body.peer !== body.by) problem('a genesis entry is signed by its founder')
  } else {
    if (body.hive == null) problem(`an ${body.type} entry names its hive`)
    if (body.nonce != null) problem('only a genesis entry has a nonce')
    if (body.deps.length === 0) problem(`an ${body.type} entry builds on at least one entry`)
    if (new Set(body.deps).size !== body.deps.length) problem('deps repeat an entry')
  }
  if (body.type === 'remove' && (body.name != null || body.addrs != null || body.invite != null)) {
    problem('a remove entry carries only who removed whom')
  }
})

export type EntryBody = z.infer<typeof EntryBodySchema>

/** The stored and transmitted form. */
export const WireEntrySchema = z.strictObject({
  b: z.instanceof(Uint8Array).refine(b => b.byteLength <= MAX_ENTRY_BODY_BYTES, `a body of at most ${MAX_ENTRY_BODY_BYTES} bytes`),
  s: z.instanceof(Uint8Array).refine(s => s.byteLength === 64, 'a 64-byte signature')
})
export interface WireEntry { b: Uint8Array, s: Uint8Array }

export interface Entry {
  readonly id: EntryId
  readonly body: EntryBody
  /** The body bytes exactly as signed. */
  readonly bytes: Uint8Array
  readonly sig: Uint8Array
}

export function signingBytes (body: Uint8Array): Uint8Array {
  return domainSigningBytes(ENTRY_DOMAIN, body)
}

export function entryIdOf (bytes: Uint8Array): EntryId {
  return createHash('sha256').update(bytes).digest('hex') as EntryId
}

export function hiveIdOf (genesis: Entry): HiveId {
  return base32Encode(createHash('sha256').update(genesis.bytes).digest().subarray(0, 16)) as HiveId
}

/** The raw 32-byte Ed25519 public key a PeerId embeds. */
export function publicKeyOf (peerId: string): Uint8Array {
  let id
  try {
    id = peerIdFromString(peerId)
  } catch {
    throw new InvalidPeerIdError(`"${peerId.slice(0, 80)}" is not a PeerId`)
  }
  if (id.type !== 'Ed25519') throw new InvalidPeerIdError(`${peerId} is not an Ed25519 PeerId; hive devices use Ed25519 keys`)
  return id.publicKey.raw
}

/** Throws InvalidPeerIdError unless `peerId` is an Ed25519 PeerId; returns it normalised. */
export function checkPeerId (peerId: string): string {
  publicKeyOf(peerId)
  return peerIdFromString(peerId).toString()
}

export function toWire (entry: Entry): WireEntry {
  return { b: entry.bytes, s: entry.sig }
}

export function encodeEntry (entry: Entry): Uint8Array {
  return cborEncode(toWire(entry))
}

/** Builds and signs an entry. `body.by` must be the signer. */
export async function createEntry (body: Omit<EntryBody, 'v' | 'by'>, signer: MembershipSigner): Promise<Entry> {
  const full = { v: 1 as const, ...body, by: signer.peerId }
  const parsed = EntryBodySchema.safeParse(full)
  if (!parsed.success) throw new InvalidEntryError(`cannot create entry: ${describeIssues(parsed.error)}`)
  const bytes = cborEncode(stripUndefined(parsed.data))
  if (bytes.byteLength > MAX_ENTRY_BODY_BYTES) throw new InvalidEntryError(`entry body of ${bytes.byteLength} bytes exceeds ${MAX_ENTRY_BODY_BYTES}`)
  const sig = await signer.sign(signingBytes(bytes))
  return { id: entryIdOf(bytes), body: parsed.data, bytes, sig }
}

/**
 * Decodes and checks one entry: shape, canonical encoding, and the signature against the key
 * the signer's PeerId embeds. Says nothing yet about whether the signer was allowed to sign
 * it; that is the member list's rule (view.ts).
 */
export async function openEntry (wire: WireEntry): Promise<Entry> {
  const { b: bytes, s: sig } = wire
  let raw: unknown
  try {
    raw = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new InvalidEntryError(`entry body is not CBOR: ${(err as Error).message}`)
  }
  const parsed = EntryBodySchema.safeParse(raw)
  if (!parsed.success) throw new InvalidEntryError(`entry body is invalid: ${describeIssues(parsed.error)}`)
  const body = parsed.data
  // one logical entry has one encoding, so it has one id
  if (!equalBytes(cborEncode(stripUndefined(body)), bytes)) throw new InvalidEntryError('entry body is not canonically encoded')
  let publicKey: Uint8Array
  try {
    publicKey = publicKeyOf(body.by)
    publicKeyOf(body.peer)
  } catch (err) {
    throw new InvalidEntryError(`entry names a bad peer: ${(err as Error).message}`)
  }
  // the hive's one rule (wire/signing.ts): strict RFC 8032 with a canonical S
  const ok = verifyEd25519(publicKey, signingBytes(bytes), sig)
  if (!ok) throw new InvalidEntryError(`entry ${entryIdOf(bytes).slice(0, 12)} has a signature that does not verify for ${body.by}`)
  return { id: entryIdOf(bytes), body, bytes, sig }
}

/** Decodes an entry from its stored form. */
export async function decodeEntry (bytes: Uint8Array): Promise<Entry> {
  let raw: unknown
  try {
    raw = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new InvalidEntryError(`stored entry is not CBOR: ${(err as Error).message}`)
  }
  const parsed = WireEntrySchema.safeParse(raw)
  if (!parsed.success) throw new InvalidEntryError(`stored entry is invalid: ${describeIssues(parsed.error)}`)
  return openEntry(parsed.data)
}

function stripUndefined<T extends object> (value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T
}

function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.compare(a, b) === 0
}

function describeIssues (error: z.ZodError): string {
  return error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
}
