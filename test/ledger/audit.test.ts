import assert from 'node:assert/strict'
import { cp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import * as ed from '@noble/ed25519'
import { Level } from 'level'
import {
  LedgerStore, MAX_CONFLICTS_PER_SIGNER, createVerifyPool, decodeHead, encodeRecordBody, recordKey, RECORD_DOMAIN, signRecord, verifyAll,
  verifyChain, verifyEd25519
} from '../../ledger/index.ts'
import { content, makeSigner, tempDb, writeChain } from './fixtures.ts'
import type { ChainReport, LedgerRecord, VerifyPool } from '../../ledger/index.ts'
import type { TempDb, TestSigner } from './fixtures.ts'

const N = 8

interface Fixture {
  tmp: TempDb
  store: LedgerStore
  records: LedgerRecord[]
}

let alice: TestSigner
let bob: TestSigner
const open: Fixture[] = []

/** A fresh store holding alice's chain of N records appended through the store's API. */
async function chain (): Promise<Fixture> {
  const tmp = await tempDb('audit')
  const store = new LedgerStore(tmp.db.sublevel('ledger', { valueEncoding: 'view' }))
  await store.setSelf(alice.peerId.toString())
  const records: LedgerRecord[] = []
  for (let i = 0; i < N; i++) records.push(await store.append(alice, content(i)))
  const fixture = { tmp, store, records }
  open.push(fixture)
  return fixture
}

async function report (store: LedgerStore, signer = alice): Promise<ChainReport> {
  return verifyChain(store, signer.peerId.toString(), { pool: false })
}

function flip (bytes: Uint8Array, offset: number, bit = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes)
  out[offset] = (out[offset] as number) ^ bit
  return out
}

async function put (store: LedgerStore, seq: number, bytes: Uint8Array): Promise<void> {
  await store.records.put(recordKey(alice.peerId.toString(), seq), bytes)
}

async function del (store: LedgerStore, seq: number): Promise<void> {
  await store.records.del(recordKey(alice.peerId.toString(), seq))
}

// offsets in a record body (README table)
const PREV_AT = 9
const SIGNATURE_FROM_END = 64

