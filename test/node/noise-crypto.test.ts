// Noise's cipher with cached key objects (node/noise-crypto.ts): it seals exactly what noise's
// default crypto seals, both open each other's frames whatever their size or shape, a changed
// frame is refused, a key changed in place is never used stale, and a hive node's connections
// carry large frames through it.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it, mock } from 'node:test'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { Uint8ArrayList } from 'uint8arraylist'
import { NODE_CIPHER_MIN_BYTES, noiseCrypto } from '../../node/noise-crypto.ts'
import type { Frame } from '../../node/noise-crypto.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const SIZES = [0, 1, 100, NODE_CIPHER_MIN_BYTES - 1, NODE_CIPHER_MIN_BYTES, 1199, 1200, 4096, 65_519]

/** The bytes as a Buffer, whatever shape an implementation returned them in. */
function bytesOf (data: Uint8Array | { subarray: () => Uint8Array }): Buffer {
  return Buffer.from(data instanceof Uint8Array ? data : data.subarray())
}

/**
 * The same bytes as a list of three parts, as noise hands a long frame over (noise's list
 * class is another major version of the same package, with the same methods).
 */
function asList (data: Uint8Array): Frame {
  const a = Math.floor(data.byteLength / 3)
  return new Uint8ArrayList(data.subarray(0, a), data.subarray(a, 2 * a), data.subarray(2 * a)) as unknown as Frame
}

describe('noise crypto with cached key objects', () => {
  it('seals what the default seals, and each opens the other\'s frames, at every size and shape', () => {
    const k = randomBytes(32)
    const ad = randomBytes(32)
    for (const size of SIZES) {
      const nonce = randomBytes(12)
      const plaintext = randomBytes(size)
      for (const input of [plaintext, asList(plaintext)]) {
        const ours = bytesOf(noiseCrypto.chaCha20Poly1305Encrypt(input, nonce, ad, k))
        const theirs = bytesOf(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
        assert.deepEqual(ours, theirs, `${size} bytes (${input instanceof Uint8Array ? 'array' : 'list'}) seal alike`)
        assert.deepEqual(bytesOf(defaultCrypto.chaCha20Poly1305Decrypt(ours, nonce, ad, k)), plaintext, `the default opens our ${size} bytes`)
        for (const sealed of [theirs, asList(theirs)]) {
          assert.deepEqual(bytesOf(noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, k)), plaintext, `we open the default's ${size} bytes`)
        }
      }
    }
  })

  it('refuses a frame changed in transit, and one sealed under another key', () => {
    const k = randomBytes(32)
    const nonce = randomBytes(12)
    const ad = randomBytes(32)
    const sealed = bytesOf(noiseCrypto.chaCha20Poly1305Encrypt(randomBytes(4096), nonce, ad, k))
    const changed = Uint8Array.from(sealed)
    changed[100] = (changed[100] as number) ^ 1
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(changed, nonce, ad, k))
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, ad, randomBytes(32)))
    assert.throws(() => noiseCrypto.chaCha20Poly1305Decrypt(sealed, nonce, randomBytes(32), k))
  })

  it('a key array changed in place is used with its new bytes', () => {
    const k = randomBytes(32)
    const nonce = randomBytes(12)
    const ad = new Uint8Array(0)
    const plaintext = randomBytes(2048)
    const before = bytesOf(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
    k.set(randomBytes(32))
    const after = bytesOf(noiseCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k))
    assert.notDeepEqual(after, before)
    assert.deepEqual(after, bytesOf(defaultCrypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)))
  })

  it('a hive node\'s connections seal large frames with it', async (t) => {
    const sealed: number[] = []
    const original = noiseCrypto.chaCha20Poly1305Encrypt
    // noise takes the functions when a node is built: watch them before the nodes start
    mock.method(noiseCrypto, 'chaCha20Poly1305Encrypt', (...args: Parameters<typeof original>) => {
      sealed.push(args[0].byteLength)
      return original(...args)
    })
    t.after(() => { mock.restoreAll() })
    const mesh = await startMesh(2, { label: 'noise' })
    try {
      const [a, b] = mesh.nodes
      assert.ok(a != null && b != null)
      const value = randomBytes(48 * 1024).toString('base64')
      const context = await a.contexts.store.open('noise-large')
      await context.set('large', value)
      await waitFor(() => b.contexts.store.get('noise-large')?.get('large') === value, { timeoutMs: 30_000, message: 'the large value reached the second node' })
      assert.ok(sealed.some(n => n >= NODE_CIPHER_MIN_BYTES), `a frame of at least ${NODE_CIPHER_MIN_BYTES} bytes went through (largest ${Math.max(...sealed)})`)
    } finally {
      await mesh.stop()
    }
  })
})
