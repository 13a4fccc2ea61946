// Shared fixtures for the ledger tests: deterministic device keys, record contents, temp
// LevelDBs. Signing goes through @noble/ed25519 with the raw seed, as the node's identity does.

import { createPrivateKey, sign as nodeSign } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { Level } from 'level'
import { GENESIS_PREV, recordKey, signHead, signRecord } from '../../ledger/index.ts'
import type { LedgerRecord, LedgerStore, RecordContent, RecordSigner } from '../../ledger/index.ts'
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface'

ed.hashes.sha512 = sha512

export interface TestSigner extends RecordSigner {
  readonly peerId: PeerId
  readonly seed: Uint8Array
  readonly privateKey: Ed25519PrivateKey
}

/** A device key made from a fixed seed byte, signing with noble like the node does. */
export async function makeSigner (n: number): Promise<TestSigner> {
  const seed = new Uint8Array(32).fill(n)
  const privateKey = await generateKeyPairFromSeed('Ed25519', seed)
  return {
    peerId: peerIdFromPrivateKey(privateKey),
    seed,
    privateKey,
    sign: async (message) => ed.sign(message, seed)
  }
}

/** The same key signing through Node's OpenSSL: used where thousands of records are needed. */
export function fastSigner (signer: TestSigner): TestSigner {
  const pkcs8 = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), signer.seed])
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
  return { ...signer, sign: async (message) => new Uint8Array(nodeSign(null, message, key)) }
}

export function content (i: number, overrides: Partial<RecordContent> = {}): RecordContent {
  return {
    time: 1_700_000_000_000 + i * 1000,
    task: `task-${i}`,
    agent: 'sha256:' + 'a'.repeat(64),
    input: 'sha256:' + 'b'.repeat(64),
    output: 'sha256:' + (i % 16).toString(16).repeat(64),
    status: 'ok',
    placement: `won with cost ${i} of 3 bids`,
    ...overrides
  }
}

export interface TempDb {
  dir: string
  db: Level<string, Uint8Array>
  close: () => Promise<void>
}

export async function tempDir (label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `hive-ledger-${label}-`))
}

/** A real LevelDB in a temp directory; `close` closes it and removes the directory. */
export async function tempDb (label: string): Promise<TempDb> {
  const dir = await tempDir(label)
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
  await db.open()
  return {
    dir,
    db,
    close: async () => {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/**
 * Writes a valid chain of `n` records straight into the store (one unsynced batch, no per-record
 * fsync) with its signed head: for tests and benchmarks that need long chains quickly.
 */
export async function writeChain (store: LedgerStore, signer: TestSigner, n: number, options: { from?: number, prev?: Uint8Array, time?: number } = {}): Promise<LedgerRecord[]> {
  const fast = fastSigner(signer)
  const records: LedgerRecord[] = []
  let prev = options.prev ?? GENESIS_PREV
  const from = options.from ?? 0
  for (let seq = from; seq < from + n; seq++) {
    const record = await signRecord({ ...content(seq, options.time != null ? { time: options.time } : {}), seq, prev, signer: signer.peerId.toString() }, fast)
    records.push(record)
    prev = record.hash
  }
  const last = records[records.length - 1]
  const ops: Array<Record<string, unknown>> = records.map(r => ({ type: 'put', sublevel: store.records, key: recordKey(r.signer, r.seq), value: r.bytes }))
  if (last != null) {
    const head = await signHead(last.seq, last.hash, fast)
    ops.push({ type: 'put', sublevel: store.heads, key: last.signer, value: head.bytes })
  }
  for (let i = 0; i < ops.length; i += 5000) await store.db.batch(ops.slice(i, i + 5000), {})
  return records
}
