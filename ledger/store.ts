// The chain store: one hash chain per signer in LevelDB, the node's own and its copies of every
// peer's, plus the newest signed head held for each signer and any conflicting records kept as
// proof of a fork. Every write is one atomic batch with `sync: true`, so a call returns only
// after its data is on disk.
//
// Layout, inside the database handle the store is given (a Level or a sublevel of one):
//   records    `<signer>!<seq as 16 hex digits>`                 -> record encoding
//   heads      `<signer>`                                         -> signed head covered by the records held
//   seen       `<signer>`                                         -> newest signed head seen that is ahead of them
//   conflicts  `<signer>!<seq hex>!r!<hash hex>`                  -> a second validly signed record for seq
//              `<signer>!<seq hex>!h!<hash hex>`                  -> a signed head naming another hash for seq
//   meta       `self`                                             -> PeerId string of this device's signer

import {
  BadCopyError, BadHeadError, InvalidRecordFieldsError, LedgerRollbackError, MalformedRecordError
} from './errors.ts'
import {
  GENESIS_PREV, bytesEqual, decodeHead, encodeRecordBody, decodeRecord, sha256, signHead, signRecord, signerPublicKey,
  toHex, verifyEd25519, verifyHeadSignature, recordSigningMessage, recordBody
} from './record.ts'
import type { LedgerRecord, LlmUsage, NetUsage, RecordContent, RecordSigner, SignedHead } from './record.ts'
import type { AbstractSublevel } from 'abstract-level'

/** A LevelDB handle: a `Level` or a sublevel of one. The store keeps to its own sublevels. */
export interface LedgerDatabase {
  sublevel: (name: string, options: { keyEncoding: string, valueEncoding: string }) => unknown
  batch: (operations: any[], options: any) => Promise<void>
}

type Sub<V> = AbstractSublevel<any, any, string, V>

export const SUBLEVELS = {
  records: 'records',
  heads: 'heads',
  seen: 'seen',
  conflicts: 'conflicts',
  meta: 'meta'
} as const

/** At most this many conflicting entries are kept per signer: enough to prove, too few to flood. */
export const MAX_CONFLICTS_PER_SIGNER = 16

// `sync` is a classic-level option the abstract typings do not list.
/** Chains whose held head is remembered in memory (acceptHead's fast answer). */
const MAX_HELD_HEADS = 4_096

const SYNC = { sync: true } as Record<string, unknown>

export function seqKey (seq: number): string {
  return seq.toString(16).padStart(16, '0')
}

export function recordKey (signer: string, seq: number): string {
  return `${signer}!${seqKey(seq)}`
}

function parseSeqKey (key: string): number {
  const hex = key.slice(key.lastIndexOf('!') + 1)
  return Number.parseInt(hex, 16)
}

/** Keys of one signer's entries sort between these two (`"` follows `!`). */
function range (signer: string): { gte: string, lt: string } {
  return { gte: `${signer}!`, lt: `${signer}"` }
}

export interface ChainEnd {
  seq: number
  /** SHA-256 of the stored bytes at `seq`. */
  hash: Uint8Array
}

export interface StoredEntry {
  seq: number
  bytes: Uint8Array
}

export interface ListedRecord {
  /** The position the record is stored at. */
  seq: number
  record?: LedgerRecord
  bytes: Uint8Array
  /** Why the stored bytes do not decode, when they do not. */
  error?: string
}

export interface ConflictEntry {
  seq: number
  kind: 'record' | 'head'
  bytes: Uint8Array
}

export interface AcceptResult {
  /** Records newly stored. */
  stored: number
  /** Last sequence number held after the call, or -1. */
  end: number
  /** Set when a validly signed record disagreed with the one held: kept as proof of a fork. */
  fork?: number
  /** Whether the given head now covers the records held. */
  headStored: boolean
}

export type HeadOutcome =
  /** The head names a record already held with that hash. */
  | 'held'
  /** The head is newer than the records held; it is kept as `seen` until they arrive. */
  | 'ahead'
  /** No news: a head at least as new is already known. */
  | 'known'
  /** The head names another hash than the record held at its seq: kept as proof. */
  | 'conflict'

interface PendingAppend {
  signer: RecordSigner
  content: RecordContent
  signal: AbortSignal | undefined
  resolve: (record: LedgerRecord) => void
  reject: (err: unknown) => void
}

