// The ledger exchange's bounds, on its messages: at most 256 records a response frame and 2,048
// heads a message, each refused one past it; and the largest records and heads, that many of
// them, still fit one 1 MiB frame, so a peer holding the largest chain can always answer.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { HeadsMessage, MAX_HEADS_PER_MESSAGE, MAX_HEAD_BYTES, MAX_LEDGER_FRAME_BYTES, MAX_RECORD_V2_BYTES, RECORDS_PER_FRAME, RecordsResponse } from '../../ledger/index.ts'
import { encodeFrame } from '../../protocol/wire/index.ts'

describe('the ledger exchange\'s bounds', () => {
  it(`a frame of ${MAX_LEDGER_FRAME_BYTES} bytes holds ${RECORDS_PER_FRAME} of the largest records; one record more is refused`, () => {
    assert.deepEqual([MAX_LEDGER_FRAME_BYTES, RECORDS_PER_FRAME], [1024 * 1024, 256])
    const records = Array.from({ length: RECORDS_PER_FRAME }, () => new Uint8Array(MAX_RECORD_V2_BYTES).fill(0xab))
    const full = { type: 'records' as const, from: 0, records }
    assert.equal(RecordsResponse.safeParse(full).success, true)
    const frame = encodeFrame(full, MAX_LEDGER_FRAME_BYTES)
    assert.ok(frame.byteLength <= MAX_LEDGER_FRAME_BYTES, `${frame.byteLength} bytes`)
    assert.equal(RecordsResponse.safeParse({ ...full, records: [...records, records[0]] }).success, false)
    // a record larger than any the ledger makes is refused in a response
    assert.equal(RecordsResponse.safeParse({ type: 'records', from: 0, records: [new Uint8Array(MAX_RECORD_V2_BYTES + 1)] }).success, false)
    // and a frame past the bound is not even made
    assert.throws(() => encodeFrame({ type: 'records', from: 0, records: [new Uint8Array(MAX_LEDGER_FRAME_BYTES)] }, MAX_LEDGER_FRAME_BYTES))
  })

  it(`a message holds ${MAX_HEADS_PER_MESSAGE} heads of the largest size in one frame; one head more is refused`, () => {
    assert.equal(MAX_HEADS_PER_MESSAGE, 2048)
    const heads = Array.from({ length: MAX_HEADS_PER_MESSAGE }, () => new Uint8Array(MAX_HEAD_BYTES).fill(0xcd))
    const full = { type: 'heads' as const, heads }
    assert.equal(HeadsMessage.safeParse(full).success, true)
    assert.ok(encodeFrame(full, MAX_LEDGER_FRAME_BYTES).byteLength <= MAX_LEDGER_FRAME_BYTES)
    assert.equal(HeadsMessage.safeParse({ type: 'heads', heads: [...heads, heads[0]] }).success, false)
    assert.equal(HeadsMessage.safeParse({ type: 'heads', heads: [new Uint8Array(MAX_HEAD_BYTES + 1)] }).success, false)
  })
})
