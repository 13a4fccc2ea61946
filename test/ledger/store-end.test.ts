// The end of a chain as the store finds it: remembered after a read or a copy, and believed only
// while the store still shows it as the end, so records written, removed or replaced under it
// (a store restored or damaged on disk) are seen at the next read, as a scan would see them.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { LedgerStore, recordKey, signRecord } from '../../ledger/index.ts'
import { content, fastSigner, makeSigner, tempDb, writeChain } from './fixtures.ts'
import type { TempDb, TestSigner } from './fixtures.ts'

describe('ledger store: the end of a chain', () => {
  let tmp: TempDb
  let store: LedgerStore
  let alice: TestSigner

  before(async () => {
    tmp = await tempDb('end')
    store = new LedgerStore(tmp.db.sublevel('ledger', { valueEncoding: 'view' }))
    alice = await makeSigner(1)
  })

  after(async () => { await tmp.close() })

  it('follows records added, removed and replaced under it, and those a copy brings', async () => {
    const signer = alice.peerId.toString()
    assert.equal(await store.end(signer), null)
    const first = await writeChain(store, alice, 3)
    assert.deepEqual(await store.end(signer), { seq: 2, hash: first[2]!.hash })
    assert.deepEqual(await store.end(signer), { seq: 2, hash: first[2]!.hash }, 'the same end again')

    // written straight to disk after the end was found
    const more = await writeChain(store, alice, 2, { from: 3, prev: first[2]!.hash })
    assert.deepEqual(await store.end(signer), { seq: 4, hash: more[1]!.hash })

    // removed under it
    await store.records.del(recordKey(signer, 4))
    assert.deepEqual(await store.end(signer), { seq: 3, hash: more[0]!.hash })

    // replaced under it by another record for the same seq
    const other = await signRecord({ ...content(3, { status: 'error' }), seq: 3, prev: first[2]!.hash, signer }, fastSigner(alice))
    await store.records.put(recordKey(signer, 3), other.bytes)
    assert.deepEqual(await store.end(signer), { seq: 3, hash: other.hash })

    // a copy that follows: its last record is the end
    const next = await signRecord({ ...content(4), seq: 4, prev: other.hash, signer }, fastSigner(alice))
    const accepted = await store.acceptRecords(signer, 4, [next.bytes])
    assert.equal(accepted.stored, 1)
    assert.deepEqual(await store.end(signer), { seq: 4, hash: next.hash })
  })
})
