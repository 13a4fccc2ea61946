// Record format version 3: a run's http requests, the total and per granted origin. Written only
// when a run made requests; bounded (32 origins, 300 bytes each) on encode and on decode; records
// of all three versions verify side by side; records kept from before version 3 still verify;
// and a peer that does not say it reads version 3 gets a chain up to its first version-3 record.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import {
  FORMAT_VERSION_NET, GENESIS_PREV, LEDGER_PROTOCOL, LedgerStore, MAX_LEDGER_FRAME_BYTES, MAX_RECORD_V2_BYTES, MAX_RECORD_V3_BYTES,
  NET_USAGE_LIMITS, RECORDS_PER_FRAME, RecordsResponse, RecordsResponseV3, createEd25519Signer, decodeRecord, encodeRecordBody,
  fitNetUsage, fromHex, netUsageText, recordFrames, recordKey, recordFromJson, recordToJson, signRecord, toHex, verifyChain, verifyRecordSignature
} from '../../ledger/index.ts'
import { NET_LIMITS } from '../../sandbox/net.ts'
import { dialFramed, encodeFrame } from '../../protocol/wire/index.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { content, makeSigner, tempDb } from './fixtures.ts'
import type { LlmUsage, NetUsage, RecordFields } from '../../ledger/index.ts'
import type { Mesh } from '../helpers/mesh.ts'

const NET: NetUsage = {
  requests: 9,
  origins: [{ origin: 'http://127.0.0.1:8080', requests: 3 }, { origin: 'https://api.example.org', requests: 6 }]
}
const LLM: LlmUsage[] = [{ route: 'local', calls: 2, tokensIn: 10, tokensOut: 20 }]

async function base (): Promise<{ fields: RecordFields, signer: Awaited<ReturnType<typeof makeSigner>> }> {
  const signer = await makeSigner(33)
  return { signer, fields: { ...content(0), seq: 0, prev: GENESIS_PREV, signer: signer.peerId.toString() } }
}

/** A body with a hand-edited tail and 64 bytes for a signature, so only the decoder's rules can refuse it. */
function withTail (body: Uint8Array, cut: number, tail: number[]): Uint8Array {
  const head = body.subarray(0, body.byteLength - cut)
  const out = new Uint8Array(head.byteLength + tail.length + 64)
  out.set(head)
  out.set(tail, head.byteLength)
  return out
}

const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]
const str = (s: string): number[] => [s.length >> 8, s.length & 255, ...Buffer.from(s, 'latin1')]

