// Signing and verification for everything the hive signs: DHT records, membership entries and
// the ledger. One signer shape, one verifier, one acceptance rule.
//
// The rule is RFC 8032 §5.1.7 with a canonical S: a signature whose S is not below the group
// order L is refused before any curve arithmetic, so no signature has a second, malleated
// form that also verifies (S + L would otherwise pass some implementations). Verification runs
// in Node's built-in OpenSSL, an order of magnitude faster than a pure-JS Ed25519 here; every DHT
// put and get verifies several records, so this is a hot path. Public keys are parsed once and
// kept in a bounded cache. test/protocol/wire/signing.test.ts cross-checks it against
// @noble/ed25519.

import { createHash, createPublicKey, verify as cryptoVerify } from 'node:crypto'
import type { KeyObject } from 'node:crypto'

/** A device that signs: its PeerId string and its Ed25519 signature over bytes. */
export interface Signer {
  readonly peerId: string
  sign: (message: Uint8Array) => Promise<Uint8Array>
}

export const ED25519_SIGNATURE_BYTES = 64
export const ED25519_PUBLIC_KEY_BYTES = 32

/** L, the order of the Ed25519 base point, little-endian as signatures carry S. */
const L_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10
])

/** True when the signature is 64 bytes and its S (the last 32, little-endian) is below L. */
export function hasCanonicalS (signature: Uint8Array): boolean {
  if (signature.byteLength !== ED25519_SIGNATURE_BYTES) return false
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i] as number
    const l = L_LE[i] as number
    if (s < l) return true
    if (s > l) return false
  }
  return false // S == L
}

/**
 * The bytes a signed entry's signature covers: `u32be(len D) || D || body`, with `D` the UTF-8
 * domain string that names what is signed (a member-list entry, a halt, a budget setting), so a
 * signature over one kind can never pass for another.
 */
export function domainSigningBytes (domain: string, body: Uint8Array): Uint8Array {
  const d = new TextEncoder().encode(domain)
  const out = new Uint8Array(4 + d.byteLength + body.byteLength)
  new DataView(out.buffer).setUint32(0, d.byteLength)
  out.set(d, 4)
  out.set(body, 4 + d.byteLength)
  return out
}

/** DER header of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')
const KEY_CACHE_LIMIT = 1024
const keyCache = new Map<string, KeyObject>()

/** A Node KeyObject for a raw 32-byte Ed25519 public key, cached; undefined when it is not one. */
export function ed25519KeyObject (publicKey: Uint8Array): KeyObject | undefined {
  if (publicKey.byteLength !== ED25519_PUBLIC_KEY_BYTES) return undefined
  const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex')
  let key = keyCache.get(id)
  if (key == null) {
    try {
      key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
    } catch {
      return undefined
    }
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.delete(keyCache.keys().next().value as string)
    keyCache.set(id, key)
  }
  return key
}

/**
 * Signatures that verified lately, by signature, with a digest of the key and message they
 * verified for. One signed record is checked several times on one node: a bid when it arrives,
 * again inside the award that carries it (from gossip, and when the DHT stores the award).
 * A hit needs the same signature, key and message (a SHA-256 of both, a few microseconds
 * against a verification's tens); failures are never remembered.
 */
const VERIFIED_CACHE_LIMIT = 4096
const verified = new Map<string, string>()

function verifiedDigest (publicKey: Uint8Array, message: Uint8Array): string {
  return createHash('sha256').update(publicKey).update(message).digest('base64')
}

/**
 * Remembers a signature this node just made as verified, so its own record is not checked
 * again when it comes back (its bid inside the submitter's award, for one). Only for what
 * this node signed itself: a signature from elsewhere must pass `verifyEd25519` to be remembered.
 */
export function rememberOwnSignature (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): void {
  if (!hasCanonicalS(signature)) return
  const id = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64')
  if (verified.size >= VERIFIED_CACHE_LIMIT) verified.delete(verified.keys().next().value as string)
  verified.set(id, verifiedDigest(publicKey, message))
}

/**
 * Ed25519 verification under the hive's one rule (canonical S). Never throws: anything that
 * is not a valid signature of `message` by `publicKey` is false.
 */
export function verifyEd25519 (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!hasCanonicalS(signature)) return false
  const id = Buffer.from(signature.buffer, signature.byteOffset, signature.byteLength).toString('base64')
  const digest = verifiedDigest(publicKey, message)
  if (verified.get(id) === digest) return true
  const key = ed25519KeyObject(publicKey)
  if (key == null) return false
  let ok: boolean
  try {
    ok = cryptoVerify(null, message, key, signature)
  } catch {
    return false
  }
  if (ok) {
    if (verified.size >= VERIFIED_CACHE_LIMIT) verified.delete(verified.keys().next().value as string)
    verified.set(id, digest)
  }
  return ok
}