export interface AbortOptions {
  signal?: AbortSignal
}

export class LedgerStore {
  readonly db: LedgerDatabase
  readonly records: Sub<Uint8Array>
  readonly heads: Sub<Uint8Array>
  readonly seen: Sub<Uint8Array>
  readonly conflicts: Sub<Uint8Array>
  readonly meta: Sub<string>
  private readonly locks = new Map<string, Promise<unknown>>()
  /** Appends waiting for the next batch of each chain, in arrival order. */
  private readonly appending = new Map<string, PendingAppend[]>()
  /** What the last append batch of each own chain wrote: its end and its signed head. */
  private readonly lastAppend = new Map<string, { seq: number, hash: Uint8Array, head: Uint8Array }>()
  /**
   * The last head of each peer's chain found held (its signature checked, its record held,
   * nothing left to write for it), as its bytes. Every device re-announces every head it holds,
   * so in a hive of N most heads that arrive are these very bytes again; they are answered
   * without a signature check or a read. Nothing takes a peer's records out of a store, so held
   * stays held. This device's own chain is not remembered: a head of its own that peers hand
   * back is how a store that lost records (restored from an older copy) finds out.
   */
  private readonly heldHeads = new Map<string, Uint8Array>()
  /** The end of each chain as last found or written here; checked before it is used (`end`). */
  private readonly ends = new Map<string, ChainEnd>()

  constructor (db: LedgerDatabase) {
    this.db = db
    const bytes = { keyEncoding: 'utf8', valueEncoding: 'view' }
    this.records = db.sublevel(SUBLEVELS.records, bytes) as Sub<Uint8Array>
    this.heads = db.sublevel(SUBLEVELS.heads, bytes) as Sub<Uint8Array>
    this.seen = db.sublevel(SUBLEVELS.seen, bytes) as Sub<Uint8Array>
    this.conflicts = db.sublevel(SUBLEVELS.conflicts, bytes) as Sub<Uint8Array>
    this.meta = db.sublevel(SUBLEVELS.meta, { keyEncoding: 'utf8', valueEncoding: 'utf8' }) as Sub<string>
  }

  /** Runs `fn` with no other write to `signer`'s chain in between. */
  private async exclusive<T> (signer: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(signer) ?? Promise.resolve()
    const run = previous.then(fn, fn)
    const settled = run.then(() => {}, () => {})
    this.locks.set(signer, settled)
    try {
      return await run
    } finally {
      if (this.locks.get(signer) === settled) this.locks.delete(signer)
    }
  }

  /** Runs `fn` while no append or copy changes `signer`'s chain (an audit sees one state of it). */
  async withChain<T> (signer: string, fn: () => Promise<T>): Promise<T> {
    return this.exclusive(signer, fn)
  }

  // ------------------------------------------------------------------------------------------
  // reads

  async self (): Promise<string | undefined> {
    return this.meta.get('self')
  }

  async setSelf (peerId: string): Promise<void> {
    if (await this.self() === peerId) return
    await this.meta.put('self', peerId, SYNC)
  }

  /**
   * The last record held for `signer` (by position), or null for an empty chain. The end last
   * found is trusted only while the store still shows it as the end (the record held with that
   * hash, none after it), as for an append: two point reads instead of a reverse scan, which
   * every record a peer pushes took twice.
   */
  async end (signer: string): Promise<ChainEnd | null> {
    const known = this.ends.get(signer)
    if (known != null) {
      if (await this.stillEnd(signer, known)) return { ...known }
      this.ends.delete(signer)
    }
    for await (const [key, value] of this.records.iterator({ ...range(signer), reverse: true, limit: 1 })) {
      const end = { seq: parseSeqKey(key), hash: sha256(value) }
      this.knowEnd(signer, end)
      return end
    }
    return null
  }

  /** Whether the store still shows `end` as the chain's end: that record held, none after it (one read of both). */
  private async stillEnd (signer: string, end: ChainEnd): Promise<boolean> {
    const [held, next] = await this.records.getMany([recordKey(signer, end.seq), recordKey(signer, end.seq + 1)])
    return held != null && next == null && bytesEqual(sha256(held), end.hash)
  }