describe('record format version 3', () => {
  it('writes version 3 only for a run that made requests, origins in byte order, and the JSON form rebuilds it', async () => {
    const { fields, signer } = await base()
    assert.equal(encodeRecordBody({ ...fields, net: { requests: 0, origins: [] } })[0], 1)
    assert.equal(encodeRecordBody({ ...fields, llm: LLM, net: { requests: 0, origins: [] } })[0], 2)
    const record = await signRecord({ ...fields, net: { requests: 9, origins: [NET.origins[1]!, NET.origins[0]!] } }, signer)
    assert.equal(record.bytes[0], FORMAT_VERSION_NET)
    assert.deepEqual(record.net, NET)
    assert.equal(record.llm, undefined)
    assert.equal(verifyRecordSignature(record), true)
    // the usage list is there and empty: 1 byte, then total, count, entries
    const v1 = await signRecord(fields, signer)
    assert.equal(record.bytes.byteLength, v1.bytes.byteLength + 1 + 4 + 1 + (2 + 21 + 4) + (2 + 23 + 4))
    const both = await signRecord({ ...fields, llm: LLM, net: NET }, signer)
    assert.deepEqual([both.llm, both.net], [LLM, NET])
    for (const r of [record, both]) {
      const json = recordToJson(r)
      assert.deepEqual(json.net, NET)
      assert.equal(toHex(recordFromJson(json).bytes), toHex(r.bytes))
    }
    assert.equal('net' in recordToJson(v1), false)
    assert.equal(netUsageText(NET), '9 http requests: http://127.0.0.1:8080 ×3, https://api.example.org ×6')
    assert.equal(netUsageText({ requests: 5, origins: [{ origin: 'https://a.example', requests: 1 }] }), '5 http requests: https://a.example ×1, 4 to origins not listed')
  })

  it(`states its bound once: ${NET_USAGE_LIMITS.maxOrigins} origins of ${NET_USAGE_LIMITS.maxOriginBytes} bytes, what a manifest may name; the largest record is ${MAX_RECORD_V3_BYTES} bytes`, async () => {
    assert.deepEqual(NET_USAGE_LIMITS, { maxOrigins: 32, maxOriginBytes: 300 })
    assert.equal(NET_LIMITS.maxOrigins, NET_USAGE_LIMITS.maxOrigins)
    assert.equal(NET_LIMITS.maxOriginChars, NET_USAGE_LIMITS.maxOriginBytes)
    const { fields, signer } = await base()
    const origins = Array.from({ length: 32 }, (_, i) => ({ origin: `https://${String(i).padStart(2, '0')}${'h'.repeat(286)}.org`, requests: 0xffffffff >>> 5 }))
    assert.ok(origins.every(o => o.origin.length === 300))
    const big = await signRecord({
      ...fields,
      task: 't'.repeat(256),
      agent: 'a'.repeat(128),
      input: 'i'.repeat(128),
      output: 'o'.repeat(128),
      status: 's'.repeat(32),
      placement: 'p'.repeat(1024),
      llm: [{ route: 'local', calls: 1, tokensIn: 1, tokensOut: 1 }, { route: 'peer', calls: 1, tokensIn: 1, tokensOut: 1 }, { route: 'cloud', calls: 1, tokensIn: 1, tokensOut: 1 }],
      net: { requests: 0xffffffff, origins }
    }, signer)
    assert.equal(big.bytes.byteLength, MAX_RECORD_V3_BYTES)
    assert.equal(MAX_RECORD_V3_BYTES, 11_698)
  })

  it('refuses requests the encoding cannot carry, with InvalidRecordFields', async () => {
    const { fields } = await base()
    const o = (origin: string, requests = 1): { origin: string, requests: number } => ({ origin, requests })
    const bad: unknown[] = [
      { requests: 33, origins: Array.from({ length: 33 }, (_, i) => o(`https://o${i}.example`)) },
      { requests: 1, origins: [o(`https://${'x'.repeat(293)}.org`)] },
      { requests: 1, origins: [o('https://bücher.example')] },
      { requests: 1, origins: [o('https://a.example/ path')] },
      { requests: 1, origins: [o('')] },
      { requests: 2, origins: [o('https://a.example'), o('https://a.example')] },
      { requests: 1, origins: [o('https://a.example', 0)] },
      { requests: 1, origins: [o('https://a.example', 2)] },
      { requests: 1, origins: [] },
      { requests: 0, origins: [o('https://a.example')] },
      { requests: 0x100000000, origins: [o('https://a.example')] },
      { requests: 1.5, origins: [o('https://a.example')] },
      { requests: 1 },
      'https://a.example'
    ]
    for (const net of bad) {
      assert.throws(() => encodeRecordBody({ ...fields, net: net as NetUsage }), { name: 'InvalidRecordFields' }, JSON.stringify(net).slice(0, 120))
    }
  })

  it('refuses a forged or oversized origins field with MalformedRecord, and the audit names the record', async () => {
    const { fields } = await base()
    const body = encodeRecordBody({ ...fields, net: { requests: 3, origins: [{ origin: 'https://a.example', requests: 3 }] } })
    // the requests part: total u32, count u8, one entry (2 + 17 + 4)
    const tail = 4 + 1 + 2 + 17 + 4
    const decodes = (bytes: Uint8Array): void => { decodeRecord(bytes) }
    decodes(withTail(body, tail, [...u32(3), 1, ...str('https://a.example'), ...u32(3)]))
    const long = `https://${'x'.repeat(289)}.org`
    assert.equal(long.length, 301)
    for (const [what, bytes] of [
      ['0 requests in all', [...u32(0), 1, ...str('https://a.example'), ...u32(0)]],
      ['no origin', [...u32(3), 0]],
      ['33 origins', [...u32(33), 33, ...Array.from({ length: 33 }, (_, i) => [...str(`https://o${String(i).padStart(2, '0')}.example`), ...u32(1)]).flat()]],
      ['an origin of 301 bytes', [...u32(3), 1, ...str(long), ...u32(3)]],
      ['an empty origin', [...u32(3), 1, 0, 0, ...u32(3)]],
      ['a byte outside printable ASCII', [...u32(3), 1, ...str('https://a.exampl\x00'), ...u32(3)]],
      ['a space', [...u32(3), 1, ...str('https://a.examp e'), ...u32(3)]],
      ['origins out of order', [...u32(2), 2, ...str('https://b.example'), ...u32(1), ...str('https://a.example'), ...u32(1)]],
      ['an origin twice', [...u32(2), 2, ...str('https://a.example'), ...u32(1), ...str('https://a.example'), ...u32(1)]],
      ['an origin with 0 requests', [...u32(3), 1, ...str('https://a.example'), ...u32(0)]],
      ['more listed than counted', [...u32(2), 1, ...str('https://a.example'), ...u32(3)]],
      ['a length past the record', [...u32(3), 1, 0xff, 0xff]],
      ['truncated', [...u32(3)]]
    ] as const) {
      assert.throws(() => decodes(withTail(body, tail, [...bytes])), { name: 'MalformedRecord' }, what)
    }
    // a version-2 body marked as version 3 lacks the requests
    const v2 = encodeRecordBody({ ...fields, llm: LLM })
    const marked = new Uint8Array(v2.byteLength + 64)
    marked.set(v2)
    marked[0] = 3
    assert.throws(() => decodes(marked), { name: 'MalformedRecord' })
    // an exchange frame refuses a record larger than the largest of any version
    assert.equal(RecordsResponseV3.safeParse({ type: 'records', from: 0, records: [new Uint8Array(MAX_RECORD_V3_BYTES)] }).success, true)
    assert.equal(RecordsResponseV3.safeParse({ type: 'records', from: 0, records: [new Uint8Array(MAX_RECORD_V3_BYTES + 1)] }).success, false)
  })

  it('a changed request count is a bad signature in the audit; a forged origins list in a peer\'s copy is refused and nothing of it stored', async () => {
    const key = await makeSigner(34)
    const signer = createEd25519Signer(key.peerId, key.seed)
    const id = key.peerId.toString()
    const tmp = await tempDb('format-v3-forged')
    try {
      const store = new LedgerStore(tmp.db)
      for (let i = 0; i < 3; i++) await store.append(signer, { ...content(i), net: NET })
      const held = (await store.list(id)).map(l => l.bytes)
      // a copy whose record 1 says 5 requests to one origin where the run made 6: same length, signed by nobody
      const forged = held.map(b => Uint8Array.from(b))
      const r1 = forged[1]!
      const at = r1.byteLength - 64 - 4
      r1.set(u32(5), at)
      assert.equal(decodeRecord(r1).net?.origins[1]?.requests, 5)
      const copyDb = await tempDb('format-v3-copy')
      try {
        const other = new LedgerStore(copyDb.db)
        await assert.rejects(other.acceptRecords(id, 0, forged), { name: 'BadCopy', reason: 'bad-signature' })
        assert.equal((await other.end(id)) ?? null, null)
      } finally {
        await copyDb.close()
      }
      // the same change made on disk is what the audit reports
      await store.records.put(recordKey(id, 1), r1)
      const report = await verifyChain(store, id, { self: id, pool: false })
      assert.equal(report.ok, false)
      assert.deepEqual([report.firstBad?.seq, report.firstBad?.reason], [1, 'bad-signature'])
    } finally {
      await tmp.close()
    }
  })

  it('a chain of all three versions verifies, in the main thread and in the audit workers', async () => {
    const key = await makeSigner(35)
    const signer = createEd25519Signer(key.peerId, key.seed)
    const tmp = await tempDb('format-v3')
    try {
      const store = new LedgerStore(tmp.db)
      const records = await Promise.all(Array.from({ length: 6 }, async (_, i) => store.append(signer, {
        ...content(i),
        ...(i % 3 === 1 ? { llm: LLM } : {}),
        ...(i % 3 === 2 ? { net: { requests: i, origins: [{ origin: 'https://a.example', requests: i }] } } : {}),
        ...(i === 5 ? { llm: LLM } : {})
      })))
      assert.deepEqual(records.map(r => r.bytes[0]), [1, 2, 3, 1, 2, 3])
      const id = key.peerId.toString()
      for (const pool of [false, undefined] as const) {
        const report = await verifyChain(store, id, { self: id, pool, sliceSize: 2 })
        assert.equal(report.ok, true)
        assert.equal(report.checked, 6)
      }
      assert.deepEqual((await store.list(id)).map(l => l.record?.net?.requests), [undefined, undefined, 2, undefined, undefined, 5])
      assert.deepEqual((await store.list(id))[5]?.record?.llm, LLM)
    } finally {
      await tmp.close()
    }
  })

  it('old records still verify: a chain of versions 1 and 2 kept from before version 3 decodes to the same bytes and passes the audit', async () => {
    const fixture = JSON.parse(await readFile(new URL('./fixtures/chain-v1-v2.json', import.meta.url), 'utf8')) as { signer: string, records: string[] }
    const bytes = fixture.records.map(h => fromHex(h))
    assert.deepEqual(bytes.map(b => b[0]), [1, 2, 1, 2])
    for (const b of bytes) {
      const record = decodeRecord(b)
      assert.equal(record.signer, fixture.signer)
      assert.equal(verifyRecordSignature(record), true)
      assert.equal(record.net, undefined)
      // re-encoding the decoded content today gives the very same bytes
      assert.equal(toHex(recordFromJson(recordToJson(record)).bytes), toHex(b))
    }
    const tmp = await tempDb('format-v3-old')
    try {
      const store = new LedgerStore(tmp.db)
      const taken = await store.acceptRecords(fixture.signer, 0, bytes)
      assert.equal(taken.stored, 4)
      const report = await verifyChain(store, fixture.signer, { self: 'nobody', pool: false })
      assert.equal(report.ok, true)
      assert.equal(report.checked, 4)
    } finally {
      await tmp.close()
    }
  })

  it('fits any run\'s report into the bound: the busiest 32 origins listed, the total counting every request', () => {
    assert.equal(fitNetUsage(undefined), undefined)
    assert.equal(fitNetUsage({ requests: 0, origins: [] }), undefined)
    assert.deepEqual(fitNetUsage({ requests: 9, origins: [NET.origins[1]!, NET.origins[0]!] }), NET)
    const many = Array.from({ length: 40 }, (_, i) => ({ origin: `https://o${String(i).padStart(2, '0')}.example`, requests: i + 1 }))
    const fit = fitNetUsage({ requests: 820, origins: [...many, { origin: `https://${'x'.repeat(400)}.org`, requests: 1000 }] })!
    assert.equal(fit.origins.length, 32)
    assert.equal(fit.requests, 820)
    assert.deepEqual(fit.origins.map(o => o.requests).sort((a, b) => a - b), Array.from({ length: 32 }, (_, i) => i + 9))
    assert.doesNotThrow(() => encodeRecordBody({ ...content(0), seq: 0, prev: GENESIS_PREV, signer: '12D3KooWRWcUSHYQhJjq4z1S8u5iEHoYwqHW6dFCzr1ww59zqu3x', net: fit }))
  })

  it('splits the largest records into frames within 1 MiB; 256 of the largest version-2 records still share one', () => {
    const largest = Array.from({ length: 200 }, () => new Uint8Array(MAX_RECORD_V3_BYTES).fill(0xab))
    const frames = recordFrames(largest)
    assert.ok(frames.length >= 3)
    assert.equal(frames.flat().length, 200)
    for (const records of frames) {
      assert.equal(RecordsResponseV3.safeParse({ type: 'records', from: 0, records }).success, true)
      assert.ok(encodeFrame({ type: 'records', from: Number.MAX_SAFE_INTEGER, records }, MAX_LEDGER_FRAME_BYTES).byteLength <= MAX_LEDGER_FRAME_BYTES)
    }
    const v2 = Array.from({ length: 300 }, () => new Uint8Array(MAX_RECORD_V2_BYTES))
    assert.deepEqual(recordFrames(v2).map(f => f.length), [RECORDS_PER_FRAME, 300 - RECORDS_PER_FRAME])
  })
})

