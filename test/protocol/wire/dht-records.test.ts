// The size bound of a signed DHT record (16 KiB): a record over it is neither made nor opened,
// and the check comes before anything is decoded or verified. A record that came from its own
// publisher (`from`) is taken without its signature checked, and never remembered as checked.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { MAX_DHT_RECORD_BYTES, createRecord, hiveRecordKey, openRecord } from '../../../protocol/wire/index.ts'
import type { RecordSigner } from '../../../protocol/wire/index.ts'

async function signer (): Promise<RecordSigner> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (message) => key.sign(message) }
}

describe('a DHT record\'s size', () => {
  it(`is at most ${MAX_DHT_RECORD_BYTES} bytes: one that fits is made and opened, one byte of payload more is refused both ways`, async () => {
    assert.equal(MAX_DHT_RECORD_BYTES, 16 * 1024)
    const me = await signer()
    const key = hiveRecordKey('test', 'size')
    // the largest payload that fits: grow it until the envelope passes the bound
    let size = MAX_DHT_RECORD_BYTES - 512
    let fits: Uint8Array | undefined
    for (;; size++) {
      try {
        fits = await createRecord(key, new Uint8Array(size), me, 1)
      } catch (err) {
        assert.equal((err as Error).name, 'InvalidRecord')
        assert.match((err as Error).message, new RegExp(`exceeds ${MAX_DHT_RECORD_BYTES}`))
        break
      }
    }
    assert.ok(fits != null && fits.byteLength <= MAX_DHT_RECORD_BYTES && fits.byteLength > MAX_DHT_RECORD_BYTES - 8)
    const opened = await openRecord(key, fits)
    assert.equal(opened.payload.byteLength, size - 1)
    // what another peer might send: over the bound, refused before it is decoded
    const over = new Uint8Array(MAX_DHT_RECORD_BYTES + 1).fill(0xff)
    await assert.rejects(openRecord(key, over), { name: 'InvalidRecord', message: `record of ${MAX_DHT_RECORD_BYTES + 1} bytes exceeds ${MAX_DHT_RECORD_BYTES}` })
  })
})

describe('a DHT record from its own publisher', () => {
  it('is taken without its signature checked only from that publisher, and never remembered as checked', async () => {
    const me = await signer()
    const other = await signer()
    const key = hiveRecordKey('test', 'from')
    const good = await createRecord(key, new Uint8Array([1, 2, 3]), me, 1)
    // the same record with a bit of its signature flipped
    const envelope = cborDecode(good) as { sig: Uint8Array }
    envelope.sig[10]! ^= 0x01
    const bad = cborEncode(envelope)
    await assert.rejects(openRecord(key, bad), /signature does not verify/)
    await assert.rejects(openRecord(key, bad, { from: other.peerId }), /signature does not verify/, 'from another peer it is checked')
    const taken = await openRecord(key, bad, { from: me.peerId })
    assert.equal(taken.publisher, me.peerId)
    assert.deepEqual(taken.payload, new Uint8Array([1, 2, 3]))
    assert.equal(Object.isFrozen(taken), false, 'not the shared object of a checked record')
    await assert.rejects(openRecord(key, bad), /signature does not verify/, 'and not remembered: opened again without `from`, it is refused')
    const checked = await openRecord(key, good, { from: me.peerId })
    assert.equal((await openRecord(key, good)).publisher, me.peerId, 'a good record opens either way')
    assert.equal(checked.publisher, me.peerId)
  })
})