  private knowEnd (signer: string, end: ChainEnd): void {
    this.ends.delete(signer)
    this.ends.set(signer, { seq: end.seq, hash: end.hash })
    if (this.ends.size > MAX_HELD_HEADS) this.ends.delete(this.ends.keys().next().value as string)
  }

  async getRaw (signer: string, seq: number): Promise<Uint8Array | undefined> {
    return this.records.get(recordKey(signer, seq))
  }

  async get (signer: string, seq: number): Promise<LedgerRecord | undefined> {
    const bytes = await this.getRaw(signer, seq)
    return bytes == null ? undefined : decodeRecord(bytes)
  }

  /** Stored entries of one chain in position order, in chunks (for audits and serving copies). */
  async * chunks (signer: string, options: AbortOptions & { from?: number, to?: number, chunk?: number } = {}): AsyncGenerator<StoredEntry[]> {
    const from = options.from ?? 0
    const bounds = { gte: recordKey(signer, from), lt: options.to != null ? recordKey(signer, options.to + 1) : `${signer}"` }
    const iterator = this.records.iterator(bounds)
    try {
      const size = options.chunk ?? 1000
      let ended = false
      while (!ended) {
        // nextv may return fewer than asked; fill each chunk so chunk boundaries are predictable
        const chunk: StoredEntry[] = []
        while (chunk.length < size) {
          options.signal?.throwIfAborted()
          const entries = await iterator.nextv(size - chunk.length)
          if (entries.length === 0) {
            ended = true
            break
          }
          for (const [key, bytes] of entries) chunk.push({ seq: parseSeqKey(key), bytes })
        }
        if (chunk.length > 0) yield chunk
      }
    } finally {
      await iterator.close()
    }
  }

  /** Records for display: newest last; `limit` keeps the newest N. Undecodable ones are listed with their error. */
  async list (signer: string, options: AbortOptions & { limit?: number } = {}): Promise<ListedRecord[]> {
    const out: ListedRecord[] = []
    for await (const [key, bytes] of this.records.iterator({ ...range(signer), reverse: true, ...(options.limit != null ? { limit: options.limit } : {}) })) {
      options.signal?.throwIfAborted()
      const seq = parseSeqKey(key)
      try {
        out.push({ seq, bytes, record: decodeRecord(bytes) })
      } catch (err) {
        out.push({ seq, bytes, error: (err as Error).message })
      }
    }
    return out.reverse()
  }

  /** Every signer the store knows anything about: records, heads, seen heads or conflicts. */
  async signers (): Promise<string[]> {
    const found = new Set<string>()
    for (const sub of [this.records, this.conflicts]) {
      const iterator = sub.keys()
      try {
        for (;;) {
          const key = await iterator.next()
          if (key === undefined) break
          const signer = key.slice(0, key.indexOf('!'))
          found.add(signer)
          iterator.seek(`${signer}"`)
        }
      } finally {
        await iterator.close()
      }
    }
    for (const sub of [this.heads, this.seen]) {
      for await (const key of sub.keys()) found.add(key)
    }
    return [...found].sort()
  }

  async headRaw (signer: string): Promise<Uint8Array | undefined> {
    return this.heads.get(signer)
  }

  async seenRaw (signer: string): Promise<Uint8Array | undefined> {
    return this.seen.get(signer)
  }

  /** The newest valid signed head held for each chain (what this node announces). */
  async allHeads (): Promise<SignedHead[]> {
    const out: SignedHead[] = []
    for await (const [, bytes] of this.heads.iterator()) {
      try {
        const head = decodeHead(bytes)
        if (verifyHeadSignature(head)) out.push(head)
      } catch {
        // a damaged head is the audit's business, not something to announce
      }
    }
    return out
  }

  async conflictsOf (signer: string): Promise<ConflictEntry[]> {
    const out: ConflictEntry[] = []
    for await (const [key, bytes] of this.conflicts.iterator(range(signer))) {
      const [, seqHex, kind] = key.split('!')
      out.push({ seq: Number.parseInt(seqHex ?? '', 16), kind: kind === 'h' ? 'head' : 'record', bytes })
    }
    return out
  }

  // ------------------------------------------------------------------------------------------
  // writes

