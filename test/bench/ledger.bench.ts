// Ledger benchmark: durable appends per second (each one signed and synced to disk before it
// returns), one at a time and with several in flight (group commit), and audit throughput on a 100,000-record chain. Baselines measured in the same run:
// a bare synced LevelDB put of the same bytes for appends, and a bare single-thread loop of
// Node's built-in Ed25519 verify over the same records for the audit (the floor the issue names).
// Also shown: @noble/ed25519 verifying a sample of the same records.
//
// `npm run bench -- ledger`, or `node test/bench/ledger.bench.ts [records]`.

import { verify as cryptoVerify } from 'node:crypto'
import { availableParallelism } from 'node:os'
import { pathToFileURL } from 'node:url'
import * as ed from '@noble/ed25519'
import {
  LedgerStore, RECORD_DOMAIN, createEd25519Signer, createVerifyPool, ed25519KeyObject, verifyChain
} from '../../ledger/index.ts'
import { content, makeSigner, tempDb, writeChain } from '../ledger/fixtures.ts'
import { printTable } from './table.ts'
import type { BenchResult, BenchRow } from './table.ts'

const APPENDS = 1000
const IN_FLIGHT = 16
const NOBLE_APPENDS = 200
const ROUNDS = 5
const NOBLE_SAMPLE = 400

async function appends (): Promise<{ sequential: number, concurrent: number, noble: number, floor: number }> {
  const key = await makeSigner(21)
  // the node's signer (node:crypto), and the @noble/ed25519 one it replaced, for comparison
  const signer = createEd25519Signer(key.peerId, key.seed)
  const tmp = await tempDb('bench-append')
  try {
    const sublevel = (name: string): LedgerStore => new LedgerStore(tmp.db.sublevel(name, { keyEncoding: 'utf8', valueEncoding: 'view' }))
    const sequentialStore = sublevel('sequential')
    const concurrentStore = sublevel('concurrent')
    const nobleStore = sublevel('noble')
    const raw = tmp.db.sublevel('raw', { keyEncoding: 'utf8', valueEncoding: 'view' })
    const bytes = (await sublevel('sample').append(signer, content(0))).bytes
    // the disk of a shared machine speeds up and slows down: each kind runs a slice per round,
    // interleaved, so all of them see the same conditions
    const seconds = { sequential: 0, concurrent: 0, noble: 0, floor: 0 }
    const per = APPENDS / ROUNDS
    const nobleRound = NOBLE_APPENDS / ROUNDS
    for (let round = 0; round < ROUNDS; round++) {
      const from = round * per
      let t0 = performance.now()
      for (let i = from; i < from + per; i++) await sequentialStore.append(signer, content(i))
      seconds.sequential += (performance.now() - t0) / 1000

      t0 = performance.now()
      await Promise.all(Array.from({ length: IN_FLIGHT }, async (_, lane) => {
        for (let i = from + lane; i < from + per; i += IN_FLIGHT) await concurrentStore.append(signer, content(i))
      }))
      seconds.concurrent += (performance.now() - t0) / 1000

      t0 = performance.now()
      for (let i = round * nobleRound; i < (round + 1) * nobleRound; i++) await nobleStore.append(key, content(i))
      seconds.noble += (performance.now() - t0) / 1000

      t0 = performance.now()
      for (let i = from; i < from + per; i++) await raw.put(String(i).padStart(8, '0'), bytes, { sync: true } as never)
      seconds.floor += (performance.now() - t0) / 1000
    }
    return {
      sequential: APPENDS / seconds.sequential,
      concurrent: APPENDS / seconds.concurrent,
      noble: NOBLE_APPENDS / seconds.noble,
      floor: APPENDS / seconds.floor
    }
  } finally {
    await tmp.close()
  }
}

