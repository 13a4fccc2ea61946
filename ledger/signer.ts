// The device key as a ledger signer, signing with Node's built-in Ed25519 (OpenSSL), the same
// implementation the audit verifies with. Ed25519 is deterministic (RFC 8032 5.1.6), so this
// signer produces exactly the bytes @noble/ed25519 produces for the same seed and message; the
// test suite checks that. Signing here costs tens of microseconds where noble's pure-JS signing
// costs about a millisecond, which is most of an append.

import { createPrivateKey, sign as cryptoSign } from 'node:crypto'
import { UnsupportedSignerError } from './errors.ts'
import type { RecordSigner } from './record.ts'

/** DER header of a PKCS#8 Ed25519 private key (RFC 8410): the 32-byte seed follows. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')

/** An Ed25519 `sign(message)` for a 32-byte RFC 8032 seed, through node:crypto. */
export function ed25519Sign (seed: Uint8Array): (message: Uint8Array) => Promise<Uint8Array> {
  if (!(seed instanceof Uint8Array) || seed.byteLength !== 32) {
    throw new UnsupportedSignerError('an Ed25519 private key (seed) is 32 bytes')
  }
  const key = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  return async (message) => {
    const signature = cryptoSign(null, message, key)
    return new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength)
  }
}

/** A RecordSigner for the device key: its PeerId and its 32-byte seed. */
export function createEd25519Signer (peerId: { toString: () => string }, seed: Uint8Array): RecordSigner {
  return { peerId, sign: ed25519Sign(seed) }
}
