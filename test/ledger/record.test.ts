import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import * as ed from '@noble/ed25519'
import {
  GENESIS_PREV, MAX_RECORD_BYTES, RECORD_DOMAIN, decodeHead, decodeRecord, encodeRecordBody, fromHex,
  hasCanonicalS, recordFromJson, recordToJson, signHead, signRecord, signerBytes, signerFromBytes, signerPublicKey, toHex,
  verifyEd25519, verifyHeadSignature, verifyRecordSignature
} from '../../ledger/index.ts'
import { content, makeSigner } from './fixtures.ts'

// RFC 8032 section 7.1: secret key (seed), public key, message, signature.
const RFC8032 = [
  {
    name: 'TEST 1',
    seed: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    pub: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    msg: '',
    sig: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'
  },
  {
    name: 'TEST 2',
    seed: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    pub: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    msg: '72',
    sig: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'
  },
  {
    name: 'TEST 3',
    seed: 'c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7',
    pub: 'fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025',
    msg: 'af82',
    sig: '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a'
  },
  {
    name: 'TEST SHA(abc)',
    seed: '833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42',
    pub: 'ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf',
    msg: 'ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f',
    sig: 'dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66431e0303dca179c138ac17ad9bef1177331a704'
  }
]

// L = 2^252 + 27742317777372353535851937790883648493
const L = (1n << 252n) + 27742317777372353535851937790883648493n

function withS (signature: Uint8Array, s: bigint): Uint8Array {
  const out = Uint8Array.from(signature)
  for (let i = 0; i < 32; i++) out[32 + i] = Number((s >> BigInt(8 * i)) & 0xffn)
  return out
}

function readS (signature: Uint8Array): bigint {
  let s = 0n
  for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(signature[32 + i] as number)
  return s
}

describe('Ed25519', () => {
  for (const v of RFC8032) {
    it(`passes RFC 8032 ${v.name} with noble signing and both verifiers`, () => {
      const seed = fromHex(v.seed)
      const pub = fromHex(v.pub)
      const msg = fromHex(v.msg)
      const sig = fromHex(v.sig)
      assert.equal(toHex(ed.getPublicKey(seed)), v.pub)
      assert.equal(toHex(ed.sign(msg, seed)), v.sig)
      assert.equal(verifyEd25519(pub, msg, sig), true)
      assert.equal(ed.verify(sig, msg, pub, { zip215: false }), true)
      const flipped = Uint8Array.from(sig)
      flipped[5] = (flipped[5] as number) ^ 0x01
      assert.equal(verifyEd25519(pub, msg, flipped), false)
    })
  }

  it('refuses a non-canonical signature (S + L, same point equation) and S == L', () => {
    const v = RFC8032[0]!
    const pub = fromHex(v.pub)
    const msg = fromHex(v.msg)
    const sig = fromHex(v.sig)
    const s = readS(sig)
    assert.ok(s < L)
    const malleated = withS(sig, s + L)
    assert.ok(s + L < (1n << 256n))
    assert.equal(hasCanonicalS(sig), true)
    assert.equal(hasCanonicalS(malleated), false)
    assert.equal(hasCanonicalS(withS(sig, L)), false)
    assert.equal(hasCanonicalS(withS(sig, L - 1n)), true)
    assert.equal(verifyEd25519(pub, msg, malleated), false)
    // noble's RFC 8032 mode agrees, so the rule is not ours alone
    assert.equal(ed.verify(malleated, msg, pub, { zip215: false }), false)
  })
})

