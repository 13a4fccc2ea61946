import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { z } from 'zod'
import { InvalidRecordError, decodeCbor, decodeMessage, decodeOnce, encodeMessage } from '../../../protocol/wire/index.ts'

const Point = z.object({ x: z.int(), y: z.int(), label: z.string().max(8).optional() })

describe('CBOR-plus-schema codec', () => {
  it('round-trips what the schema accepts, bytes included', () => {
    const value = { x: 1, y: -2, label: 'p' }
    assert.deepEqual(decodeCbor(encodeMessage(value), Point, 'point'), value)
    const Blob = z.object({ data: z.instanceof(Uint8Array) })
    const blob = decodeCbor(encodeMessage({ data: Uint8Array.from([1, 2, 3]) }), Blob, 'blob')
    assert.deepEqual([...blob.data], [1, 2, 3])
  })

  it('names the thing and the field that was wrong', () => {
    assert.throws(() => decodeCbor(encodeMessage({ x: 1, y: 'two' }), Point, 'point'), { name: 'MalformedMessage', message: /^point is invalid: y: / })
    assert.throws(() => decodeCbor(Uint8Array.from([0xff, 0x00]), Point, 'point'), { name: 'MalformedMessage', message: /^point is not CBOR/ })
    assert.throws(() => decodeCbor(encodeMessage({ x: 1, y: 2, label: 'much too long' }), Point, 'point'), { message: /label/ })
  })

  it('names, in a union, the fields of the member the `type` chose, under the union\'s own path, as many as asked', () => {
    const A = z.strictObject({ type: z.literal('a'), x: z.int() })
    const B = z.strictObject({ type: z.literal('b'), y: z.string() })
    const Holder = z.strictObject({ u: z.union([A, B]) })
    assert.throws(() => decodeCbor(encodeMessage({ u: { type: 'a', x: 'one' } }), Holder, 'holder'), { message: /^holder is invalid: u\.x: [^;]*$/ })
    assert.throws(() => decodeCbor(encodeMessage({ type: 'c' }), z.discriminatedUnion('type', [A, B]), 'either'), { message: /^either is invalid: type: / })
    const Many = z.strictObject({ a: z.int(), b: z.int(), c: z.int() })
    assert.throws(() => decodeCbor(encodeMessage({ a: 'x', b: 'y', c: 'z' }), Many, 'many', undefined, 2), { message: /^many is invalid: a: [^;]*; b: [^;]*$/ })
  })

  it('throws the error class it is given', () => {
    assert.throws(() => decodeCbor(encodeMessage([1]), Point, 'peer record payload', InvalidRecordError), (err: Error) => {
      assert.ok(err instanceof InvalidRecordError)
      assert.equal(err.name, 'InvalidRecord')
      assert.match(err.message, /^peer record payload is invalid/)
      return true
    })
  })

  it('refuses a map with a duplicate key, so no two peers read one payload two ways', () => {
    // { "x": 1, "x": 2, "y": 3 } by hand: map(3), text(1) "x", 1, text(1) "x", 2, text(1) "y", 3
    const duplicate = Uint8Array.from([0xa3, 0x61, 0x78, 0x01, 0x61, 0x78, 0x02, 0x61, 0x79, 0x03])
    assert.throws(() => decodeCbor(duplicate, Point, 'point'), { name: 'MalformedMessage', message: /not CBOR/ })
    const single = Uint8Array.from([0xa2, 0x61, 0x78, 0x01, 0x61, 0x79, 0x03])
    assert.deepEqual(decodeCbor(single, Point, 'point'), { x: 1, y: 3 })
  })

  it('decodes maps as plain objects, never as Map', () => {
    const Any = z.record(z.string(), z.unknown())
    const out = decodeCbor(encodeMessage({ a: { b: 1 } }), Any, 'value')
    assert.equal(Object.getPrototypeOf(out.a), Object.prototype)
  })

  it('decodeMessage is the codec with "message" as the name', () => {
    assert.throws(() => decodeMessage(encodeMessage({ x: 'no' }), Point), { name: 'MalformedMessage', message: /^message is invalid/ })
  })

  it('decodes the same bytes once (a gossip validator and its listener), other bytes each time, and does not remember a failure', () => {
    const schema = z.object({ n: z.number() })
    let decoded = 0
    const decode = decodeOnce((bytes) => { decoded++; return decodeMessage(bytes, schema) })
    const bytes = encodeMessage({ n: 1 })
    const first = decode(bytes)
    assert.equal(decode(bytes), first)
    assert.equal(decoded, 1)
    assert.deepEqual(decode(Uint8Array.from(bytes)), { n: 1 })
    assert.equal(decoded, 2)
    const bad = encodeMessage({ n: 'one' })
    assert.throws(() => decode(bad), /n/)
    assert.throws(() => decode(bad), /n/)
    assert.equal(decoded, 4)
  })
})
