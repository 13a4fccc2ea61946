// Noise's ChaCha20-Poly1305 with each session key held as a key object. @chainsafe/libp2p-noise
// seals a frame under 1200 bytes with its WebAssembly cipher and a larger one with Node's,
// handing Node the raw key bytes each time: Node then checks whether those bytes are a
// KeyObject or a CryptoKey, and in Node 24 both checks fail by throwing and catching inside
// Node, about 10 µs a frame on each side. In profiles of a virtual hive of 24 devices those
// checks were 4 % of all CPU. Here each session key is made a key object once, and the frames
// Node seals (the same ones as before, from 1200 bytes) are sealed under it: to seal and open a
// 4 KiB frame takes 28 µs instead of 63, 64 KiB 132 µs instead of 158 (`npm run bench --
// noise`). Smaller frames stay on the WebAssembly cipher, which is faster there. The bytes on
// the wire are the same: only how the key reaches the cipher changes.
//
// Noise keeps one key array per cipher state for the life of a connection, so the key object
// is found by that array; it is used only while the array still holds the bytes it was made
// from (a 32-byte compare), so a key changed in place is never used stale.

import { createCipheriv, createDecipheriv, createSecretKey } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { KeyObject } from 'node:crypto'

const CHACHA = 'chacha20-poly1305'
const TAG_BYTES = 16
/** Frames of at least this many bytes go to Node's cipher (noise's own threshold), with the key object. */
export const NODE_CIPHER_MIN_BYTES = 1200

const keys = new WeakMap<Uint8Array, { bytes: Buffer, key: KeyObject }>()

function keyObjectOf (k: Uint8Array): KeyObject {
  const held = keys.get(k)
  if (held != null && held.bytes.equals(k)) return held.key
  const bytes = Buffer.from(k)
  const key = createSecretKey(bytes)
  keys.set(k, { bytes, key })
  return key
}

/** A frame as noise hands it over: one array, or a list of parts. */
export type Frame = Parameters<ICryptoInterface['chaCha20Poly1305Encrypt']>[0]

/** The frame's bytes in one piece: a frame noise hands over in parts is sealed part by part, then joined once. */
function joined (parts: Buffer[]): Buffer {
  return parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts)
}

function encrypt (plaintext: Frame, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array {
  const cipher = createCipheriv(CHACHA, keyObjectOf(k), nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(ad, { plaintextLength: plaintext.byteLength })
  const parts: Buffer[] = []
  if (plaintext instanceof Uint8Array) parts.push(cipher.update(plaintext))
  else for (const part of plaintext) parts.push(cipher.update(part))
  parts.push(cipher.final(), cipher.getAuthTag())
  return joined(parts)
}

function decrypt (ciphertext: Frame, nonce: Uint8Array, ad: Uint8Array, k: Uint8Array): Uint8Array {
  const decipher = createDecipheriv(CHACHA, keyObjectOf(k), nonce, { authTagLength: TAG_BYTES })
  const end = ciphertext.byteLength - TAG_BYTES
  decipher.setAAD(ad, { plaintextLength: end })
  decipher.setAuthTag(ciphertext.subarray(end))
  const parts: Buffer[] = []
  if (ciphertext instanceof Uint8Array) parts.push(decipher.update(ciphertext.subarray(0, end)))
  else for (const part of ciphertext.sublist(0, end)) parts.push(decipher.update(part))
  const final = decipher.final()
  if (final.byteLength > 0) parts.push(final)
  return joined(parts)
}

/** Noise's default crypto, with frames from NODE_CIPHER_MIN_BYTES sealed by Node under a cached key object. */
export const noiseCrypto: ICryptoInterface = {
  ...defaultCrypto,
  chaCha20Poly1305Encrypt (plaintext, nonce, ad, k) {
    if (plaintext.byteLength < NODE_CIPHER_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    return encrypt(plaintext, nonce, ad, k)
  },
  chaCha20Poly1305Decrypt (ciphertext, nonce, ad, k, dst) {
    if (ciphertext.byteLength < NODE_CIPHER_MIN_BYTES) return defaultCrypto.chaCha20Poly1305Decrypt(ciphertext, nonce, ad, k, dst)
    return decrypt(ciphertext, nonce, ad, k)
  }
}
