// Ledger benchmark: durable appends per second (each one signed and synced to disk before it
// returns), and audit throughput on a 100,000-record chain. Baselines measured in the same run:
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
  LedgerStore, RECORD_DOMAIN, createVerifyPool, ed25519KeyObject, verifyChain
} from '../../ledger/index.ts'
import { content, makeSigner, tempDb, writeChain } from '../ledger/fixtures.ts'
import { printTable } from './table.ts'
import type { BenchResult, BenchRow } from './table.ts'

const APPENDS = 300
const NOBLE_SAMPLE = 400

async function appends (): Promise<{ perSecond: number, floor: number }> {
  const signer = await makeSigner(21)
  const tmp = await tempDb('bench-append')
  try {
    const store = new LedgerStore(tmp.db.sublevel('ledger', { keyEncoding: 'utf8', valueEncoding: 'view' }))
    let t0 = performance.now()
    let bytes: Uint8Array = new Uint8Array()
    for (let i = 0; i < APPENDS; i++) bytes = (await store.append(signer, content(i))).bytes
    const perSecond = APPENDS / ((performance.now() - t0) / 1000)
    const raw = tmp.db.sublevel('raw', { keyEncoding: 'utf8', valueEncoding: 'view' })
    t0 = performance.now()
    for (let i = 0; i < APPENDS; i++) await raw.put(String(i).padStart(8, '0'), bytes, { sync: true } as never)
    const floor = APPENDS / ((performance.now() - t0) / 1000)
    return { perSecond, floor }
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
    { metric: 'durable appends (sign record + head, synced batch)', value: Math.round(a.perSecond), unit: 'appends/s', baseline: { label: 'bare synced put', value: Math.round(a.floor) }, note: `${APPENDS} appends` },
    { metric: `audit of a ${count.toLocaleString('en-US')}-record chain`, value: Math.round(v.pooled), unit: 'records/s', baseline: { label: 'bare Ed25519 verify loop, 1 thread', value: Math.round(v.bare) }, note: `${v.workers} worker threads; goal >= 10,000/s` },
    { metric: '@noble/ed25519 verify, same records', value: Math.round(v.noble), unit: 'records/s', baseline: { label: 'bare Ed25519 verify loop, 1 thread', value: Math.round(v.bare) }, note: `sample of ${NOBLE_SAMPLE}` },
    { metric: 'building the bench chain (OpenSSL signing, unsynced)', value: Math.round(count / v.build), unit: 'records/s', note: 'setup, for scale' }
  ]
  return { title: 'ledger', rows }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  printTable(await run(Number(process.argv[2] ?? 100_000)))
}
