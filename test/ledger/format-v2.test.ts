// Record format version 2: LLM usage per route. Written only when a run made LLM calls; bounds
// (at most one entry per route, three routes, u32 counts, at least one call) enforced on encode
// and on decode; version-1 and version-2 records verify side by side in one chain.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import {
  GENESIS_PREV, LedgerStore, MAX_RECORD_BYTES, MAX_RECORD_V2_BYTES, createEd25519Signer, decodeRecord, encodeRecordBody,
  recordFromJson, recordToJson, signRecord, toHex, verifyChain, verifyRecordSignature
} from '../../ledger/index.ts'
import { content, makeSigner, tempDb } from './fixtures.ts'
import type { LlmUsage, RecordFields } from '../../ledger/index.ts'

const USAGE: LlmUsage[] = [
  { route: 'cloud', calls: 1, tokensIn: 12, tokensOut: 34 },
  { route: 'local', calls: 3, tokensIn: 0xffffffff, tokensOut: 0 }
]

async function base (): Promise<{ fields: RecordFields, signer: Awaited<ReturnType<typeof makeSigner>> }> {
  const signer = await makeSigner(30)
  return { signer, fields: { ...content(0), seq: 0, prev: GENESIS_PREV, signer: signer.peerId.toString() } }
}

/** Re-signs a hand-edited version-2 body, so only the decoder's rules can refuse it. */
function patched (body: Uint8Array, at: number, bytes: number[]): Uint8Array {
  const out = new Uint8Array(body.byteLength + 64)
  out.set(body)
  out.set(bytes, at)
  return out
}

describe('record format version 2', () => {
  it('writes version 1 without LLM usage and version 2 with it, routes in code order', async () => {
    const { fields, signer } = await base()
    assert.equal(encodeRecordBody(fields)[0], 1)
    assert.equal(encodeRecordBody({ ...fields, llm: [] })[0], 1)
    assert.equal(toHex(encodeRecordBody({ ...fields, llm: [] })), toHex(encodeRecordBody(fields)))
    const record = await signRecord({ ...fields, llm: USAGE }, signer)
    assert.equal(record.bytes[0], 2)
    assert.deepEqual(record.llm, [USAGE[1], USAGE[0]])
    assert.equal(verifyRecordSignature(record), true)
    const v1 = await signRecord(fields, signer)
    assert.equal(v1.llm, undefined)
    assert.equal(record.bytes.byteLength, v1.bytes.byteLength + 1 + 2 * 13)
    // the JSON form carries the usage and rebuilds the same bytes
    const json = recordToJson(record)
    assert.deepEqual(json.llm, [USAGE[1], USAGE[0]])
    assert.equal(toHex(recordFromJson(json).bytes), toHex(record.bytes))
    assert.equal('llm' in recordToJson(v1), false)
  })

  it('refuses usage the encoding cannot carry', async () => {
    const { fields } = await base()
    const bad: unknown[] = [
      [...USAGE, { route: 'peer', calls: 1, tokensIn: 0, tokensOut: 0 }, { route: 'peer', calls: 1, tokensIn: 0, tokensOut: 0 }],
      [USAGE[0], USAGE[0]],
      [{ route: 'moon', calls: 1, tokensIn: 0, tokensOut: 0 }],
      [{ route: 'local', calls: 0, tokensIn: 0, tokensOut: 0 }],
      [{ route: 'local', calls: 1, tokensIn: 0x100000000, tokensOut: 0 }],
      [{ route: 'local', calls: 1, tokensIn: -1, tokensOut: 0 }],
      [{ route: 'local', calls: 1.5, tokensIn: 0, tokensOut: 0 }],
      [{ route: 'local', calls: 1, tokensIn: 0 }],
      'local'
    ]
    for (const llm of bad) {
      assert.throws(() => encodeRecordBody({ ...fields, llm: llm as LlmUsage[] }), { name: 'InvalidRecordFields' }, JSON.stringify(llm))
    }
    // the largest version-2 record stays within its bound
    const { signer } = await base()
    const big = await signRecord({
      ...fields,
      task: 't'.repeat(256),
      agent: 'a'.repeat(128),
      input: 'i'.repeat(128),
      output: 'o'.repeat(128),
      status: 's'.repeat(32),
      placement: 'p'.repeat(1024),
      llm: [{ route: 'local', calls: 1, tokensIn: 1, tokensOut: 1 }, { route: 'peer', calls: 1, tokensIn: 1, tokensOut: 1 }, { route: 'cloud', calls: 1, tokensIn: 1, tokensOut: 1 }]
    }, signer)
    assert.equal(big.bytes.byteLength, MAX_RECORD_V2_BYTES)
    assert.equal(MAX_RECORD_V2_BYTES, MAX_RECORD_BYTES + 40)
  })

  it('refuses a version-2 body that breaks the usage rules with MalformedRecord', async () => {
    const { fields } = await base()
    const body = encodeRecordBody({ ...fields, llm: [{ route: 'local', calls: 1, tokensIn: 2, tokensOut: 3 }, { route: 'peer', calls: 4, tokensIn: 5, tokensOut: 6 }] })
    const list = body.byteLength - 1 - 2 * 13
    const decodes = (bytes: Uint8Array): void => { decodeRecord(bytes) }
    decodes(patched(body, 0, []))
    for (const [what, at, bytes] of [
      ['count 0', list, [0]],
      ['count 4', list, [4]],
      ['unknown route code 0', list + 1, [0]],
      ['unknown route code 4', list + 1, [4]],
      ['descending routes', list + 1, [2]],
      ['0 calls', list + 2, [0, 0, 0, 0]]
    ] as const) {
      assert.throws(() => decodes(patched(body, at, [...bytes])), { name: 'MalformedRecord' }, what)
    }
    // a version-1 body marked as version 2 has no usage list: truncated
    const v1 = encodeRecordBody(fields)
    assert.throws(() => decodes(patched(v1, 0, [2])), { name: 'MalformedRecord' })
    // and a version-2 body marked as version 1 has bytes after where the signature should end
    assert.throws(() => decodes(patched(body, 0, [1])), { name: 'MalformedRecord' })
  })

  it('appends both versions to one chain through the store, and the audit passes it', async () => {
    const key = await makeSigner(31)
    const signer = createEd25519Signer(key.peerId, key.seed)
    const tmp = await tempDb('format-v2')
    try {
      const store = new LedgerStore(tmp.db)
      const records = await Promise.all(Array.from({ length: 6 }, async (_, i) =>
        store.append(signer, { ...content(i), ...(i % 2 === 0 ? { llm: [{ route: 'peer' as const, calls: i + 1, tokensIn: i, tokensOut: 2 * i }] } : {}) })))
      assert.deepEqual(records.map(r => r.bytes[0]), [2, 1, 2, 1, 2, 1])
      await assert.rejects(store.append(signer, { ...content(9), llm: [USAGE[0] as LlmUsage, USAGE[0] as LlmUsage] }), { name: 'InvalidRecordFields' })
      const id = key.peerId.toString()
      for (const pool of [false, undefined] as const) {
        const report = await verifyChain(store, id, { self: id, pool, sliceSize: 2 })
        assert.equal(report.ok, true)
        assert.equal(report.checked, 6)
      }
      assert.deepEqual((await store.list(id)).map(l => l.record?.llm?.[0]?.calls), [1, undefined, 3, undefined, 5, undefined])
    } finally {
      await tmp.close()
    }
  })
})
