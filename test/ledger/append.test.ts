// Appends: the node:crypto signer against @noble/ed25519 (Ed25519 is deterministic, so the bytes
// must be the same), and group commit on a real LevelDB: concurrent appends land in one chain in
// few synced batches, none is acknowledged before its batch is written, and a batch that fails
// acknowledges none of its appends and stores none of them.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import * as ed from '@noble/ed25519'
import {
  GENESIS_PREV, LedgerStore, bytesEqual, createEd25519Signer, decodeHead, ed25519Sign, fromHex, toHex, verifyChain
} from '../../ledger/index.ts'
import { content, makeSigner, tempDb } from './fixtures.ts'
import type { LedgerDatabase, LedgerRecord, RecordSigner } from '../../ledger/index.ts'
import type { TempDb, TestSigner } from './fixtures.ts'

// RFC 8032 section 7.1, TEST 1 to 3: seed, message, signature
const RFC8032 = [
  ['9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', '', 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b'],
  ['4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb', '72', '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00'],
  ['c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7', 'af82', '6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a']
] as const

describe('node:crypto signer', () => {
  it('passes RFC 8032 TEST 1 to 3', async () => {
    for (const [seed, msg, sig] of RFC8032) {
      assert.equal(toHex(await ed25519Sign(fromHex(seed))(fromHex(msg))), sig)
    }
  })

  it('makes the same signature bytes as @noble/ed25519 for random keys and messages', async () => {
    for (let i = 0; i < 50; i++) {
      const seed = new Uint8Array(randomBytes(32))
      const message = new Uint8Array(randomBytes(i * 37))
      assert.equal(toHex(await ed25519Sign(seed)(message)), toHex(ed.sign(message, seed)), `seed ${toHex(seed)}`)
    }
  })

  it('signs the same records and heads as the noble signer', async () => {
    const key = await makeSigner(7)
    const fast = createEd25519Signer(key.peerId, key.seed)
    const slow = await tempDb('append-noble')
    const quick = await tempDb('append-crypto')
    try {
      const a = new LedgerStore(slow.db)
      const b = new LedgerStore(quick.db)
      for (let i = 0; i < 3; i++) {
        const x = await a.append(key, content(i))
        const y = await b.append(fast, content(i))
        assert.equal(toHex(y.bytes), toHex(x.bytes))
      }
      const id = key.peerId.toString()
      assert.equal(toHex(await b.headRaw(id) ?? new Uint8Array()), toHex(await a.headRaw(id) ?? new Uint8Array()))
    } finally {
      await slow.close()
      await quick.close()
    }
  })

  it('refuses a seed that is not 32 bytes', () => {
    assert.throws(() => ed25519Sign(new Uint8Array(31)), { name: 'UnsupportedSigner' })
  })
})

/** A LevelDB handle whose batches a test can hold back or fail, recording what each carried. */
function watched (db: TempDb['db']): { handle: LedgerDatabase, batches: number[], hold: () => { reached: Promise<void>, release: () => void }, failNext: () => void } {
  const batches: number[] = []
  let held: { reached: () => void, gate: Promise<void> } | undefined
  let fail = false
  const handle: LedgerDatabase = {
    sublevel: (name, options) => db.sublevel(name, options as never),
    batch: async (operations, options) => {
      batches.push(operations.filter((op: { sublevel?: unknown }) => op.sublevel === store(handle)).length)
      if (held != null) {
        const h = held
        held = undefined
        h.reached()
        await h.gate
      }
      if (fail) {
        fail = false
        throw new Error('disk full')
      }
      await db.batch(operations, options)
    }
  }
  return {
    handle,
    batches,
    hold: () => {
      const reached = Promise.withResolvers<void>()
      const gate = Promise.withResolvers<void>()
      held = { reached: reached.resolve, gate: gate.promise }
      return { reached: reached.promise, release: gate.resolve }
    },
    failNext: () => { fail = true }
  }
}

// the records sublevel of the store made on a handle, so batches can count record puts
const stores = new WeakMap<LedgerDatabase, LedgerStore>()
function store (handle: LedgerDatabase): unknown {
  return stores.get(handle)?.records
}

describe('group commit', () => {
  let key: TestSigner
  let signer: RecordSigner
  let tmp: TempDb

  before(async () => {
    key = await makeSigner(8)
    signer = createEd25519Signer(key.peerId, key.seed)
  })

  after(async () => {
    await tmp?.close()
  })

  it('lands concurrent appends in one chain, in few synced batches, that verifies clean', async () => {
    tmp = await tempDb('append-concurrent')
    const w = watched(tmp.db)
    const s = new LedgerStore(w.handle)
    stores.set(w.handle, s)
    await s.append(signer, content(0))
    // hold the next batch on its way to disk, so the appends behind it pile up
    const held = w.hold()
    const first = s.append(signer, content(1))
    await held.reached
    const rest = Array.from({ length: 40 }, async (_, i) => s.append(signer, content(2 + i)))
    held.release()
    const records = [await first, ...await Promise.all(rest)]

    const id = key.peerId.toString()
    assert.deepEqual(records.map(r => r.seq).sort((a, b) => a - b), Array.from({ length: 41 }, (_, i) => i + 1))
    assert.equal(records.every(r => r.signer === id), true)
    // the 40 appends that waited went to disk together
    assert.deepEqual(w.batches, [1, 1, 40])
    // each record links to the one before it, and the head names the last
    const listed = await s.list(id)
    assert.equal(listed.length, 42)
    let prev = GENESIS_PREV
    for (const [i, entry] of listed.entries()) {
      const record = entry.record as LedgerRecord
      assert.equal(record.seq, i)
      assert.equal(bytesEqual(record.prev, prev), true, `record ${i} links to the one before`)
      prev = record.hash
    }
    const head = decodeHead(await s.headRaw(id) ?? new Uint8Array())
    assert.equal(head.seq, 41)
    assert.equal(bytesEqual(head.hash, prev), true)
    const report = await verifyChain(s, id, { self: id, pool: false })
    assert.equal(report.ok, true)
    assert.equal(report.checked, 42)
    await tmp.close()
  })

  it('acknowledges no append before its batch is written', async () => {
    tmp = await tempDb('append-ack')
    const w = watched(tmp.db)
    const s = new LedgerStore(w.handle)
    const held = w.hold()
    const settled: number[] = []
    const pending = Array.from({ length: 5 }, async (_, i) => {
      const record = await s.append(signer, content(i))
      settled.push(record.seq)
      return record
    })
    await held.reached
    // the batch is on its way to disk and not written: nothing may have resolved
    assert.deepEqual(settled, [])
    assert.equal(await s.end(key.peerId.toString()), null)
    held.release()
    await Promise.all(pending)
    assert.deepEqual(settled.sort(), [0, 1, 2, 3, 4])
    await tmp.close()
  })

  it('fails every append of a batch that fails to write, stores none of them, and appends on after', async () => {
    tmp = await tempDb('append-fail')
    const w = watched(tmp.db)
    const s = new LedgerStore(w.handle)
    stores.set(w.handle, s)
    const id = key.peerId.toString()
    await s.append(signer, content(0))
    const headBefore = await s.headRaw(id)
    const held = w.hold()
    w.failNext()
    const doomed = Array.from({ length: 6 }, async (_, i) => s.append(signer, content(1 + i)))
    await held.reached
    held.release()
    const outcomes = await Promise.allSettled(doomed)
    assert.deepEqual(outcomes.map(o => o.status), Array(6).fill('rejected'))
    for (const o of outcomes) assert.equal((o as PromiseRejectedResult).reason.message, 'disk full')
    assert.deepEqual(w.batches.slice(1), [6])
    assert.equal((await s.end(id))?.seq, 0)
    assert.equal(toHex(await s.headRaw(id) ?? new Uint8Array()), toHex(headBefore ?? new Uint8Array()))

    // the chain goes on from where the disk has it, with no gap
    const next = await Promise.all([s.append(signer, content(7)), s.append(signer, content(8))])
    assert.deepEqual(next.map(r => r.seq), [1, 2])
    const report = await verifyChain(s, id, { self: id, pool: false })
    assert.equal(report.ok, true)
    assert.equal(report.checked, 3)
    await tmp.close()
  })

  it('refuses an append with bad fields alone, without failing the batch it would have joined', async () => {
    tmp = await tempDb('append-bad')
    const s = new LedgerStore(tmp.db)
    const good = [s.append(signer, content(0)), s.append(signer, content(1))]
    await assert.rejects(s.append(signer, content(2, { task: 'x'.repeat(300) })), { name: 'InvalidRecordFields' })
    assert.deepEqual((await Promise.all(good)).map(r => r.seq), [0, 1])
    await tmp.close()
  })
})
