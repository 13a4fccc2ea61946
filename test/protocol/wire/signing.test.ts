import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import * as ed from '@noble/ed25519'
import { hasCanonicalS, rememberOwnSignature, verifyEd25519 } from '../../../protocol/wire/index.ts'

/** The order of the Ed25519 base point. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n

function readLE (bytes: Uint8Array): bigint {
  let n = 0n
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i] as number)
  return n
}

function writeLE (n: bigint, out: Uint8Array): void {
  let v = n
  for (let i = 0; i < out.length; i++) { out[i] = Number(v & 0xffn); v >>= 8n }
}

/** The same signature with S + L in place of S: the same point equation, a second encoding. */
function malleate (signature: Uint8Array): Uint8Array {
  const out = Uint8Array.from(signature)
  writeLE(readLE(signature.subarray(32)) + L, out.subarray(32))
  return out
}

async function keyPair (): Promise<{ secret: Uint8Array, publicKey: Uint8Array }> {
  const secret = ed.utils.randomSecretKey()
  return { secret, publicKey: await ed.getPublicKeyAsync(secret) }
}

/** The reference: @noble/ed25519 under strict RFC 8032 (not ZIP-215) rules. */
async function reference (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  return ed.verifyAsync(signature, message, publicKey, { zip215: false }).catch(() => false)
}

describe('Ed25519 verification (one rule: canonical S)', () => {
  it('accepts what it should and refuses a changed message, signature or key', async () => {
    const { secret, publicKey } = await keyPair()
    const other = await keyPair()
    const message = new TextEncoder().encode('hive-node/dht-record/v1 example')
    const signature = await ed.signAsync(message, secret)
    assert.equal(verifyEd25519(publicKey, message, signature), true)
    assert.equal(verifyEd25519(publicKey, Uint8Array.from([...message, 0]), signature), false)
    const flipped = Uint8Array.from(signature)
    flipped[5] = (flipped[5] as number) ^ 1
    assert.equal(verifyEd25519(publicKey, message, flipped), false)
    assert.equal(verifyEd25519(other.publicKey, message, signature), false)
  })

  it('remembers a verified signature only for the key and message it verified', async () => {
    const { secret, publicKey } = await keyPair()
    const other = await keyPair()
    const message = randomBytes(200)
    const signature = await ed.signAsync(message, secret)
    assert.equal(verifyEd25519(publicKey, message, signature), true)
    assert.equal(verifyEd25519(publicKey, message, signature), true, 'again, from the cache')
    const changed = Uint8Array.from(message)
    changed[199] = (changed[199] as number) ^ 1
    assert.equal(verifyEd25519(publicKey, changed, signature), false, 'same signature, another message')
    assert.equal(verifyEd25519(other.publicKey, message, signature), false, 'same signature, another key')
    assert.equal(verifyEd25519(publicKey, message, signature), true)
  })

  it('takes this node\'s own signature as verified only for the key and message it signed', async () => {
    const { secret, publicKey } = await keyPair()
    const other = await keyPair()
    const message = randomBytes(200)
    const signature = await ed.signAsync(message, secret)
    rememberOwnSignature(publicKey, message, signature)
    assert.equal(verifyEd25519(publicKey, message, signature), true)
    const changed = Uint8Array.from(message)
    changed[0] = (changed[0] as number) ^ 1
    assert.equal(verifyEd25519(publicKey, changed, signature), false, 'same signature, another message')
    assert.equal(verifyEd25519(other.publicKey, message, signature), false, 'same signature, another key')
    // a malleated signature is never remembered, so it is refused by the rule, not the cache
    rememberOwnSignature(publicKey, message, malleate(signature))
    assert.equal(verifyEd25519(publicKey, message, malleate(signature)), false)
  })

  it('refuses a signature whose S is not below L, which the reference refuses too', async () => {
    const { secret, publicKey } = await keyPair()
    const message = randomBytes(100)
    const signature = await ed.signAsync(message, secret)
    const malleated = malleate(signature)
    assert.notDeepEqual(malleated, signature)
    assert.equal(hasCanonicalS(signature), true)
    assert.equal(hasCanonicalS(malleated), false)
    assert.equal(verifyEd25519(publicKey, message, malleated), false)
    assert.equal(await reference(publicKey, message, malleated), false)
    // S == L exactly, and S of all ones, are both out of range
    const atL = Uint8Array.from(signature)
    writeLE(L, atL.subarray(32))
    assert.equal(hasCanonicalS(atL), false)
    const justBelow = Uint8Array.from(signature)
    writeLE(L - 1n, justBelow.subarray(32))
    assert.equal(hasCanonicalS(justBelow), true)
    assert.equal(hasCanonicalS(Uint8Array.from([...signature.subarray(0, 32), ...new Uint8Array(32).fill(0xff)])), false)
  })

  it('never throws: wrong lengths and a key that is not a point are plain refusals', async () => {
    const { secret, publicKey } = await keyPair()
    const message = randomBytes(10)
    const signature = await ed.signAsync(message, secret)
    assert.equal(verifyEd25519(publicKey.subarray(1), message, signature), false)
    assert.equal(verifyEd25519(publicKey, message, signature.subarray(1)), false)
    assert.equal(verifyEd25519(new Uint8Array(32).fill(0xff), message, signature), false)
    assert.equal(verifyEd25519(new Uint8Array(0), message, new Uint8Array(0)), false)
  })

  it('agrees with @noble/ed25519 on valid, tampered and malleated signatures (random corpus of 240 cases)', async () => {
    let agreed = 0
    let accepted = 0
    for (let i = 0; i < 60; i++) {
      const { secret, publicKey } = await keyPair()
      const message = randomBytes(i * 7)
      const signature = await ed.signAsync(message, secret)
      const cases: Array<[Uint8Array, Uint8Array, Uint8Array]> = [[publicKey, message, signature], [publicKey, message, malleate(signature)]]
      const tampered = Uint8Array.from(signature)
      tampered[i % 64] = (tampered[i % 64] as number) ^ (1 << (i % 8))
      cases.push([publicKey, message, tampered])
      const badKey = Uint8Array.from(publicKey)
      badKey[i % 32] = (badKey[i % 32] as number) ^ 0x10
      cases.push([badKey, message, signature])
      for (const [key, msg, sig] of cases) {
        const ours = verifyEd25519(key, msg, sig)
        assert.equal(ours, await reference(key, msg, sig), `case ${i}: key ${Buffer.from(key).toString('hex')} sig ${Buffer.from(sig).toString('hex')}`)
        agreed++
        if (ours) accepted++
      }
    }
    assert.equal(agreed, 240)
    // every honest signature verified, and nothing else did
    assert.equal(accepted, 60)
  })
})
