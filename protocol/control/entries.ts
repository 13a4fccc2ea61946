// Signed halt and resume entries: the atoms of the hive's kill switch (PROTOCOL.md).
//
// An entry is a signed entry of the wire kit (../wire/signed-entries.ts): a canonical CBOR body
// signed by a member's Ed25519 device key, carried as { b: body bytes, s: signature }, its id the
// hex SHA-256 of the body. The signature covers u32be(len(domain)) || domain || body with
// CONTROL_ENTRY_DOMAIN, so no membership entry, record or bid signature is ever valid as one.

import { z } from 'zod'
import { signedEntryCodec } from '../wire/signed-entries.ts'
import { InvalidControlEntryError } from './errors.ts'
import { BudgetsSchema } from './budgets.ts'
import { PolicySchema } from './policy.ts'
import type { SignedEntry, WireSignedEntry } from '../wire/signed-entries.ts'
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

export type WireControlEntry = WireSignedEntry

export type ControlEntry = SignedEntry<ControlBody, ControlEntryId>

const CONTROL_ENTRY = signedEntryCodec<ControlBody, ControlEntryId>({
  what: 'control entry',
  domain: CONTROL_ENTRY_DOMAIN,
  schema: ControlBodySchema,
  error: InvalidControlEntryError,
  maxBodyBytes: MAX_SETTING_BODY_BYTES,
  // a halt or resume is small; only a setting may use the larger bound
  checkSize: (body, bytes) => {
    const max = kindOf(body.type) === 'switch' ? MAX_CONTROL_BODY_BYTES : MAX_SETTING_BODY_BYTES
    if (bytes.byteLength > max) throw new InvalidControlEntryError(`a ${body.type} entry body is ${bytes.byteLength} bytes; at most ${max} are allowed`)
  }
})

/** Decodes and checks one entry: size, shape, canonical encoding, and the signature of `by`. */
export const openControlEntry = CONTROL_ENTRY.open
/** The stored form, CBOR { b, s }. */
export const encodeControlEntry = CONTROL_ENTRY.encode
/** Decodes an entry from its stored form (checked as one from the network). */
export const decodeControlEntry = CONTROL_ENTRY.decode
export const WireControlEntrySchema = CONTROL_ENTRY.wireSchema
export const controlSigningBytes = CONTROL_ENTRY.signingBytes

/** Builds and signs an entry as `signer`. */
export async function createControlEntry (body: ControlBodyInput, signer: Signer): Promise<ControlEntry> {
  return CONTROL_ENTRY.create(body, signer)
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
