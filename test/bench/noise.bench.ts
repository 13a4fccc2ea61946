// Noise's frame cipher (node/noise-crypto.ts) against noise's default crypto, in the same run:
// the CPU time to seal and open one frame, at sizes from a gossip notice to a full noise frame,
// both over the same key, nonce and bytes. Then taking a frame out of a read
// (node/length-prefix.ts): @libp2p/utils' LengthPrefixedDecoder with a 2-byte length decoder
// that throws on a short buffer, as noise's does, against the same with an empty buffer's
// length 0. Rounds alternate between the two, and the median round counts.

import { randomBytes } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { LengthPrefixedDecoder } from '@libp2p/utils'
import { emptyAsZero } from '../../node/length-prefix.ts'
import { noiseCrypto } from '../../node/noise-crypto.ts'
import { median } from './table.ts'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
import type { Uint8ArrayList } from 'uint8arraylist'
import type { BenchResult, BenchRow } from './table.ts'

const SIZES = [200, 1_100, 4_096, 16_384, 65_519]
const ROUNDS = 7
const FRAMES_PER_ROUND = 4_000

/** Microseconds of CPU to seal and open one frame of `size` bytes, over one round. */
function round (crypto: ICryptoInterface, size: number): number {
  const k = randomBytes(32)
  const ad = randomBytes(32)
  const nonce = randomBytes(12)
  const plaintext = randomBytes(size)
  const start = process.cpuUsage()
  for (let i = 0; i < FRAMES_PER_ROUND; i++) {
    const sealed = crypto.chaCha20Poly1305Encrypt(plaintext, nonce, ad, k)
    crypto.chaCha20Poly1305Decrypt(sealed instanceof Uint8Array ? sealed : sealed.subarray(), nonce, ad, k)
  }
  const used = process.cpuUsage(start)
  return (used.user + used.system) / FRAMES_PER_ROUND
}

/** Noise's length prefix: two bytes, big-endian; a shorter buffer throws, as noise's decoder does. */
function uint16BE (data: Uint8Array | Uint8ArrayList): number {
  if (data.byteLength < 2) throw new RangeError('Could not decode int16BE')
  return data instanceof Uint8Array ? (data[0]! << 8) + data[1]! : data.getUint16(0)
}

/** Microseconds of CPU to take one 100-byte frame out of a read that brought exactly it. */
function readRound (lengthDecoder: (data: Uint8Array | Uint8ArrayList) => number): number {
  const decoder = new LengthPrefixedDecoder({ lengthDecoder, encodingLength: () => 2 })
  const frame = new Uint8Array(102)
  frame[1] = 100
  let taken = 0
  const start = process.cpuUsage()
  for (let i = 0; i < FRAMES_PER_ROUND * 10; i++) {
    for (const body of decoder.decode(frame)) taken += body.byteLength
  }
  const used = process.cpuUsage(start)
  if (taken !== FRAMES_PER_ROUND * 10 * 100) throw new Error(`took ${taken} bytes of frames`)
  return (used.user + used.system) / (FRAMES_PER_ROUND * 10)
}

export async function run (): Promise<BenchResult> {
  const rows: BenchRow[] = []
  for (const size of SIZES) {
    const ours: number[] = []
    const theirs: number[] = []
    // one round each to warm up, then alternating
    round(noiseCrypto, size)
    round(defaultCrypto, size)
    for (let i = 0; i < ROUNDS; i++) {
      theirs.push(round(defaultCrypto, size))
      ours.push(round(noiseCrypto, size))
    }
    rows.push({
      metric: `seal + open a ${size.toLocaleString('en-US')}-byte frame`,
      value: median(ours),
      unit: 'µs',
      baseline: { label: 'noise\'s default crypto', value: median(theirs) },
      note: `CPU, median of ${ROUNDS} rounds of ${FRAMES_PER_ROUND.toLocaleString('en-US')}`
    })
  }
  const checked = emptyAsZero(uint16BE)
  const ours: number[] = []
  const theirs: number[] = []
  readRound(uint16BE)
  readRound(checked)
  for (let i = 0; i < ROUNDS; i++) {
    theirs.push(readRound(uint16BE))
    ours.push(readRound(checked))
  }
  rows.push({
    metric: 'take a 100-byte frame out of a read',
    value: median(ours),
    unit: 'µs',
    baseline: { label: 'a RangeError for the empty buffer after it', value: median(theirs) },
    note: `CPU, median of ${ROUNDS} rounds of ${(FRAMES_PER_ROUND * 10).toLocaleString('en-US')}`
  })
  return { title: 'Noise: session keys held as key objects (node/noise-crypto.ts), frames read without a throw (node/length-prefix.ts)', rows }
}