async function audit (count: number): Promise<{ pooled: number, bare: number, noble: number, workers: number, build: number }> {
  const signer = await makeSigner(22)
  const tmp = await tempDb('bench-verify')
  try {
    const store = new LedgerStore(tmp.db.sublevel('ledger', { keyEncoding: 'utf8', valueEncoding: 'view' }))
    let t0 = performance.now()
    const records = await writeChain(store, signer, count)
    const build = (performance.now() - t0) / 1000
    const id = signer.peerId.toString()

    // a fresh pool, as `hive-node verify` makes: worker start-up is part of the figure
    const workers = availableParallelism()
    const pool = createVerifyPool(workers)
    let pooled = 0
    try {
      t0 = performance.now()
      const report = await verifyChain(store, id, { pool })
      const seconds = (performance.now() - t0) / 1000
      if (!report.ok || report.checked !== count) throw new Error(`audit of the bench chain failed: ${JSON.stringify(report.firstBad)}`)
      pooled = count / seconds
    } finally {
      await pool.close()
    }

    const key = ed25519KeyObject(signer.privateKey.publicKey.raw)
    const messages = records.map(r => Buffer.concat([RECORD_DOMAIN, r.bytes.subarray(0, r.bytes.byteLength - 64)]))
    t0 = performance.now()
    for (let i = 0; i < records.length; i++) {
      if (!cryptoVerify(null, messages[i] as Buffer, key, (records[i] as { signature: Uint8Array }).signature)) throw new Error('baseline verify failed')
    }
    const bare = count / ((performance.now() - t0) / 1000)

    const publicKey = signer.privateKey.publicKey.raw
    t0 = performance.now()
    for (let i = 0; i < NOBLE_SAMPLE; i++) {
      if (!ed.verify((records[i] as { signature: Uint8Array }).signature, messages[i] as Buffer, publicKey, { zip215: false })) throw new Error('noble verify failed')
    }
    const noble = NOBLE_SAMPLE / ((performance.now() - t0) / 1000)
    return { pooled, bare, noble, workers, build }
  } finally {
    await tmp.close()
  }
}

export async function run (count = 100_000): Promise<BenchResult> {
  const a = await appends()
  const v = await audit(count)
  const rows: BenchRow[] = [
    { metric: 'durable appends, one at a time (sign record + head, synced batch)', value: Math.round(a.sequential), unit: 'appends/s', baseline: { label: 'bare synced put', value: Math.round(a.floor) }, note: `${APPENDS} appends, node:crypto signing; goal >= 1,000/s` },
    { metric: `durable appends, ${IN_FLIGHT} in flight (group commit)`, value: Math.round(a.concurrent), unit: 'appends/s', baseline: { label: 'bare synced put', value: Math.round(a.floor) }, note: `${APPENDS} appends, node:crypto signing; goal >= 1,000/s` },
    { metric: 'durable appends, one at a time, @noble/ed25519 signing', value: Math.round(a.noble), unit: 'appends/s', baseline: { label: 'bare synced put', value: Math.round(a.floor) }, note: `${NOBLE_APPENDS} appends, the signer before; all interleaved in ${ROUNDS} rounds` },
    { metric: `audit of a ${count.toLocaleString('en-US')}-record chain`, value: Math.round(v.pooled), unit: 'records/s', baseline: { label: 'bare Ed25519 verify loop, 1 thread', value: Math.round(v.bare) }, note: `${v.workers} worker threads; goal >= 10,000/s` },
    { metric: '@noble/ed25519 verify, same records', value: Math.round(v.noble), unit: 'records/s', baseline: { label: 'bare Ed25519 verify loop, 1 thread', value: Math.round(v.bare) }, note: `sample of ${NOBLE_SAMPLE}` },
    { metric: 'building the bench chain (OpenSSL signing, unsynced)', value: Math.round(count / v.build), unit: 'records/s', note: 'setup, for scale' }
  ]
  return { title: 'ledger', rows }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printTable(await run(Number(process.argv[2] ?? 100_000)))
}
