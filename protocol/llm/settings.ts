// The hive's budget caps as a signed setting, replicated through a reserved CRDT context.
//
// Why a signed entry inside a context: contexts already reach every member, persist before they
// are acknowledged, and merge after a split, which is exactly what a setting needs; a signature
// by a member's device key (domain separated, as membership entries are) means no agent and no
// stranger can forge one. Each device writes under its own key in the context's state, so two
// devices setting the budget at once never overwrite each other's bytes; the setting in force
// is the valid one with the greatest (at, signer), a last-writer-wins register every replica
// computes alike. A device remembers the greatest it has seen, so a deleted or replayed older
// entry cannot take a budget back.
//
// Entry: { b: CBOR body, s: Ed25519 signature over u32be(len(domain)) || domain || b }.
// Body: { v: 1, hive, by, at, day?: micro-USD, agents: { digest: micro-USD } }.

import { domainSigningBytes } from '../wire/signing.ts'
import * as ed from '@noble/ed25519'
import { peerIdFromString } from '@libp2p/peer-id'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { InvalidBudgetSettingError } from './errors.ts'
import type { BudgetCaps } from './budget.ts'

export const BUDGET_DOMAIN = 'hive-node/llm-budget/v1'
/** The context that carries the setting; agents may not open contexts under `hive.`. */
export const BUDGET_CONTEXT = 'hive.budget'
export const MAX_BUDGET_AGENTS = 256
/** A cap above a million dollars a day is a typo. */
export const MAX_CAP_MICRO_USD = 1e12

const MicroUsd = z.number().int().min(0).max(MAX_CAP_MICRO_USD)
const Digest = z.string().regex(/^[0-9a-f]{64}$/)

export const BudgetBody = z.strictObject({
  v: z.literal(1),
  hive: z.string().min(1).max(64),
  by: z.string().min(1).max(128),
  at: z.number().int().min(0),
  day: MicroUsd.optional(),
  agents: z.record(Digest, MicroUsd).refine(a => Object.keys(a).length <= MAX_BUDGET_AGENTS, `at most ${MAX_BUDGET_AGENTS} agents`)
})
export type BudgetBody = z.infer<typeof BudgetBody>

export const SignedBudget = z.strictObject({
  b: z.instanceof(Uint8Array).refine(b => b.byteLength <= 32 * 1024, 'a body of at most 32 KiB'),
  s: z.instanceof(Uint8Array).refine(s => s.byteLength === 64, 'a 64-byte signature')
})
export interface SignedBudget { b: Uint8Array, s: Uint8Array }

export interface BudgetSigner {
  readonly peerId: string
  sign: (message: Uint8Array) => Promise<Uint8Array>
}

function signingBytes (body: Uint8Array): Uint8Array {
  return domainSigningBytes(BUDGET_DOMAIN, body)
}

export async function signBudget (body: Omit<BudgetBody, 'v' | 'by'>, signer: BudgetSigner): Promise<SignedBudget> {
  const parsed = BudgetBody.safeParse({ v: 1, ...body, by: signer.peerId })
  if (!parsed.success) throw new InvalidBudgetSettingError(`budget setting is invalid: ${parsed.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  const data = parsed.data
  const b = cborEncode(data.day == null ? { v: 1, hive: data.hive, by: data.by, at: data.at, agents: data.agents } : data)
  return { b, s: await signer.sign(signingBytes(b)) }
}

/** Checks shape and signature; says nothing about membership, which the caller checks. */
export async function openBudget (entry: unknown): Promise<BudgetBody> {
  const wire = SignedBudget.safeParse(entry)
  if (!wire.success) throw new InvalidBudgetSettingError('budget entry is not { b, s } bytes')
  let raw: unknown
  try {
    raw = cborDecode(wire.data.b, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new InvalidBudgetSettingError(`budget body is not CBOR: ${(err as Error).message}`)
  }
  const body = BudgetBody.safeParse(raw)
  if (!body.success) throw new InvalidBudgetSettingError('budget body does not match the schema')
  let key: Uint8Array
  try {
    const id = peerIdFromString(body.data.by)
    if (id.type !== 'Ed25519') throw new Error('not Ed25519')
    key = id.publicKey.raw
  } catch {
    throw new InvalidBudgetSettingError(`budget entry names a signer that is not an Ed25519 PeerId: ${body.data.by.slice(0, 80)}`)
  }
  const ok = await ed.verifyAsync(wire.data.s, signingBytes(wire.data.b), key, { zip215: false }).catch(() => false)
  if (!ok) throw new InvalidBudgetSettingError(`budget entry's signature does not verify for ${body.data.by}`)
  return body.data
}

/** The order of the register: later `at` wins, the signer's PeerId breaks a tie. */
export function newer (a: BudgetBody, b: BudgetBody | undefined): boolean {
  if (b == null) return true
  if (a.at !== b.at) return a.at > b.at
  return a.by > b.by
}

export function capsOf (body: BudgetBody | undefined): BudgetCaps {
  if (body == null) return { agents: {} }
  return { ...(body.day != null ? { dayMicroUsd: body.day } : {}), agents: { ...body.agents } }
}

/** Cbor-friendly form for a context's state (a JSON value): base64 strings. */
export function budgetToState (entry: SignedBudget): { b: string, s: string } {
  return { b: Buffer.from(entry.b).toString('base64'), s: Buffer.from(entry.s).toString('base64') }
}

export function budgetFromState (value: unknown): SignedBudget | undefined {
  const parsed = z.object({ b: z.string().max(64 * 1024), s: z.string().max(128) }).safeParse(value)
  if (!parsed.success) return undefined
  return { b: new Uint8Array(Buffer.from(parsed.data.b, 'base64')), s: new Uint8Array(Buffer.from(parsed.data.s, 'base64')) }
}
