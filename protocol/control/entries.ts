// Signed halt and resume entries: the atoms of the hive's kill switch (PROTOCOL.md).
//
// An entry is a canonical CBOR body signed by a member's Ed25519 device key, carried as
// { b: body bytes, s: signature }. The signature covers u32be(len(domain)) || domain || body,
// with its own domain, so no membership entry, record or bid signature is ever valid as one.
// Its id is the hex SHA-256 of the body bytes.

import { createHash } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { domainSigningBytes, verifyEd25519 } from '../wire/signing.ts'
import { InvalidControlEntryError } from './errors.ts'
import { BudgetsSchema } from './budgets.ts'
import { PolicySchema } from './policy.ts'
import type { Signer } from '../wire/signing.ts'

export const CONTROL_ENTRY_DOMAIN = 'hive-node/control-entry/v1'
/** Bytes of a halt or resume body. */
export const MAX_CONTROL_BODY_BYTES = 2048
/** Bytes of a policy or budget body (the whole setting travels in each). */
export const MAX_SETTING_BODY_BYTES = 8192
export const MAX_REASON_CHARS = 500
/** Lamport counters stay far below 2^53 however many entries a hive makes. */
export const MAX_COUNTER = 2 ** 40

export type ControlEntryId = string & { readonly __brand: 'ControlEntryId' }

const common = {
  v: z.literal(1),
  hive: z.string().regex(/^[a-z2-7]{26}$/),
  by: z.string().min(1).max(128),
  /** Milliseconds since the epoch on the signer's clock: shown, and the last tie-break but one. */
  at: z.number().int().nonnegative().max(2 ** 48),
  /** Lamport counter: one more than the highest the signer held, so a resume follows the halt it saw. */
  n: z.number().int().min(1).max(MAX_COUNTER)
}

export const SwitchBodySchema = z.strictObject({
  ...common,
  type: z.enum(['halt', 'resume']),
  reason: z.string().max(MAX_REASON_CHARS).optional()
})
/** The hive's whole policy: the greatest policy entry is the one in force. */
export const PolicyBodySchema = z.strictObject({ ...common, type: z.literal('policy'), policy: PolicySchema })
/** The hive's whole set of budgets: the greatest budget entry is the one in force. */
export const BudgetBodySchema = z.strictObject({ ...common, type: z.literal('budget'), budgets: BudgetsSchema })

export const ControlBodySchema = z.union([SwitchBodySchema, PolicyBodySchema, BudgetBodySchema])
export type ControlBody = z.infer<typeof ControlBodySchema>
export type ControlType = ControlBody['type']
/** What an entry decides: the kill switch (halt and resume), the policy, or the budgets. */
export type ControlKind = 'switch' | 'policy' | 'budget'

export function kindOf (type: ControlType): ControlKind {
  return type === 'halt' || type === 'resume' ? 'switch' : type
}

/** The body an entry of each type is made from (what `createControlEntry` takes). */
export type ControlBodyInput =
  | Omit<z.input<typeof SwitchBodySchema>, 'v' | 'by'>
  | Omit<z.input<typeof PolicyBodySchema>, 'v' | 'by'>
  | Omit<z.input<typeof BudgetBodySchema>, 'v' | 'by'>

export const WireControlEntrySchema = z.strictObject({
  b: z.instanceof(Uint8Array).refine(b => b.byteLength <= MAX_SETTING_BODY_BYTES, `a body of at most ${MAX_SETTING_BODY_BYTES} bytes`),
  s: z.instanceof(Uint8Array).refine(s => s.byteLength === 64, 'a 64-byte signature')
})
export interface WireControlEntry { b: Uint8Array, s: Uint8Array }

export interface ControlEntry {
  readonly id: ControlEntryId
  readonly body: ControlBody
  readonly bytes: Uint8Array
  readonly sig: Uint8Array
}

export function controlSigningBytes (body: Uint8Array): Uint8Array {
  return domainSigningBytes(CONTROL_ENTRY_DOMAIN, body)
}

export function controlEntryId (bytes: Uint8Array): ControlEntryId {
  return createHash('sha256').update(bytes).digest('hex') as ControlEntryId
}

/** The issues of a union's parse, from the member whose `type` matched when one did. */
function issues (error: z.ZodError): string {
  const flat = error.issues.flatMap(i => i.code === 'invalid_union' ? (i.errors.find(e => !e.some(x => x.path[0] === 'type')) ?? i.errors.flat()) : [i])
  return flat.slice(0, 4).map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
}

