// Noise's frame reader without an exception at every read. @chainsafe/libp2p-noise takes its
// frames out of what a connection reads through @libp2p/utils' LengthPrefixedDecoder, which,
// once it has taken every whole frame a read brought, asks its length decoder for the next
// length on an empty buffer; noise's decoder answers that by throwing a RangeError, which the
// decoder catches as "wait for more bytes". Making that error (its stack trace) took 4.9 µs a
// read, against 0.37 µs for all the rest of taking a 100-byte frame out (`npm run bench --
// noise`); in bursts of placed tasks it was about 2 % of the devices' CPU.
//
// Here a decoder's length decoder answers an empty buffer with 0 instead: a frame then needs at
// least the length prefix's own bytes, more than the empty buffer holds, so the decoder waits
// for more without anything thrown: what the RangeError led to. A buffer holding part of a
// length prefix, or more, still goes to the decoder's own length decoder. A decoder whose
// prefix for a length of 0 would take no bytes is left as it is (a 0 there would take a frame
// of nothing, forever).

import { LengthPrefixedDecoder } from '@libp2p/utils'
import type { Uint8ArrayList } from 'uint8arraylist'

type LengthDecoder = (data: Uint8Array | Uint8ArrayList) => number

interface DecoderFields {
  lengthDecoder: LengthDecoder
  encodingLength: (length: number) => number
}

const checked = new WeakSet<object>()
const prototype = LengthPrefixedDecoder.prototype as unknown as { decode: (this: DecoderFields, buf: Uint8Array | Uint8ArrayList) => Generator<Uint8ArrayList>, emptyChecked?: boolean }
const original = prototype.decode

/** The length of an empty buffer is 0 (wait for more); anything else is the decoder's own. */
export function emptyAsZero (inner: LengthDecoder): LengthDecoder {
  return (data) => data.byteLength === 0 ? 0 : inner(data)
}

/** Installs the empty-buffer check on every LengthPrefixedDecoder; idempotent. */
export function lengthPrefixWithoutThrow (): void {
  if (prototype.emptyChecked === true) return
  if (typeof original !== 'function') throw new Error('this @libp2p/utils build has no LengthPrefixedDecoder.decode: its reads cannot be checked')
  prototype.decode = function (buf) {
    if (!checked.has(this)) {
      checked.add(this)
      if (typeof this.lengthDecoder !== 'function' || typeof this.encodingLength !== 'function') throw new Error('this @libp2p/utils build keeps no lengthDecoder or encodingLength on its LengthPrefixedDecoder')
      if (this.encodingLength(0) > 0) this.lengthDecoder = emptyAsZero(this.lengthDecoder)
    }
    return original.call(this, buf)
  }
  prototype.emptyChecked = true
}
