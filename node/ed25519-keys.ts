// libp2p's Ed25519 public keys verifying under a key object made once per key. @libp2p/crypto's
// Ed25519PublicKey.verify hands Node a JWK built from the raw key bytes at every call, and Node
// turns it into a key object each time: it checks whether the JWK is a KeyObject or a CryptoKey
// (in Node 24 both checks throw and catch inside Node), encodes the key, parses it. gossipsub
// verifies every message it accepts this way, so in a virtual hive of 50 devices, as a burst of
// tasks started, a third of the time spent checking signatures went to making the key object.
// Here the key object is made once per key (the bounded cache the hive's own records use,
// protocol/wire/signing.ts) and Node's verify runs on it: the same call on the same key, so
// what verifies is exactly what verified before (test/node/ed25519-keys.test.ts checks both
// against each other). Noise's handshake and identify's signed records use the same class.

import { verify as cryptoVerify } from 'node:crypto'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { ed25519KeyObject } from '../protocol/wire/signing.ts'
import type { Uint8ArrayList } from 'uint8arraylist'

const PUBLIC_KEY_BYTES = 32
const SIGNATURE_BYTES = 64

type Verify = (this: { raw: Uint8Array }, data: Uint8Array | Uint8ArrayList, sig: Uint8Array, options?: { signal?: AbortSignal }) => boolean | Promise<boolean>

/** The class every Ed25519 public key of libp2p is made from, found through an instance. */
function ed25519PublicKeyPrototype (): { verify: Verify } {
  const proto = Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(PUBLIC_KEY_BYTES))) as { verify?: Verify } | null
  if (proto == null || typeof proto.verify !== 'function') throw new Error('this @libp2p/crypto build has no Ed25519PublicKey.verify: its key objects cannot be cached')
  return proto as { verify: Verify }
}

let original: Verify | undefined

/** Installs the cached key objects on every libp2p Ed25519 public key; idempotent. */
export function cachedEd25519Keys (): void {
  const proto = ed25519PublicKeyPrototype()
  if ((proto.verify as { cached?: boolean }).cached === true) return
  const libp2pVerify = original = proto.verify
  const patched: Verify = function (data, sig, options) {
    const raw = this.raw
    // anything unusual takes libp2p's own path, with its own errors
    if (!(raw instanceof Uint8Array) || raw.byteLength !== PUBLIC_KEY_BYTES || !(sig instanceof Uint8Array) || sig.byteLength !== SIGNATURE_BYTES) {
      return libp2pVerify.call(this, data, sig, options)
    }
    const key = ed25519KeyObject(raw)
    if (key == null) return libp2pVerify.call(this, data, sig, options)
    options?.signal?.throwIfAborted()
    return cryptoVerify(null, data instanceof Uint8Array ? data : data.subarray(), key, sig)
  }
  ;(patched as { cached?: boolean }).cached = true
  proto.verify = patched
}

/** libp2p's own verify, as it was before `cachedEd25519Keys` (for tests that compare the two). */
export function libp2pEd25519Verify (): Verify {
  const proto = ed25519PublicKeyPrototype()
  return original ?? proto.verify
}
