// The audit behind `hive-node verify`: checks every chain held (encoding, signer, positions, hash
// links, signatures), compares each chain's end with the newest signed head held for its signer,
// and reports forks kept as proof. It names the first bad record of each chain and why.
//
// Signatures dominate the cost, so long chains are checked in slices spread over worker threads
// (one per core) while this thread reads the next slices from LevelDB.

import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { checkSlice, packSlice } from './check.ts'
import {
  GENESIS_PREV, bytesEqual, decodeHead, decodeRecord, headToJson, recordToJson, verifyHeadSignature,
  verifyRecordSignature
} from './record.ts'
import type { SliceFault, SliceInput, SliceResult } from './check.ts'
import type { HeadJson, LedgerRecord, RecordJson, SignedHead } from './record.ts'
import type { LedgerStore } from './store.ts'

/** Why a chain failed, named at the first record it concerns. */
export type AuditReason =
  | 'malformed' // stored bytes do not decode under the FORMAT.md encoding
  | 'wrong-chain' // a record names another signer than the chain it is stored in
  | 'gap' // a record is missing (a later one is held)
  | 'duplicate' // the record held at this position is a copy of an earlier one
  | 'reordered' // the record held at this position carries another sequence number
  | 'broken-link' // the previous-hash is not the hash of the record before
  | 'bad-signature' // the signature does not verify under the signer's key (or S >= L)
  | 'truncated' // the chain ends before the newest signed head stored with it
  | 'rollback' // this device's chain ends before a head this device signed (an older store restored)
  | 'fork' // two different validly signed records for one sequence number
  | 'head-mismatch' // a validly signed head names another hash than the record held at its seq
  | 'bad-head' // a stored head does not decode, names another signer, or its signature fails

export const AUDIT_REASONS: Record<AuditReason, string> = {
  malformed: 'the stored bytes do not decode as a record',
  'wrong-chain': 'the record names another signer than the chain it is stored in',
  gap: 'a record is missing while a later one is held',
  duplicate: 'the record at this position is a copy of an earlier record',
  reordered: 'the record at this position carries another sequence number',
  'broken-link': 'the previous-hash does not match the hash of the record before',
  'bad-signature': "the signature does not verify under the signer's key",
  truncated: 'the chain ends before the newest signed head held for it',
  rollback: "this device's chain ends before a head this device signed: an older copy of the store was restored",
  fork: 'the signer signed two different records for this sequence number',
  'head-mismatch': 'the signer signed a head naming another record for this sequence number',
  'bad-head': 'a stored head does not decode, names another signer, or its signature fails'
}

/** Ties at one seq are broken in this order: record faults first, then chain-level ones. */
const REASON_ORDER: AuditReason[] = [
  'malformed', 'wrong-chain', 'gap', 'duplicate', 'reordered', 'broken-link', 'bad-signature',
  'fork', 'head-mismatch', 'bad-head', 'truncated', 'rollback'
]

export interface AuditProblem {
  seq: number
  reason: AuditReason
  message: string
}

export interface ForkProof {
  seq: number
  /** The validly signed records that conflict (the held one first). */
  records: RecordJson[]
  /** A validly signed head that names another hash than the record held, when that is the proof. */
  head?: HeadJson
}

export interface ChainReport {
  signer: string
  /** Whether this is the auditing device's own chain. */
  self: boolean
  ok: boolean
  /** Records checked (up to the first missing position). */
  checked: number
  /** Last sequence number held, -1 when none. */
  end: number
  /** Newest signed head held for the chain, as stored with it. */
  head: HeadJson | null
  /** The first bad record and why; null when the chain is clean. */
  firstBad: AuditProblem | null
  /** Every conflict proven by validly signed data. */
  forks: ForkProof[]
  /** A peer's chain that has grown past what is held: not a fault, the copy is still catching up. */
  behind: { seq: number } | null
}

export interface AuditReport {
  ok: boolean
  chains: ChainReport[]
  /** Records checked in all chains. */
  records: number
  durationMs: number
}

export interface VerifyOptions {
  signal?: AbortSignal
  /** PeerId of this device, so its own chain is judged against its own signed heads. Read from the store when omitted. */
  self?: string
  /** A pool to share; by default one is made for chains longer than one slice, and closed after. `false` checks inline. */
  pool?: VerifyPool | false
  /** Records per slice handed to a worker. */
  sliceSize?: number
}

