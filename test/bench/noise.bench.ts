// Noise's frame cipher (node/noise-crypto.ts) against noise's default crypto, in the same run:
// the CPU time to seal and open one frame, at sizes from a gossip notice to a full noise frame,
// both over the same key, nonce and bytes. Rounds alternate between the two, and the median
// round counts.

import { randomBytes } from 'node:crypto'
import { defaultCrypto } from '@chainsafe/libp2p-noise/crypto'
import { noiseCrypto } from '../../node/noise-crypto.ts'
import { median } from './table.ts'
import type { ICryptoInterface } from '@chainsafe/libp2p-noise'
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
  return { title: 'Noise frame cipher: session keys held as key objects (node/noise-crypto.ts)', rows }
}