/** A halt or resume is small; only a setting may use the larger bound. */
function checkSize (body: ControlBody, bytes: Uint8Array): void {
  const max = kindOf(body.type) === 'switch' ? MAX_CONTROL_BODY_BYTES : MAX_SETTING_BODY_BYTES
  if (bytes.byteLength > max) throw new InvalidControlEntryError(`a ${body.type} entry body is ${bytes.byteLength} bytes; at most ${max} are allowed`)
}

function canonical (body: ControlBody): Uint8Array {
  return cborEncode(Object.fromEntries(Object.entries(body).filter(([, v]) => v !== undefined)))
}

/** Builds and signs an entry as `signer`. */
export async function createControlEntry (body: ControlBodyInput, signer: Signer): Promise<ControlEntry> {
  const parsed = ControlBodySchema.safeParse({ v: 1, ...body, by: signer.peerId })
  if (!parsed.success) throw new InvalidControlEntryError(`cannot create a ${body.type} entry: ${issues(parsed.error)}`)
  const bytes = canonical(parsed.data)
  checkSize(parsed.data, bytes)
  const sig = await signer.sign(controlSigningBytes(bytes))
  return { id: controlEntryId(bytes), body: parsed.data, bytes, sig }
}

/** Decodes and checks one entry: shape, canonical encoding, and the signature of `by`. */
export function openControlEntry (wire: WireControlEntry): ControlEntry {
  const { b: bytes, s: sig } = wire
  let raw: unknown
  try {
    raw = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new InvalidControlEntryError(`control entry body is not CBOR: ${(err as Error).message}`)
  }
  const parsed = ControlBodySchema.safeParse(raw)
  if (!parsed.success) throw new InvalidControlEntryError(`control entry body is invalid: ${issues(parsed.error)}`)
  const body = parsed.data
  checkSize(body, bytes)
  if (Buffer.compare(Buffer.from(canonical(body)), Buffer.from(bytes)) !== 0) throw new InvalidControlEntryError('control entry body is not canonically encoded')
  let publicKey: Uint8Array
  try {
    const id = peerIdFromString(body.by)
    if (id.type !== 'Ed25519') throw new Error('not an Ed25519 PeerId')
    publicKey = id.publicKey.raw
  } catch (err) {
    throw new InvalidControlEntryError(`control entry names a bad signer: ${(err as Error).message}`)
  }
  if (!verifyEd25519(publicKey, controlSigningBytes(bytes), sig)) {
    throw new InvalidControlEntryError(`control entry ${controlEntryId(bytes).slice(0, 12)} has a signature that does not verify for ${body.by}`)
  }
  return { id: controlEntryId(bytes), body, bytes, sig }
}

export function encodeControlEntry (entry: ControlEntry): Uint8Array {
  return cborEncode({ b: entry.bytes, s: entry.sig })
}

/** Decodes an entry from its stored form (checked as one from the network). */
export function decodeControlEntry (stored: Uint8Array): ControlEntry {
  let raw: unknown
  try {
    raw = cborDecode(stored, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new InvalidControlEntryError(`stored control entry is not CBOR: ${(err as Error).message}`)
  }
  const parsed = WireControlEntrySchema.safeParse(raw)
  if (!parsed.success) throw new InvalidControlEntryError('stored control entry is not { b, s }')
  return openControlEntry(parsed.data)
}

/**
 * The order of entries of one kind; the greatest of each kind decides (whether the hive is
 * halted, the policy, the budgets). By Lamport counter
 * first, so an entry made after its signer saw another comes after it whatever the clocks say;
 * between concurrent entries (equal counters) a halt beats a resume, so a kill switch pulled
 * while someone resumes stays pulled; then the signer's clock, the signer and the id, so every
 * member orders any two entries the same way.
 */
export function compareControlEntries (a: ControlEntry, b: ControlEntry): number {
  if (a.body.n !== b.body.n) return a.body.n - b.body.n
  if (a.body.type !== b.body.type) return a.body.type === 'halt' ? 1 : b.body.type === 'halt' ? -1 : a.body.type < b.body.type ? -1 : 1
  if (a.body.at !== b.body.at) return a.body.at - b.body.at
  if (a.body.by !== b.body.by) return a.body.by < b.body.by ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