// ---------------------------------------------------------------------------------------------
// worker pool

export interface VerifyPool {
  readonly size: number
  check: (input: SliceInput) => Promise<SliceResult>
  close: () => Promise<void>
}

interface PoolWorker {
  worker: Worker
  pending: Map<number, { resolve: (r: SliceResult) => void, reject: (e: Error) => void }>
}

/** Worker threads running `checkSlice`; started on first use, one per core by default. */
export function createVerifyPool (size = availableParallelism()): VerifyPool {
  const workers: PoolWorker[] = []
  let nextId = 0
  let closed = false

  const spawn = (): PoolWorker => {
    const worker = new Worker(new URL('./verify-worker.ts', import.meta.url))
    const entry: PoolWorker = { worker, pending: new Map() }
    worker.on('message', (message: { id: number, result?: SliceResult, error?: string }) => {
      const waiter = entry.pending.get(message.id)
      if (waiter == null) return
      entry.pending.delete(message.id)
      if (message.result != null) waiter.resolve(message.result)
      else waiter.reject(new Error(message.error ?? 'verify worker failed'))
    })
    const fail = (err: Error): void => {
      const index = workers.indexOf(entry)
      if (index >= 0) workers.splice(index, 1)
      for (const waiter of entry.pending.values()) waiter.reject(err)
      entry.pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => { if (!closed) fail(new Error(`verify worker exited with code ${code}`)) })
    workers.push(entry)
    return entry
  }

  return {
    size,
    check: async (input) => {
      if (closed) throw new Error('the verify pool is closed')
      let target: PoolWorker | undefined
      if (workers.length < size) target = spawn()
      else target = workers.reduce((a, b) => (b.pending.size < a.pending.size ? b : a))
      const id = nextId++
      const { promise, resolve, reject } = Promise.withResolvers<SliceResult>()
      target.pending.set(id, { resolve, reject })
      target.worker.postMessage({ id, input }, [input.buffer.buffer as ArrayBuffer, input.offsets.buffer as ArrayBuffer])
      return promise
    },
    close: async () => {
      closed = true
      await Promise.all(workers.splice(0).map(async w => w.worker.terminate()))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// one chain

interface Slice {
  startSeq: number
  records: Uint8Array[]
  result: Promise<SliceResult>
}

/** Audits one signer's chain as held in `store`. */
export async function verifyChain (store: LedgerStore, signer: string, options: VerifyOptions = {}): Promise<ChainReport> {
  const self = options.self ?? await store.self()
  const sliceSize = options.sliceSize ?? 2000
  let ownPool: VerifyPool | undefined
  const pool = (): VerifyPool | undefined => {
    if (options.pool === false) return undefined
    if (options.pool != null) return options.pool
    ownPool ??= createVerifyPool()
    return ownPool
  }

  try {
    const problems: AuditProblem[] = []
    let checked = 0
    let prevHash: Uint8Array = GENESIS_PREV
    let faulted = false
    const inFlight: Slice[] = []
    const maxInFlight = Math.max(2, (options.pool !== false ? (options.pool?.size ?? availableParallelism()) : 1) * 2)

    const settle = async (slice: Slice): Promise<void> => {
      const result = await slice.result
      if (faulted) return
      let fault: SliceFault | null = result.fault
      const linkBroken = result.firstPrev != null && !bytesEqual(result.firstPrev, prevHash)
      if (linkBroken && (fault == null || fault.index > 0 || fault.reason === 'bad-signature')) {
        const seq = slice.startSeq
        fault = {
          index: 0,
          reason: 'broken-link',
          message: seq === 0
            ? 'record 0\'s previous-hash is not 32 zero bytes'
            : `record ${seq}'s previous-hash does not match the hash of record ${seq - 1}`
        }
      }
      if (fault != null) {
        faulted = true
        problems.push(await classify(store, signer, slice, fault))
        return
      }
      prevHash = result.lastHash ?? prevHash
    }

    let expected = 0
    let started = false
    for await (const chunk of store.chunks(signer, { chunk: sliceSize, signal: options.signal })) {
      let cut = chunk.length
      for (let i = 0; i < chunk.length; i++) {
        if ((chunk[i] as { seq: number }).seq !== expected + i) { cut = i; break }
      }
      if (cut > 0) {
        const records = chunk.slice(0, cut).map(e => e.bytes)
        const input = packSlice(signer, expected, records)
        // short chains are checked here: starting workers costs more than it saves
        const usePool = started || chunk.length === sliceSize
        started = true
        const p = usePool ? pool() : undefined
        const result = p != null ? p.check(input) : Promise.resolve(checkSlice(input))
        inFlight.push({ startSeq: expected, records, result })
        checked += cut
      }
      if (cut < chunk.length) {
        problems.push({ seq: expected + cut, reason: 'gap', message: `record ${expected + cut} is missing; the next one held is ${(chunk[cut] as { seq: number }).seq}` })
        break
      }
      expected += cut
      while (inFlight.length >= maxInFlight) await settle(inFlight.shift() as Slice)
      if (faulted) break
    }
    // settle in order: a fault in an earlier slice outranks everything after it
    for (const slice of inFlight.splice(0)) await settle(slice)
    if (faulted) {
      // a gap found while reading lies after the first faulty record
      const fault = problems.find(p => p.reason !== 'gap') as AuditProblem
      problems.length = 0
      problems.push(fault)
    }

    const endEntry = await store.end(signer)
    const end = endEntry?.seq ?? -1
    const isSelf = self === signer
    const forks: ForkProof[] = []
    let behind: { seq: number } | null = null

    // the head stored with the chain
    let head: SignedHead | undefined
    const headRaw = await store.headRaw(signer)
    if (headRaw != null) {
      const checkedHead = checkHead(headRaw, signer, end)
      if ('problem' in checkedHead) problems.push(checkedHead.problem)
      else {
        head = checkedHead.head
        if (head.seq > end) {
          problems.push({ seq: end + 1, reason: 'truncated', message: `the chain ends at seq ${end} but its signed head names seq ${head.seq}: records ${end + 1}..${head.seq} are gone` })
        } else {
          const mismatch = await headMismatch(store, signer, head)
          if (mismatch != null) {
            problems.push(mismatch.problem)
            forks.push(mismatch.proof)
          }
        }
      }
    }

    // the newest head seen from the network, ahead of what is held
    const seenRaw = await store.seenRaw(signer)
    if (seenRaw != null) {
      const checkedSeen = checkHead(seenRaw, signer, end)
      if ('problem' in checkedSeen) problems.push(checkedSeen.problem)
      else if (checkedSeen.head.seq > end) {
        if (isSelf) {
          problems.push({ seq: end + 1, reason: 'rollback', message: `this device's chain ends at seq ${end} but this device signed a head for seq ${checkedSeen.head.seq}, held by a peer: the store was restored from an older copy` })
        } else {
          behind = { seq: checkedSeen.head.seq }
        }
      } else {
        const mismatch = await headMismatch(store, signer, checkedSeen.head)
        if (mismatch != null) {
          problems.push(mismatch.problem)
          forks.push(mismatch.proof)
        }
      }
    }

    // conflicting records and heads kept as proof
    for (const conflict of await store.conflictsOf(signer)) {
      const proof = await proveConflict(store, signer, conflict.seq, conflict.kind, conflict.bytes)
      if (proof == null) continue
      forks.push(proof.proof)
      problems.push(proof.problem)
    }

    const firstBad = pickFirst(problems)
    return {
      signer,
      self: isSelf,
      ok: firstBad == null,
      checked,
      end,
      head: head != null ? headToJson(head) : null,
      firstBad,
      forks: dedupeForks(forks),
      behind
    }
  } finally {
    await ownPool?.close()
  }
}

/** Audits every chain the store holds. One worker pool serves all of them. */
export async function verifyAll (store: LedgerStore, options: VerifyOptions = {}): Promise<AuditReport> {
  const started = performance.now()
  const self = options.self ?? await store.self()
  const ownPool = options.pool === undefined ? createVerifyPool() : undefined
  try {
    const chains: ChainReport[] = []
    for (const signer of await store.signers()) {
      options.signal?.throwIfAborted()
      chains.push(await verifyChain(store, signer, { ...options, self, pool: ownPool ?? options.pool }))
    }
    // a device's own chain always appears, even before its first record
    if (self != null && !chains.some(c => c.signer === self)) {
      chains.unshift({ signer: self, self: true, ok: true, checked: 0, end: -1, head: null, firstBad: null, forks: [], behind: null })
    }
    chains.sort((a, b) => Number(b.self) - Number(a.self) || a.signer.localeCompare(b.signer))
    return {
      ok: chains.every(c => c.ok),
      chains,
      records: chains.reduce((n, c) => n + c.checked, 0),
      durationMs: Math.round(performance.now() - started)
    }
  } finally {
    await ownPool?.close()
  }
}

// ---------------------------------------------------------------------------------------------
// helpers

async function classify (store: LedgerStore, signer: string, slice: Slice, fault: SliceFault): Promise<AuditProblem> {
  const position = slice.startSeq + fault.index
  if (fault.reason !== 'seq-mismatch') return { seq: position, reason: fault.reason, message: fault.message }
  const record = decodeRecord(slice.records[fault.index] as Uint8Array)
  if (record.seq < position) {
    const original = await store.getRaw(signer, record.seq)
    if (original != null && bytesEqual(original, record.bytes)) {
      return { seq: position, reason: 'duplicate', message: `the record at position ${position} is a second copy of record ${record.seq}` }
    }
  }
  return { seq: position, reason: 'reordered', message: `the record at position ${position} is record ${record.seq}: records are out of order` }
}

function checkHead (raw: Uint8Array, signer: string, end: number): { head: SignedHead } | { problem: AuditProblem } {
  let head: SignedHead
  try {
    head = decodeHead(raw)
  } catch (err) {
    return { problem: { seq: end + 1, reason: 'bad-head', message: `the stored head does not decode: ${(err as Error).message}` } }
  }
  if (head.signer !== signer) {
    return { problem: { seq: head.seq, reason: 'bad-head', message: `the head stored for ${signer} names signer ${head.signer}` } }
  }
  if (!verifyHeadSignature(head)) {
    return { problem: { seq: head.seq, reason: 'bad-head', message: `the head for seq ${head.seq} does not carry a valid signature by ${signer}` } }
  }
  return { head }
}

async function headMismatch (store: LedgerStore, signer: string, head: SignedHead): Promise<{ problem: AuditProblem, proof: ForkProof } | null> {
  const held = await validRecordAt(store, signer, head.seq)
  if (held == null || bytesEqual(held.hash, head.hash)) return null
  return {
    problem: { seq: head.seq, reason: 'head-mismatch', message: `${signer} signed a head for seq ${head.seq} naming another record than the one held` },
    proof: { seq: head.seq, records: [recordToJson(held)], head: headToJson(head) }
  }
}

async function proveConflict (store: LedgerStore, signer: string, seq: number, kind: 'record' | 'head', bytes: Uint8Array): Promise<{ problem: AuditProblem, proof: ForkProof } | null> {
  if (kind === 'head') {
    let head: SignedHead
    try {
      head = decodeHead(bytes)
    } catch {
      return null
    }
    if (head.signer !== signer || head.seq !== seq || !verifyHeadSignature(head)) return null
    return headMismatch(store, signer, head)
  }
  let other: LedgerRecord
  try {
    other = decodeRecord(bytes)
  } catch {
    return null
  }
  // only validly signed records prove anything: a forged entry cannot frame a signer
  if (other.signer !== signer || other.seq !== seq || !verifyRecordSignature(other)) return null
  const held = await validRecordAt(store, signer, seq)
  if (held == null || bytesEqual(held.hash, other.hash)) return null
  return {
    problem: { seq, reason: 'fork', message: `${signer} signed two different records for seq ${seq}` },
    proof: { seq, records: [recordToJson(held), recordToJson(other)] }
  }
}

async function validRecordAt (store: LedgerStore, signer: string, seq: number): Promise<LedgerRecord | undefined> {
  const bytes = await store.getRaw(signer, seq)
  if (bytes == null) return undefined
  try {
    const record = decodeRecord(bytes)
    if (record.signer !== signer || record.seq !== seq || !verifyRecordSignature(record)) return undefined
    return record
  } catch {
    return undefined
  }
}

function pickFirst (problems: AuditProblem[]): AuditProblem | null {
  let best: AuditProblem | null = null
  for (const p of problems) {
    if (best == null || p.seq < best.seq || (p.seq === best.seq && REASON_ORDER.indexOf(p.reason) < REASON_ORDER.indexOf(best.reason))) best = p
  }
  return best
}

function dedupeForks (forks: ForkProof[]): ForkProof[] {
  const seen = new Set<string>()
  return forks.filter(f => {
    const key = `${f.seq}:${f.records.map(r => r.hash).join(',')}:${f.head?.hash ?? ''}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  }).sort((a, b) => a.seq - b.seq)
}

