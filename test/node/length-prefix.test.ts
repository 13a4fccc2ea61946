// Noise's frame reader without a throw at every read (node/length-prefix.ts): the decoder takes
// the same frames out of the same bytes, however the reads cut them, as with noise's own length
// decoder; its length decoder is no longer asked about an empty buffer; a frame longer than the
// decoder allows is still refused.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { emptyAsZero, lengthPrefixWithoutThrow } from '../../node/length-prefix.ts'
import type { Uint8ArrayList } from 'uint8arraylist'

/** Noise's length prefix: two bytes, big-endian; a shorter buffer throws RangeError. */
function uint16BE (data: Uint8Array | Uint8ArrayList): number {
  if (data.byteLength < 2) throw new RangeError('Could not decode int16BE')
  return data instanceof Uint8Array ? (data[0]! << 8) + data[1]! : data.getUint16(0)
}

function frames (sizes: number[]): Uint8Array {
  const parts = sizes.map((size, i) => {
    const frame = new Uint8Array(2 + size)
    frame[0] = size >> 8
    frame[1] = size & 0xff
    frame.fill(i + 1, 2)
    return frame
  })
  return Uint8Array.from(parts.flatMap(p => [...p]))
}

/** The frames a decoder takes out of `bytes` read in pieces cut at `cuts`, as hex. */
function take (decoder: LengthPrefixedDecoder, bytes: Uint8Array, cuts: number[]): string[] {
  const out: string[] = []
  let at = 0
  for (const cut of [...cuts, bytes.byteLength]) {
    for (const frame of decoder.decode(bytes.subarray(at, cut))) out.push(Buffer.from(frame.subarray()).toString('hex'))
    at = cut
  }
  return out
}

describe('noise\'s frames read without a throw', () => {
  it('takes the same frames out of the same bytes as noise\'s own length decoder, wherever the reads cut them', () => {
    const bytes = frames([5, 0, 300, 1, 70])
    let rng = 7
    const random = (n: number): number => { rng = (rng * 1103515245 + 12345) % 2 ** 31; return rng % n }
    const cuttings: number[][] = [[], [1], [2], [3], [7], [8], [9]]
    for (let i = 0; i < 200; i++) cuttings.push([...new Set(Array.from({ length: 1 + random(6) }, () => 1 + random(bytes.byteLength - 1)))].sort((a, b) => a - b))
    for (const cuts of cuttings) {
      const theirs = take(new LengthPrefixedDecoder({ lengthDecoder: uint16BE, encodingLength: () => 2 }), bytes, cuts)
      const ours = take(new LengthPrefixedDecoder({ lengthDecoder: emptyAsZero(uint16BE), encodingLength: () => 2 }), bytes, cuts)
      assert.deepEqual(ours, theirs, `cut at ${cuts.join(', ')}`)
      // the empty frame is not handed out by either, the other four are
      assert.equal(ours.length, 4)
    }
  })

  it('once installed, a decoder no longer asks its length decoder about an empty buffer, and still refuses a frame too long', () => {
    lengthPrefixWithoutThrow()
    lengthPrefixWithoutThrow()
    let empty = 0
    const counting = (data: Uint8Array | Uint8ArrayList): number => {
      if (data.byteLength === 0) empty++
      return uint16BE(data)
    }
    const decoder = new LengthPrefixedDecoder({ lengthDecoder: counting, encodingLength: () => 2, maxDataLength: 100 })
    assert.deepEqual(take(decoder, frames([3, 4]), [5]).length, 2)
    assert.equal(empty, 0, 'asked about an empty buffer')
    assert.throws(() => [...decoder.decode(frames([101]))], /Invalid message length/)
    // a prefix that takes no bytes for a length of 0 keeps its own decoder: a 0 would never end
    let asked = 0
    const odd = new LengthPrefixedDecoder({ lengthDecoder: (data) => { asked++; return uint16BE(data) }, encodingLength: (n) => n === 0 ? 0 : 2 })
    assert.deepEqual(take(odd, frames([3]), []).length, 1)
    assert.equal(asked, 2, 'its own length decoder was asked about the empty buffer too')
  })
})
