// Halt and resume entries on their own: the codec refuses what is not a signed, canonical
// entry, and the order that decides the state is causal first, halt-biased between concurrent
// entries, and total, so replicas that merge the same entries in any order agree.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encode as cborEncode } from 'cborg'
import { compareControlEntries, createControlEntry, decodeControlEntry, encodeControlEntry, openControlEntry } from '../../../protocol/control/index.ts'
import type { ControlEntry } from '../../../protocol/control/index.ts'
import type { Signer } from '../../../protocol/wire/signing.ts'

const HIVE = 'abcdefghijklmnopqrstuvwxyz'

async function signer (): Promise<Signer> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
}

/** The deciding entry of a set: the greatest. */
const top = (entries: ControlEntry[]): ControlEntry | undefined => [...entries].sort(compareControlEntries).at(-1)

describe('halt and resume entries', () => {
  it('round-trip, and refuse a flipped signature, another signer, a non-canonical body and a bad shape', async () => {
    const s = await signer()
    const entry = await createControlEntry({ type: 'halt', hive: HIVE, at: 1, n: 1, reason: 'why' }, s)
    assert.equal(decodeControlEntry(encodeControlEntry(entry)).id, entry.id)

    const sig = new Uint8Array(entry.sig)
    sig[0] = (sig[0] ?? 0) ^ 1
    assert.throws(() => openControlEntry({ b: entry.bytes, s: sig }), { name: 'InvalidControlEntry' })

    const other = await signer()
    const body = { v: 1, type: 'halt', hive: HIVE, by: other.peerId, at: 1, n: 1 }
    const bytes = cborEncode(body)
    assert.throws(() => openControlEntry({ b: bytes, s: entry.sig }), /does not verify/)

    // the same map with its keys in another order is another encoding of it
    const reordered = cborEncode(Object.fromEntries(Object.entries({ v: 1, type: 'halt', hive: HIVE, by: s.peerId, at: 1, n: 1 }).reverse()))
    const reorderedSig = await s.sign(reordered)
    assert.throws(() => openControlEntry({ b: reordered, s: reorderedSig }), /canonically|does not verify/)

    assert.throws(() => openControlEntry({ b: cborEncode({ ...body, type: 'pause' }), s: entry.sig }), /invalid/)
    assert.throws(() => openControlEntry({ b: new Uint8Array([0xff]), s: entry.sig }), { name: 'InvalidControlEntry' })
    await assert.rejects(createControlEntry({ type: 'halt', hive: HIVE, at: 1, n: 1, reason: 'x'.repeat(501) }, s), { name: 'InvalidControlEntry' })
  })

  it('a resume made after its signer saw a halt wins whatever the clocks say; between concurrent ones the halt wins', async () => {
    const [a, b] = await Promise.all([signer(), signer()])
    const halt = await createControlEntry({ type: 'halt', hive: HIVE, at: 5_000, n: 1 }, a)
    // b's clock is behind, but it saw the halt: its resume has the greater counter
    const resume = await createControlEntry({ type: 'resume', hive: HIVE, at: 1_000, n: 2 }, b)
    assert.equal(top([halt, resume])?.body.type, 'resume')
    assert.equal(top([resume, halt])?.body.type, 'resume')
    // made without seeing each other (equal counters): the halt stands, even if the resume is later
    const concurrentResume = await createControlEntry({ type: 'resume', hive: HIVE, at: 9_000, n: 3 }, a)
    const concurrentHalt = await createControlEntry({ type: 'halt', hive: HIVE, at: 8_000, n: 3 }, b)
    assert.equal(top([halt, resume, concurrentResume, concurrentHalt])?.body.type, 'halt')
  })

  it('every delivery order of the same entries decides the same (seeded)', async () => {
    const signers = await Promise.all([signer(), signer(), signer()])
    let seed = Number(process.env.HIVE_CONTROL_SEED ?? 20261205)
    const random = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
    const entries: ControlEntry[] = []
    for (let i = 0; i < 40; i++) {
      entries.push(await createControlEntry({ type: random(2) === 0 ? 'halt' : 'resume', hive: HIVE, at: random(1000), n: 1 + random(8) }, signers[random(3)]!))
    }
    const expected = top(entries)?.id
    for (let round = 0; round < 50; round++) {
      const shuffled = [...entries]
      for (let i = shuffled.length - 1; i > 0; i--) {
        const j = random(i + 1);
        [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!]
      }
      // a replica merges them one by one, keeping the greatest so far
      let held: ControlEntry | undefined
      for (const e of shuffled) if (held == null || compareControlEntries(e, held) > 0) held = e
      assert.equal(held?.id, expected, `order ${round} (seed ${process.env.HIVE_CONTROL_SEED ?? 20261205})`)
    }
  })
})