  /**
   * Appends a record to `signer`'s own chain and signs the new head; both reach the disk in one
   * synced batch before this returns. Refuses when the chain is behind a head this key signed
   * (the store was restored from an older copy): continuing would sign a fork.
   *
   * Group commit: appends that arrive while a batch is being written wait and go to disk
   * together in the next one, in arrival order, with one signed head for the newest. Each append
   * resolves only after its batch is synced; when a batch fails, every append in it fails and
   * none of its records is stored (one atomic batch), so the chain stays as it was.
   */
  async append (signer: RecordSigner, content: AppendInput, options: AbortOptions = {}): Promise<LedgerRecord> {
    const self = signer.peerId.toString()
    const checked = checkContent(content)
    // refuse bad fields here, so one caller's mistake cannot fail a batch shared with others
    encodeRecordBody({ ...checked, seq: 0, prev: GENESIS_PREV, signer: self })
    options.signal?.throwIfAborted()
    let queue = this.appending.get(self)
    if (queue == null) {
      queue = []
      this.appending.set(self, queue)
    }
    const { promise, resolve, reject } = Promise.withResolvers<LedgerRecord>()
    queue.push({ signer, content: checked, signal: options.signal, resolve, reject })
    // the first waiting append schedules the batch; later ones join it until it starts
    if (queue.length === 1) void this.exclusive(self, async () => { await this.commitAppends(self) })
    return promise
  }

  /**
   * The end of this device's own chain for an append. The last batch's end is remembered, and
   * trusted only while the store still shows it as the end (the record held with that hash, none
   * after it): two point reads instead of a reverse scan, which grows slower with the chain.
   */
  private async ownEnd (self: string): Promise<ChainEnd | null> {
    const last = this.lastAppend.get(self)
    if (last != null) {
      if (await this.stillEnd(self, last)) return { seq: last.seq, hash: last.hash }
      this.lastAppend.delete(self)
    }
    return this.end(self)
  }

  /** Writes every append waiting for `self`'s chain as one synced batch (under the chain's lock). */
  private async commitAppends (self: string): Promise<void> {
    const waiting = this.appending.get(self) ?? []
    this.appending.delete(self)
    const batch = waiting.filter(a => {
      if (a.signal?.aborted !== true) return true
      a.reject(a.signal.reason)
      return false
    })
    if (batch.length === 0) return
    try {
      const written = this.lastAppend.get(self)
      // independent reads, in parallel: an append's latency is one read and one synced write
      const [end, held, seen] = await Promise.all([this.ownEnd(self), this.headRaw(self), this.seenRaw(self)])
      const endSeq = end?.seq ?? -1
      for (const [what, raw] of [['held', held], ['seen', seen]] as const) {
        if (raw == null) continue
        // the head the last batch wrote was signed here: its seq is known, no need to verify it
        const own = written != null && bytesEqual(raw, written.head)
        let head: SignedHead
        try {
          head = decodeHead(raw)
        } catch {
          continue
        }
        if (head.signer === self && head.seq > endSeq && (own || verifyHeadSignature(head))) {
          throw new LedgerRollbackError(`this device's chain ends at seq ${endSeq} but it signed a head for seq ${head.seq} (${what}): the store was restored from an older copy or lost records; the node takes the missing records back from a peer that holds them and appends again after that (keep a hive peer connected; "hive-node verify" shows the state)`)
        }
      }
      const records: LedgerRecord[] = []
      let prev = end?.hash ?? GENESIS_PREV
      for (const [i, append] of batch.entries()) {
        const record = await signRecord({ ...append.content, seq: endSeq + 1 + i, prev, signer: self }, append.signer)
        records.push(record)
        prev = record.hash
      }
      const last = records[records.length - 1] as LedgerRecord
      const head = await signHead(last.seq, last.hash, (batch[batch.length - 1] as PendingAppend).signer)
      const ops: Array<Record<string, unknown>> = records.map(record => (
        { type: 'put', sublevel: this.records, key: recordKey(self, record.seq), value: record.bytes }
      ))
      ops.push({ type: 'put', sublevel: this.heads, key: self, value: head.bytes })
      this.lastAppend.delete(self)
      await this.db.batch(ops, SYNC)
      this.lastAppend.set(self, { seq: last.seq, hash: last.hash, head: head.bytes })
      for (const [i, append] of batch.entries()) append.resolve(records[i] as LedgerRecord)
    } catch (err) {
      for (const append of batch) append.reject(err)
    }
    // appends that arrived during this batch were scheduled by their first arrival
  }

