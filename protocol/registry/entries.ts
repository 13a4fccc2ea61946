// Signed catalog entries: the atoms of the hive's agent registry (PROTOCOL.md).
//
// An entry is a signed entry of the wire kit (../wire/signed-entries.ts): a canonical CBOR body
// signed by a member's Ed25519 device key, carried as { b: body bytes, s: signature }, its id the
// hex SHA-256 of the body. The signature's domain, REGISTRY_ENTRY_DOMAIN, no other signature of
// the hive uses, so no membership entry, halt, record or bid signature is ever valid as one.

import { z } from 'zod'
import { DIGEST_PATTERN } from '../wire/ids.ts'
import { signedEntryCodec } from '../wire/signed-entries.ts'
import { InvalidAgentRefError, InvalidCatalogEntryError } from './errors.ts'
import type { SignedEntry, WireSignedEntry } from '../wire/signed-entries.ts'
import type { Signer } from '../wire/signing.ts'

export const REGISTRY_ENTRY_DOMAIN = 'hive-node/registry-entry/v1'
/** Bytes of one entry's body: room for a manifest with a few tools and their parameter schemas. */
export const MAX_REGISTRY_BODY_BYTES = 16 * 1024

// ---- names, versions, tags and references ----
/** An agent's name, as its manifest spells it. */
export const AGENT_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/
/** A semantic version such as 1.0.0 or 0.2.0-rc.1. */
export const AGENT_VERSION_PATTERN = /^\d{1,9}\.\d{1,9}\.\d{1,9}(?:-[0-9A-Za-z.-]{1,32})?$/
/** A tag such as `latest`: starts with a letter, so it is never read as a version. */
export const AGENT_TAG_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/
export const MAX_TAGS = 8
export const MAX_YANK_REASON_CHARS = 500

export interface AgentRef {
  name: string
  /** A version, a tag, or absent (the `latest` tag, else the greatest version not yanked). */
  version?: string
  tag?: string
}

/** Whether `text` has the shape of a reference (`NAME`, `NAME@VERSION`, `NAME@TAG`). */
export function isAgentRefText (text: unknown): text is string {
  if (typeof text !== 'string' || text.length > 64 + 1 + 64) return false
  const at = text.indexOf('@')
  const name = at < 0 ? text : text.slice(0, at)
  const rest = at < 0 ? undefined : text.slice(at + 1)
  return AGENT_NAME_PATTERN.test(name) && (rest === undefined || AGENT_VERSION_PATTERN.test(rest) || AGENT_TAG_PATTERN.test(rest))
}

/** Parses `NAME`, `NAME@VERSION` or `NAME@TAG`; the error says which part is wrong and what it should be. */
export function parseAgentRef (text: string): AgentRef {
  const at = text.indexOf('@')
  const name = at < 0 ? text : text.slice(0, at)
  const rest = at < 0 ? undefined : text.slice(at + 1)
  if (!AGENT_NAME_PATTERN.test(name)) {
    throw new InvalidAgentRefError(`"${text.slice(0, 140)}": the name "${name.slice(0, 80)}" is not an agent name (lowercase letters, digits, ".", "_" or "-", at most 64, starting with a letter or digit); write NAME or NAME@VERSION, e.g. notes@0.1.0`)
  }
  if (rest === undefined) return { name }
  if (AGENT_VERSION_PATTERN.test(rest)) return { name, version: rest }
  if (AGENT_TAG_PATTERN.test(rest)) return { name, tag: rest }
  throw new InvalidAgentRefError(`"${text.slice(0, 140)}": "${rest.slice(0, 80)}" is neither a version (such as 1.0.0) nor a tag (such as latest)`)
}

export function formatAgentRef (ref: AgentRef): string {
  return ref.version != null ? `${ref.name}@${ref.version}` : ref.tag != null ? `${ref.name}@${ref.tag}` : ref.name
}

/** Orders versions as semantic versions do (a pre-release before its release); -1, 0 or 1. */
export function compareVersions (a: string, b: string): number {
  const split = (v: string): { core: number[], pre?: string } => {
    const dash = v.indexOf('-')
    const core = (dash < 0 ? v : v.slice(0, dash)).split('.').map(Number)
    return dash < 0 ? { core } : { core, pre: v.slice(dash + 1) }
  }
  const x = split(a)
  const y = split(b)
  for (let i = 0; i < 3; i++) {
    const d = (x.core[i] ?? 0) - (y.core[i] ?? 0)
    if (d !== 0) return d < 0 ? -1 : 1
  }
  if (x.pre === y.pre) return 0
  if (x.pre == null) return 1
  if (y.pre == null) return -1
  const px = x.pre.split('.')
  const py = y.pre.split('.')
  for (let i = 0; i < Math.max(px.length, py.length); i++) {
    const p = px[i]
    const q = py[i]
    if (p === undefined) return -1
    if (q === undefined) return 1
    if (p === q) continue
    const np = /^\d+$/.test(p)
    const nq = /^\d+$/.test(q)
    if (np && nq) return Number(p) < Number(q) ? -1 : 1
    if (np !== nq) return np ? -1 : 1
    return p < q ? -1 : 1
  }
  return 0
}