describe('record codec', () => {
  it('encodes, signs, decodes and hashes the whole encoding including the signature', async () => {
    const signer = await makeSigner(1)
    const record = await signRecord({ ...content(0), seq: 0, prev: GENESIS_PREV, signer: signer.peerId.toString() }, signer)
    assert.equal(record.signer, signer.peerId.toString())
    assert.equal(toHex(record.hash), createHash('sha256').update(record.bytes).digest('hex'))
    const again = decodeRecord(record.bytes)
    assert.deepEqual(recordToJson(again), recordToJson(record))
    assert.equal(verifyRecordSignature(record), true)
    // the body starts with the version byte and ends where the signature begins
    const body = encodeRecordBody(record)
    assert.equal(body[0], 1)
    assert.deepEqual(record.bytes.subarray(0, body.byteLength), body)
    assert.equal(record.bytes.byteLength, body.byteLength + 64)
    // the signature covers the domain string then the body
    assert.equal(ed.verify(record.signature, new Uint8Array([...RECORD_DOMAIN, ...body]), signerPublicKey(record.signer), { zip215: false }), true)
  })

  it('round-trips through the JSON listing form', async () => {
    const signer = await makeSigner(2)
    const record = await signRecord({ ...content(7, { placement: 'ünïcödé ✓ placement' }), seq: 7, prev: new Uint8Array(32).fill(9), signer: signer.peerId.toString() }, signer)
    const json = JSON.parse(JSON.stringify(recordToJson(record)))
    const rebuilt = recordFromJson(json)
    assert.deepEqual(rebuilt.bytes, record.bytes)
    assert.deepEqual(rebuilt.hash, record.hash)
  })

  it('rejects a record whose signature was made by another key than its signer field names', async () => {
    const named = await makeSigner(3)
    const actual = await makeSigner(4)
    const fields = { ...content(0), seq: 0, prev: GENESIS_PREV, signer: named.peerId.toString() }
    await assert.rejects(signRecord(fields, actual), { name: 'InvalidRecordFields' })
    // forge one by hand: named signer in the field, other key's signature
    const body = encodeRecordBody(fields)
    const signature = await actual.sign(new Uint8Array([...RECORD_DOMAIN, ...body]))
    const forged = decodeRecord(new Uint8Array([...body, ...signature]))
    assert.equal(forged.signer, named.peerId.toString())
    assert.equal(verifyRecordSignature(forged), false)
  })

  it('refuses malformed encodings with MalformedRecord', async () => {
    const signer = await makeSigner(5)
    const record = await signRecord({ ...content(0), seq: 0, prev: GENESIS_PREV, signer: signer.peerId.toString() }, signer)
    assert.throws(() => decodeRecord(record.bytes.subarray(0, record.bytes.byteLength - 1)), { name: 'MalformedRecord' })
    assert.throws(() => decodeRecord(new Uint8Array([...record.bytes, 0])), { name: 'MalformedRecord' })
    const badVersion = Uint8Array.from(record.bytes)
    badVersion[0] = 2
    assert.throws(() => decodeRecord(badVersion), { name: 'MalformedRecord' })
    const badSigner = Uint8Array.from(record.bytes)
    badSigner[49 + 2] = 0x01 // identity multihash code byte
    assert.throws(() => decodeRecord(badSigner), { name: 'MalformedRecord' })
    assert.throws(() => decodeRecord(new Uint8Array(0)), { name: 'MalformedRecord' })
  })

  it('refuses fields the encoding cannot carry', async () => {
    const signer = await makeSigner(6)
    const base = { ...content(0), seq: 0, prev: GENESIS_PREV, signer: signer.peerId.toString() }
    assert.throws(() => encodeRecordBody({ ...base, placement: 'x'.repeat(1025) }), { name: 'InvalidRecordFields' })
    assert.throws(() => encodeRecordBody({ ...base, task: '\ud800' }), { name: 'InvalidRecordFields' })
    assert.throws(() => encodeRecordBody({ ...base, seq: -1 }), { name: 'InvalidRecordFields' })
    assert.throws(() => encodeRecordBody({ ...base, signer: 'not-a-peer-id' }), { name: 'UnsupportedSigner' })
    // the largest record stays within the documented bound
    const big = await signRecord({
      ...base,
      task: 't'.repeat(256),
      agent: 'a'.repeat(128),
      input: 'i'.repeat(128),
      output: 'o'.repeat(128),
      status: 's'.repeat(32),
      placement: 'p'.repeat(1024)
    }, signer)
    assert.equal(big.bytes.byteLength, MAX_RECORD_BYTES)
  })

  it('reads and writes signer PeerIds exactly as libp2p does', async () => {
    for (let n = 20; n < 26; n++) {
      const { peerId } = await makeSigner(n)
      const bytes = peerId.toMultihash().bytes
      assert.deepEqual(signerBytes(peerId.toString()), bytes)
      assert.equal(signerFromBytes(bytes), peerId.toString())
      assert.deepEqual(signerPublicKey(peerId.toString()), peerId.publicKey?.raw)
    }
    assert.throws(() => signerBytes('QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N'), { name: 'UnsupportedSigner' })
    assert.throws(() => signerBytes('12D3KooW0OIl'), { name: 'UnsupportedSigner' })
  })

  it('signs and verifies chain heads under their own domain', async () => {
    const signer = await makeSigner(7)
    const head = await signHead(41, new Uint8Array(32).fill(3), signer)
    const decoded = decodeHead(head.bytes)
    assert.equal(decoded.seq, 41)
    assert.equal(decoded.signer, signer.peerId.toString())
    assert.equal(verifyHeadSignature(decoded), true)
    const tampered = Uint8Array.from(head.bytes)
    tampered[tampered.byteLength - 70] = (tampered[tampered.byteLength - 70] as number) ^ 0x80
    assert.equal(verifyHeadSignature(decodeHead(tampered)), false)
  })
})