  /**
   * Takes a peer's copy of records `from`, `from + 1`, … of `signer`'s chain. Every record is
   * checked (encoding, signer, position, link, signature) before anything is stored; one bad
   * record refuses the copy with BadCopyError and stores nothing. Records already held are
   * compared: a validly signed record that differs from the one held is kept as fork proof and
   * ends the copy there. `head`, when given and matching, becomes the chain's covered head.
   */
  async acceptRecords (signer: string, from: number, copy: Uint8Array[], options: AbortOptions & { head?: SignedHead } = {}): Promise<AcceptResult> {
    const publicKey = signerPublicKey(signer)
    return this.exclusive(signer, async () => {
      this.lastAppend.delete(signer)
      const end = await this.end(signer)
      const endSeq = end?.seq ?? -1
      if (from > endSeq + 1) {
        throw new BadCopyError(`copy of ${signer} starts at seq ${from} but only ${endSeq + 1} records are held: it would leave a gap`, from, 'gap')
      }
      // a copy that follows the records held links to the end just read: its hash is at hand
      let prevHash: Uint8Array = from === 0
        ? GENESIS_PREV
        : end != null && end.seq === from - 1 ? end.hash : sha256(await this.getRaw(signer, from - 1) ?? new Uint8Array())
      const fresh: LedgerRecord[] = []
      let fork: number | undefined
      let forkRecord: LedgerRecord | undefined
      for (let i = 0; i < copy.length; i++) {
        options.signal?.throwIfAborted()
        const seq = from + i
        const bytes = copy[i] as Uint8Array
        let record: LedgerRecord
        try {
          record = decodeRecord(bytes)
        } catch (err) {
          if (err instanceof MalformedRecordError) throw new BadCopyError(`record ${seq} of ${signer}'s copy is malformed: ${err.message}`, seq, 'malformed')
          throw err
        }
        if (record.signer !== signer) throw new BadCopyError(`record ${seq} of ${signer}'s copy names signer ${record.signer}`, seq, 'wrong-chain')
        if (record.seq !== seq) throw new BadCopyError(`record at position ${seq} of ${signer}'s copy says seq ${record.seq}`, seq, 'reordered')
        if (!verifyEd25519(publicKey, recordSigningMessage(recordBody(record.bytes)), record.signature)) {
          throw new BadCopyError(`record ${seq} of ${signer}'s copy has a bad signature`, seq, 'bad-signature')
        }
        if (seq <= endSeq) {
          const held = await this.getRaw(signer, seq)
          if (held != null && bytesEqual(held, record.bytes)) {
            prevHash = record.hash
            continue
          }
          fork = seq
          forkRecord = record
          break
        }
        if (!bytesEqual(record.prev, prevHash)) {
          throw new BadCopyError(`record ${seq} of ${signer}'s copy does not link to the record before it`, seq, 'broken-link')
        }
        fresh.push(record)
        prevHash = record.hash
      }

      // one batch across sublevels, so records and their head land together or not at all
      const ops: Array<Record<string, unknown>> = []
      for (const record of fresh) {
        ops.push({ type: 'put', sublevel: this.records, key: recordKey(signer, record.seq), value: record.bytes })
      }
      const newEnd = fresh.length > 0 ? (fresh[fresh.length - 1] as LedgerRecord).seq : endSeq
      let headStored = false
      const head = options.head
      if (head != null && head.signer === signer && head.seq <= newEnd && head.seq > endSeq) {
        const at = fresh.find(r => r.seq === head.seq)
        if (at != null && bytesEqual(at.hash, head.hash) && verifyHeadSignature(head)) {
          ops.push({ type: 'put', sublevel: this.heads, key: signer, value: head.bytes })
          headStored = true
          const seen = decodeSafe(await this.seenRaw(signer))
          if (seen != null && seen.seq <= head.seq) ops.push({ type: 'del', sublevel: this.seen, key: signer })
        }
      }
      if (forkRecord != null && await this.conflictCount(signer) < MAX_CONFLICTS_PER_SIGNER) {
        ops.push({ type: 'put', sublevel: this.conflicts, key: `${recordKey(signer, forkRecord.seq)}!r!${toHex(forkRecord.hash)}`, value: forkRecord.bytes })
      }
      if (ops.length > 0) await this.db.batch(ops, SYNC)
      const last = fresh.at(-1)
      if (last != null) this.knowEnd(signer, { seq: last.seq, hash: last.hash })
      return { stored: fresh.length, end: newEnd, headStored, ...(fork != null ? { fork } : {}) }
    })
  }

