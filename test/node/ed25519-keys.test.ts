// libp2p's Ed25519 public keys with cached key objects (node/ed25519-keys.ts): every signature
// verifies or fails exactly as under libp2p's own verify (a good one, a changed message, a
// changed signature, another key, a non-canonical S, a message as a list of chunks), and a hive
// node's gossip is checked through it.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair, publicKeyFromRaw } from '@libp2p/crypto/keys'
import { Uint8ArrayList } from 'uint8arraylist'
import { cachedEd25519Keys, libp2pEd25519Verify } from '../../node/ed25519-keys.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

/** The group order L, little-endian, as Ed25519 signatures carry S. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n

function plusL (signature: Uint8Array): Uint8Array {
  let s = 0n
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i]!)
  s += L
  const out = Uint8Array.from(signature)
  for (let i = 0; i < 32; i++) { out[32 + i] = Number(s & 0xffn); s >>= 8n }
  return out
}

describe('Ed25519 public keys with cached key objects', () => {
  it('accepts and refuses exactly what libp2p\'s own verify does', async () => {
    cachedEd25519Keys()
    const original = libp2pEd25519Verify()
    const keys = await Promise.all(Array.from({ length: 4 }, async () => generateKeyPair('Ed25519')))
    for (const [i, key] of keys.entries()) {
      const message = new TextEncoder().encode(`message ${i} `.repeat(i * 40 + 1))
      const signature = await key.sign(message)
      const other = keys[(i + 1) % keys.length]!.publicKey
      const changedMessage = Uint8Array.from(message); changedMessage[0]! ^= 1
      const changedSignature = Uint8Array.from(signature); changedSignature[5]! ^= 1
      const cases: Array<[string, { raw: Uint8Array }, Uint8Array | Uint8ArrayList, Uint8Array, boolean]> = [
        ['a good signature', key.publicKey, message, signature, true],
        ['the same, from a key made again from its bytes', publicKeyFromRaw(key.publicKey.raw), message, signature, true],
        ['a message in chunks', key.publicKey, new Uint8ArrayList(message.subarray(0, 3), message.subarray(3)), signature, true],
        ['a changed message', key.publicKey, changedMessage, signature, false],
        ['a changed signature', key.publicKey, message, changedSignature, false],
        ['another key', other, message, signature, false],
        ['S + L', key.publicKey, message, plusL(signature), false]
      ]
      for (const [what, publicKey, data, sig, expected] of cases) {
        const ours = (publicKey as { raw: Uint8Array, verify: typeof original }).verify(data, sig)
        const theirs = original.call(publicKey, data, sig)
        assert.equal(ours, theirs, `${what}: as libp2p's verify`)
        assert.equal(ours, expected, what)
      }
    }
  })

  it('is what a hive node\'s libp2p verifies with, gossip included', async () => {
    const mesh = await startMesh(2, { label: 'ed25519' })
    try {
      const [a, b] = mesh.nodes
      assert.ok(a != null && b != null)
      const proto = Object.getPrototypeOf(publicKeyFromRaw(new Uint8Array(32))) as { verify: { cached?: boolean } }
      assert.equal(proto.verify.cached, true, 'building a node installs the cached key objects')
      // each hears the other's capability report: gossip whose signature was checked on arrival
      await waitFor(() => a.capabilities.get(b.peerId.toString()) != null && b.capabilities.get(a.peerId.toString()) != null, { timeoutMs: 30_000, message: 'capability reports cross over gossip' })
    } finally {
      await mesh.stop()
    }
  })
})