describe('audit', () => {
  before(async () => {
    alice = await makeSigner(11)
    bob = await makeSigner(12)
  })

  after(async () => {
    for (const f of open) await f.tmp.close()
  })

  it('a chain appended through the API is clean, and verifyAll lists it as this device\'s', async () => {
    const { store, records } = await chain()
    const r = await report(store)
    assert.equal(r.ok, true, JSON.stringify(r.firstBad))
    assert.equal(r.checked, N)
    assert.equal(r.end, N - 1)
    assert.equal(r.head?.seq, N - 1)
    assert.equal(records[3]?.prev.toString(), records[2]?.hash.toString())
    const all = await verifyAll(store, { pool: false })
    assert.equal(all.ok, true)
    assert.equal(all.chains[0]?.self, true)
  })

  it('a flipped bit in a field is a bad signature at that record', async () => {
    const { store, records } = await chain()
    const target = records[3] as LedgerRecord
    const outputAt = encodeRecordBody(target).byteLength - 40 // inside the placement/output tail
    await put(store, 3, flip(target.bytes, outputAt))
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [3, 'bad-signature'])
  })

  it('a flipped bit in the time field is a bad signature at that record', async () => {
    const { store, records } = await chain()
    await put(store, 2, flip((records[2] as LedgerRecord).bytes, 48))
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [2, 'bad-signature'])
  })

  it('a flipped bit in the signature is a bad signature at that record', async () => {
    const { store, records } = await chain()
    const target = records[4] as LedgerRecord
    await put(store, 4, flip(target.bytes, target.bytes.byteLength - SIGNATURE_FROM_END + 10))
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [4, 'bad-signature'])
  })

  it('a flipped bit in the previous-hash is a broken link at that record', async () => {
    const { store, records } = await chain()
    await put(store, 5, flip((records[5] as LedgerRecord).bytes, PREV_AT + 7))
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [5, 'broken-link'])
  })

  it('a first record whose previous-hash is not 32 zero bytes is a broken link at seq 0', async () => {
    const { store, records } = await chain()
    await put(store, 0, flip((records[0] as LedgerRecord).bytes, PREV_AT + 31, 0x80))
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [0, 'broken-link'])
  })

  it('a deleted middle record is a gap at its position', async () => {
    const { store } = await chain()
    await del(store, 3)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [3, 'gap'])
  })

  it('two swapped records are reported as reordered at the first of them', async () => {
    const { store, records } = await chain()
    await put(store, 2, (records[3] as LedgerRecord).bytes)
    await put(store, 3, (records[2] as LedgerRecord).bytes)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [2, 'reordered'])
  })

  it('a duplicated record is reported at the position of the copy', async () => {
    const { store, records } = await chain()
    // insert a second copy of record 5 after it, shifting the rest up by one
    for (let seq = N - 1; seq >= 6; seq--) await put(store, seq + 1, (records[seq] as LedgerRecord).bytes)
    await put(store, 6, (records[5] as LedgerRecord).bytes)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [6, 'duplicate'])
  })

  it('a truncated tail is caught against the signed head held', async () => {
    const { store } = await chain()
    await del(store, 7)
    await del(store, 6)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [6, 'truncated'])
    assert.equal(r.end, 5)
  })

  it('an older copy of the store restored is a rollback once a newer own head comes back, and appending is refused', async () => {
    const tmp = await tempDb('rollback')
    const backup = `${tmp.dir}/backup`
    const location = join(tmp.dir, 'db')
    let db = tmp.db
    let store = new LedgerStore(db.sublevel('ledger', { valueEncoding: 'view' }))
    await store.setSelf(alice.peerId.toString())
    for (let i = 0; i < 5; i++) await store.append(alice, content(i))
    await db.close()
    await cp(location, backup, { recursive: true })
    db = new Level<string, Uint8Array>(location, { valueEncoding: 'view' })
    store = new LedgerStore(db.sublevel('ledger', { valueEncoding: 'view' }))
    for (let i = 5; i < N; i++) await store.append(alice, content(i))
    const newest = decodeHead(await store.headRaw(alice.peerId.toString()) as Uint8Array)
    assert.equal(newest.seq, N - 1)
    await db.close()
    await rm(location, { recursive: true })
    await cp(backup, location, { recursive: true })
    db = new Level<string, Uint8Array>(location, { valueEncoding: 'view' })
    store = new LedgerStore(db.sublevel('ledger', { valueEncoding: 'view' }))
    try {
      // the restored store looks clean on its own
      assert.equal((await report(store)).ok, true)
      // a peer hands back this device's newer head (as the exchange does on start)
      assert.equal(await store.acceptHead(newest), 'ahead')
      const r = await report(store)
      assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [5, 'rollback'])
      await assert.rejects(store.append(alice, content(99)), { name: 'LedgerRollback' })
    } finally {
      await db.close()
      await rm(tmp.dir, { recursive: true, force: true })
    }
  })

  it('two records signed by one key for one seq are a fork, both kept and reported as proof', async () => {
    const { store, records } = await chain()
    const original = records[3] as LedgerRecord
    const other = await signRecord({ ...content(3, { output: 'sha256:' + 'f'.repeat(64) }), seq: 3, prev: original.prev, signer: alice.peerId.toString() }, alice)
    const result = await store.acceptRecords(alice.peerId.toString(), 3, [other.bytes])
    assert.equal(result.fork, 3)
    assert.equal(result.stored, 0)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [3, 'fork'])
    assert.equal(r.forks.length, 1)
    const hashes = r.forks[0]?.records.map(x => x.hash).sort()
    assert.deepEqual(hashes, [Buffer.from(original.hash).toString('hex'), Buffer.from(other.hash).toString('hex')].sort())
  })

  it(`keeps at most ${MAX_CONFLICTS_PER_SIGNER} fork proofs per signer, however many conflicting records arrive`, async () => {
    assert.equal(MAX_CONFLICTS_PER_SIGNER, 16)
    const { store, records } = await chain()
    const original = records[3] as LedgerRecord
    const count = async (): Promise<number> => {
      let n = 0
      for await (const key of store.conflicts.keys()) if (key.startsWith(alice.peerId.toString())) n++
      return n
    }
    for (let i = 0; i < MAX_CONFLICTS_PER_SIGNER + 8; i++) {
      const other = await signRecord({ ...content(3, { output: 'sha256:' + i.toString(16).padStart(64, 'e') }), seq: 3, prev: original.prev, signer: alice.peerId.toString() }, alice)
      const result = await store.acceptRecords(alice.peerId.toString(), 3, [other.bytes])
      assert.equal(result.fork, 3, 'each one is still a fork')
    }
    assert.equal(await count(), MAX_CONFLICTS_PER_SIGNER)
    // the chain itself is untouched, and the fork is reported
    assert.deepEqual((await store.get(alice.peerId.toString(), 3))?.hash, original.hash)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [3, 'fork'])
  })

  it('a record whose signature is by another key than its signer field names is rejected, in a copy and at rest', async () => {
    const { store, records } = await chain()
    const fields = { ...content(N), seq: N, prev: (records[N - 1] as LedgerRecord).hash, signer: alice.peerId.toString() }
    const body = encodeRecordBody(fields)
    const signature = await bob.sign(new Uint8Array([...RECORD_DOMAIN, ...body]))
    const forged = new Uint8Array([...body, ...signature])
    await assert.rejects(store.acceptRecords(alice.peerId.toString(), N, [forged]), (err: Error & { reason?: string, seq?: number }) => {
      assert.equal(err.name, 'BadCopy')
      assert.equal(err.reason, 'bad-signature')
      assert.equal(err.seq, N)
      return true
    })
    assert.equal((await store.end(alice.peerId.toString()))?.seq, N - 1)
    await put(store, N, forged)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [N, 'bad-signature'])
  })

  it('a record of another signer stored in this chain is named as wrong-chain', async () => {
    const { store } = await chain()
    const foreign = await signRecord({ ...content(2), seq: 2, prev: new Uint8Array(32), signer: bob.peerId.toString() }, bob)
    await put(store, 2, foreign.bytes)
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [2, 'wrong-chain'])
  })

  it('a damaged stored head is a bad head', async () => {
    const { store } = await chain()
    const raw = await store.headRaw(alice.peerId.toString()) as Uint8Array
    await store.heads.put(alice.peerId.toString(), flip(raw, raw.byteLength - 5))
    const r = await report(store)
    assert.deepEqual([r.firstBad?.seq, r.firstBad?.reason], [N - 1, 'bad-head'])
  })

  it('a copy with one bad record is refused whole and nothing of it is stored', async () => {
    const { store } = await chain()
    const peer = await tempDb('copy')
    open.push({ tmp: peer, store, records: [] })
    const mirror = new LedgerStore(peer.db.sublevel('ledger', { valueEncoding: 'view' }))
    const copy = []
    for await (const chunk of store.chunks(alice.peerId.toString())) copy.push(...chunk.map(e => e.bytes))
    const bad = copy.map((b, i) => (i === 6 ? flip(b, 60) : b))
    await assert.rejects(mirror.acceptRecords(alice.peerId.toString(), 0, bad), { name: 'BadCopy' })
    assert.equal(await mirror.end(alice.peerId.toString()), null)
    const head = decodeHead(await store.headRaw(alice.peerId.toString()) as Uint8Array)
    const ok = await mirror.acceptRecords(alice.peerId.toString(), 0, copy, { head })
    assert.deepEqual([ok.stored, ok.end, ok.headStored], [N, N - 1, true])
    const r = await verifyChain(mirror, alice.peerId.toString(), { pool: false })
    assert.equal(r.ok, true)
    assert.equal(r.self, false)
  })
})