  /**
   * Takes a signed head from the network. A head with a bad signature is a BadHeadError. A head
   * ahead of the records held is kept as `seen` (for a peer: records to fetch; for this device:
   * proof that its store was rolled back).
   */
  async acceptHead (head: SignedHead): Promise<HeadOutcome> {
    const held = this.heldHeads.get(head.signer)
    if (held != null && bytesEqual(held, head.bytes)) return 'held'
    if (!verifyHeadSignature(head)) throw new BadHeadError(`the head for ${head.signer} seq ${head.seq} does not carry that signer's valid signature`)
    const signer = head.signer
    return this.exclusive(signer, async () => {
      const end = await this.end(signer)
      if (end != null && head.seq <= end.seq) {
        const held = await this.getRaw(signer, head.seq)
        if (held != null && bytesEqual(sha256(held), head.hash)) {
          const covered = decodeSafe(await this.headRaw(signer))
          if (covered == null || covered.seq < head.seq) await this.heads.put(signer, head.bytes, SYNC)
          const seen = decodeSafe(await this.seenRaw(signer))
          if (seen != null && seen.seq <= head.seq && bytesEqual(seen.bytes, head.bytes)) await this.seen.del(signer, SYNC)
          if (signer !== await this.self()) this.rememberHeld(head)
          return 'held'
        }
        if (held == null) return 'known'
        const key = `${recordKey(signer, head.seq)}!h!${toHex(head.hash)}`
        if (await this.conflicts.get(key) == null && await this.conflictCount(signer) < MAX_CONFLICTS_PER_SIGNER) {
          await this.conflicts.put(key, head.bytes, SYNC)
        }
        return 'conflict'
      }
      const seen = decodeSafe(await this.seenRaw(signer))
      if (seen != null && seen.seq >= head.seq) return 'known'
      await this.seen.put(signer, head.bytes, SYNC)
      return 'ahead'
    })
  }

  private rememberHeld (head: SignedHead): void {
    this.heldHeads.delete(head.signer)
    this.heldHeads.set(head.signer, head.bytes)
    // one entry per chain held; a store holding more chains than this forgets the oldest
    if (this.heldHeads.size > MAX_HELD_HEADS) this.heldHeads.delete(this.heldHeads.keys().next().value as string)
  }

  private async conflictCount (signer: string): Promise<number> {
    let n = 0
    for await (const _ of this.conflicts.keys(range(signer))) n++
    return n
  }
}

function decodeSafe (bytes: Uint8Array | undefined): SignedHead | undefined {
  if (bytes == null) return undefined
  try {
    return decodeHead(bytes)
  } catch {
    return undefined
  }
}

/** What a caller supplies for a new record; the store fills in seq, prev, signer and (by default) time. */
export interface AppendInput {
  task: string
  agent: string
  input?: string
  output?: string
  status: string
  placement?: string
  /** Milliseconds since the epoch; now when omitted. */
  time?: number
  /** The run's LLM calls per route (at most one entry each for local, peer, cloud; u32 counts). */
  llm?: LlmUsage[]
  /** The run's http requests: the total and per origin (at most 32 origins; see NET_USAGE_LIMITS). */
  net?: NetUsage
}

function checkContent (content: AppendInput): RecordContent {
  if (content == null || typeof content !== 'object') throw new InvalidRecordFieldsError('append takes the record content as an object')
  for (const field of ['task', 'agent', 'status'] as const) {
    if (typeof content[field] !== 'string' || content[field].length === 0) {
      throw new InvalidRecordFieldsError(`${field} must be a non-empty string`)
    }
  }
  return {
    time: content.time ?? Date.now(),
    task: content.task,
    agent: content.agent,
    input: content.input ?? '',
    output: content.output ?? '',
    status: content.status,
    placement: content.placement ?? '',
    ...(content.llm != null && content.llm.length > 0 ? { llm: content.llm } : {}),
    ...(content.net != null && content.net.requests > 0 ? { net: content.net } : {})
  }
}