// ---- bodies ----
const JsonObject = z.record(z.string().max(128), z.unknown())

/** What a catalog entry says of the agent's manifest: enough to list, show and check tool parameters. */
export const ManifestSummarySchema = z.strictObject({
  description: z.string().max(1000),
  permissions: z.array(z.string().min(1).max(300)).max(64),
  limits: z.strictObject({ timeoutMs: z.number().int().min(1), memoryMiB: z.number().int().min(1) }),
  models: z.array(z.string().min(1).max(200)).max(32).optional(),
  tools: z.array(z.strictObject({
    name: z.string().min(1).max(64),
    description: z.string().max(500),
    parameters: JsonObject
  })).max(16).optional()
})
export type ManifestSummary = z.infer<typeof ManifestSummarySchema>

const Common = {
  v: z.literal(1),
  hive: z.string().regex(/^[a-z2-7]{26}$/),
  by: z.string().min(1).max(128),
  /** Milliseconds since the epoch on the signer's clock: the entry's time, and the first tie-break. */
  at: z.number().int().nonnegative().max(2 ** 48),
  name: z.string().regex(AGENT_NAME_PATTERN),
  version: z.string().regex(AGENT_VERSION_PATTERN),
  digest: z.string().regex(DIGEST_PATTERN)
}

export const PublishBodySchema = z.strictObject({
  ...Common,
  type: z.literal('publish'),
  /** Bytes of the component. */
  size: z.number().int().min(1).max(2 ** 40),
  manifest: ManifestSummarySchema,
  tags: z.array(z.string().regex(AGENT_TAG_PATTERN)).max(MAX_TAGS).refine(t => new Set(t).size === t.length, 'each tag at most once')
})

export const YankBodySchema = z.strictObject({
  ...Common,
  type: z.literal('yank'),
  reason: z.string().max(MAX_YANK_REASON_CHARS).optional()
})

export const CatalogBodySchema = z.discriminatedUnion('type', [PublishBodySchema, YankBodySchema])
export type PublishBody = z.infer<typeof PublishBodySchema>
export type YankBody = z.infer<typeof YankBodySchema>
export type CatalogBody = z.infer<typeof CatalogBodySchema>

export type WireCatalogEntry = WireSignedEntry

export type CatalogEntryId = string & { readonly __brand: 'CatalogEntryId' }

export type CatalogEntry<B extends CatalogBody = CatalogBody> = SignedEntry<B, CatalogEntryId>

const CATALOG_ENTRY = signedEntryCodec<CatalogBody, CatalogEntryId>({
  what: 'catalog entry',
  domain: REGISTRY_ENTRY_DOMAIN,
  schema: CatalogBodySchema,
  error: InvalidCatalogEntryError,
  maxBodyBytes: MAX_REGISTRY_BODY_BYTES,
  // reached only when signing: an opened body larger than the bound is refused before decoding
  checkSize: (body, bytes) => {
    if (bytes.byteLength <= MAX_REGISTRY_BODY_BYTES) return
    throw new InvalidCatalogEntryError(`the ${body.type} entry for ${body.name}@${body.version} is ${bytes.byteLength} bytes, more than the ${MAX_REGISTRY_BODY_BYTES} an entry may be; shorten the manifest's description or its tools' parameter schemas`)
  },
  describe: (body) => `${body.type} ${body.name}@${body.version}`
})

/** Decodes and checks one entry: size, shape, canonical encoding, and the signature of `by`. */
export const openCatalogEntry = CATALOG_ENTRY.open
/** The stored form, CBOR { b, s }. */
export const encodeCatalogEntry = CATALOG_ENTRY.encode
/** Decodes an entry from its stored form (checked as one from the network). */
export const decodeCatalogEntry = CATALOG_ENTRY.decode
export const WireCatalogEntrySchema = CATALOG_ENTRY.wireSchema

export type PublishFields = Omit<PublishBody, 'v' | 'by' | 'type'>
export type YankFields = Omit<YankBody, 'v' | 'by' | 'type'>

/** Builds and signs a publish or yank entry as `signer`. */
export async function createCatalogEntry (body: ({ type: 'publish' } & PublishFields) | ({ type: 'yank' } & YankFields), signer: Signer): Promise<CatalogEntry> {
  return CATALOG_ENTRY.create(body, signer)
}

/**
 * The order between two publishes of one NAME@VERSION: the earlier (by the signer's clock, then
 * the signer, then the id) is the version; any other is a conflict. Every member orders any two
 * entries alike, so every member that holds the same entries resolves the same bytes.
 */
export function comparePublishes (a: CatalogEntry, b: CatalogEntry): number {
  if (a.body.at !== b.body.at) return a.body.at - b.body.at
  if (a.body.by !== b.body.by) return a.body.by < b.body.by ? -1 : 1
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0
}