describe('bulk audit on worker threads', () => {
  let tmp: TempDb
  let store: LedgerStore
  let records: LedgerRecord[]
  let pool: VerifyPool
  const LONG = 2400

  before(async () => {
    alice ??= await makeSigner(11)
    tmp = await tempDb('bulk')
    store = new LedgerStore(tmp.db.sublevel('ledger', { valueEncoding: 'view' }))
    records = await writeChain(store, alice, LONG)
    pool = createVerifyPool(2)
  })

  after(async () => {
    await pool.close()
    await tmp.close()
  })

  it('finds the same first bad record in a long chain with workers as inline', async () => {
    const clean = await verifyChain(store, alice.peerId.toString(), { pool, sliceSize: 300 })
    assert.equal(clean.ok, true, JSON.stringify(clean.firstBad))
    assert.equal(clean.checked, LONG)
    // two faults in different slices: the earlier one must be named
    const first = 1234
    await put(store, 2000, flip((records[2000] as LedgerRecord).bytes, 50))
    await put(store, first, flip((records[first] as LedgerRecord).bytes, PREV_AT))
    const viaPool = await verifyChain(store, alice.peerId.toString(), { pool, sliceSize: 300 })
    const inline = await verifyChain(store, alice.peerId.toString(), { pool: false, sliceSize: 300 })
    assert.deepEqual([viaPool.firstBad?.seq, viaPool.firstBad?.reason], [first, 'broken-link'])
    assert.deepEqual(viaPool.firstBad, inline.firstBad)
    // a fault on a slice boundary (first record of a slice) is still named at the right place
    await put(store, first, (records[first] as LedgerRecord).bytes)
    await put(store, 900, flip((records[900] as LedgerRecord).bytes, PREV_AT + 31))
    const boundary = await verifyChain(store, alice.peerId.toString(), { pool, sliceSize: 300 })
    assert.deepEqual([boundary.firstBad?.seq, boundary.firstBad?.reason], [900, 'broken-link'])
  })

  it("Node's built-in Ed25519 agrees with noble on valid, corrupted and non-canonical signatures", () => {
    const L = (1n << 252n) + 27742317777372353535851937790883648493n
    const publicKey = alice.privateKey.publicKey.raw
    let seed = 7
    const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n }
    let agreed = 0
    for (let i = 0; i < 120; i++) {
      const record = records[i] as LedgerRecord
      let message: Uint8Array = new Uint8Array([...RECORD_DOMAIN, ...record.bytes.subarray(0, record.bytes.byteLength - 64)])
      let signature: Uint8Array = Uint8Array.from(record.signature)
      switch (i % 4) {
        case 1: signature = flip(signature, rand(64), 1 << rand(8)); break
        case 2: message = flip(message, rand(message.byteLength), 1 << rand(8)); break
        case 3: {
          let s = 0n
          for (let b = 31; b >= 0; b--) s = (s << 8n) | BigInt(signature[32 + b] as number)
          s += L
          for (let b = 0; b < 32; b++) signature[32 + b] = Number((s >> BigInt(8 * b)) & 0xffn)
          break
        }
      }
      const ours = verifyEd25519(publicKey, message, signature)
      const noble = ed.verify(signature, message, publicKey, { zip215: false })
      assert.equal(ours, noble, `record ${i} (case ${i % 4})`)
      assert.equal(ours, i % 4 === 0)
      agreed++
    }
    assert.equal(agreed, 120)
  })
})