describe('a peer on a release before version 3', () => {
  let mesh: Mesh

  before(async () => {
    mesh = await startMesh(2, { label: 'ledger-v3' })
  })

  after(async () => {
    await mesh?.stop()
  })

  it('is answered up to the record before the first version-3 one, with the head, and the node stays connected; a version-3 peer gets all', async () => {
    const [a, b] = mesh.nodes as [NonNullable<Mesh['nodes'][0]>, NonNullable<Mesh['nodes'][1]>]
    const id = a.peerId.toString()
    await a.ledger.append(content(0))
    await a.ledger.append({ ...content(1), llm: LLM })
    await a.ledger.append({ ...content(2), net: NET })
    await a.ledger.append(content(3))
    // b (this release) copies the whole chain, version-3 record included
    await waitFor(async () => (await b.ledger.chains()).some(c => c.signer === id && c.end === 3), { message: 'b holds a\'s chain' })
    assert.equal((await b.ledger.verify({ signer: id })).ok, true)
    assert.deepEqual((await b.ledger.list({ signer: id }))[2]?.record?.net, NET)

    let refused = 0
    a.ledger.addEventListener('refused', () => { refused++ })
    // what an older node sends: no `reads`; and it reads the answer with its own bounds
    const old = await dialFramed(b.libp2p, a.peerId, LEDGER_PROTOCOL, { maxMessageBytes: MAX_LEDGER_FRAME_BYTES })
    await old.write({ type: 'records', signer: id, from: 0 })
    const first = await old.read(RecordsResponse)
    assert.equal(first.type, 'records')
    assert.deepEqual(first.type === 'records' ? first.records.map(r => r[0]) : [], [1, 2])
    const end = await old.read(RecordsResponse)
    assert.equal(end.type, 'end')
    assert.ok(end.type === 'end' && end.head != null, 'the head comes with the short answer, so the older node knows it is behind')
    await old.close()
    // what this release sends
    const now = await dialFramed(b.libp2p, a.peerId, LEDGER_PROTOCOL, { maxMessageBytes: MAX_LEDGER_FRAME_BYTES })
    await now.write({ type: 'records', signer: id, from: 0, reads: 3 })
    const all = await now.read(RecordsResponseV3)
    assert.deepEqual(all.type === 'records' ? all.records.map(r => r[0]) : [], [1, 2, 3, 1])
    assert.equal((await now.read(RecordsResponseV3)).type, 'end')
    await now.close()
    assert.equal(refused, 0)
    assert.ok(a.libp2p.getConnections(b.peerId).length > 0, 'no one was hung up on')
  })
})
