// A peer's head taken from the network (LedgerStore.acceptHead). Every device re-announces every
// head it holds, so most heads that arrive are ones already held: those are answered from memory,
// without a signature check or a store read, and anything else still takes the whole path.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { LedgerStore, decodeHead, recordKey, signHead } from '../../ledger/index.ts'
import { makeSigner, tempDb, writeChain } from './fixtures.ts'
import type { LedgerRecord, SignedHead } from '../../ledger/index.ts'
import type { TempDb, TestSigner } from './fixtures.ts'

/** Counts the store's record reads from now on. */
function countReads (store: LedgerStore): () => number {
  const original = store.records.get.bind(store.records)
  let n = 0
  store.records.get = (async (...args: Parameters<typeof original>) => { n++; return original(...args) }) as typeof store.records.get
  return () => n
}

describe('a head taken from a peer', () => {
  let tmp: TempDb
  let store: LedgerStore
  let bob: TestSigner
  let head: SignedHead
  let records: LedgerRecord[]

  before(async () => {
    tmp = await tempDb('heads')
    store = new LedgerStore(tmp.db.sublevel('ledger', { valueEncoding: 'view' }))
    const alice = await makeSigner(1)
    bob = await makeSigner(2)
    await store.setSelf(alice.peerId.toString())
    records = await writeChain(store, bob, 4)
    const last = records[records.length - 1]!
    head = await signHead(last.seq, last.hash, bob)
  })

  after(async () => {
    await tmp?.close()
  })

  it('is held once its record is; the same head again is answered without reading the store', async () => {
    const reads = countReads(store)
    assert.equal(await store.acceptHead(head), 'held')
    const first = reads()
    assert.ok(first > 0, 'the first time, the record it names is read')
    assert.equal(await store.acceptHead(decodeHead(Uint8Array.from(head.bytes))), 'held')
    assert.equal(reads(), first, 'the same bytes again read nothing')
  })

  it('with other bytes for the same seq (a bad signature) is still refused', async () => {
    const bytes = Uint8Array.from(head.bytes)
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x01
    await assert.rejects(store.acceptHead(decodeHead(bytes)), { name: 'BadHead' })
  })

  it('that is older than the one held is still held, and read', async () => {
    const older = await signHead(1, records[1]!.hash, bob)
    const reads = countReads(store)
    assert.equal(await store.acceptHead(older), 'held')
    assert.ok(reads() > 0)
  })
})

describe('this device\'s own head handed back by a peer', () => {
  it('is read every time, so a store that lost records finds out', async () => {
    const tmp = await tempDb('own-head')
    try {
      const store = new LedgerStore(tmp.db.sublevel('ledger', { valueEncoding: 'view' }))
      const alice = await makeSigner(1)
      await store.setSelf(alice.peerId.toString())
      const records = await writeChain(store, alice, 3)
      const head = await signHead(2, records[2]!.hash, alice)
      assert.equal(await store.acceptHead(head), 'held')
      assert.equal(await store.acceptHead(head), 'held')
      // the store loses its newest record (an older copy put back): the same head is now ahead
      await store.records.del(recordKey(alice.peerId.toString(), 2))
      assert.equal(await store.acceptHead(head), 'ahead')
    } finally {
      await tmp.close()
    }
  })
})
