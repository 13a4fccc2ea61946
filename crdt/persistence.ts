// Durable storage of context updates on LevelDB.
//
// Why not y-leveldb: version 0.2.0 writes without `sync`, so an acknowledged update can vanish
// in a crash, and it turns a failed write into a console warning, so the caller never learns
// its change was lost. Both contradict the one promise this part makes. What we need is small:
//
//   <handle>/contexts   key: context id                 value: JSON { created }
//   <handle>/updates    key: context id ":" seq (13 hex) value: one Yjs v1 update
//
// Every write is `{ sync: true }` and its promise is what the caller awaits: a rejected write is
// the caller's error. Updates that arrive together are written as one synced batch (group
// commit): one fsync makes all of them durable, and the batch is all-or-nothing. Compaction reads every update of a context stored at that moment, merges
// them with Y.mergeUpdates, and in ONE synced batch writes the merge under the newest of those
// keys and deletes the others. The batch is atomic, so a crash leaves either the old updates or
// the merged one; updates appended while it runs get higher keys and are not touched.

import * as Y from 'yjs'
import type { ContextId } from './ids.ts'

interface Range {
  gt?: string
  lt?: string
  reverse?: boolean
  limit?: number
}

type BatchOperation = { type: 'put', key: string, value: unknown } | { type: 'del', key: string }

/** The part of an abstract-level sublevel this file uses. */
export interface LevelSublevel<V> {
  get: (key: string) => Promise<V | undefined>
  put: (key: string, value: V, options?: object) => Promise<void>
  batch: (operations: BatchOperation[], options?: object) => Promise<void>
  keys: (options?: Range) => AsyncIterable<string>
  values: (options?: Range) => AsyncIterable<V>
  iterator: (options?: Range) => AsyncIterable<[string, V]>
}

/**
 * A LevelDB database or sublevel handed to us by the composition root (a `level` instance or
 * any of its sublevels). Only `sublevel` is used: the store keeps its data in two of its own.
 */
export interface LevelHandle {
  sublevel: (name: string, options: { valueEncoding: 'json' | 'view' }) => LevelSublevel<any>
}

export interface ContextRecord {
  created: number
}

export interface CompactionResult {
  /** Stored updates merged. */
  merged: number
  /** Bytes before and after. */
  bytesBefore: number
  bytesAfter: number
}

export interface UpdateLog {
  ids: () => Promise<ContextId[]>
  record: (id: ContextId) => Promise<ContextRecord | undefined>
  create: (id: ContextId, record: ContextRecord) => Promise<void>
  /** Every stored update of a context, oldest first; prepares the context for appends. */
  load: (id: ContextId) => Promise<Uint8Array[]>
  /** Every stored update of a context, oldest first, read-only. */
  read: (id: ContextId) => Promise<Uint8Array[]>
  /** Stores updates with one synced batch; resolves only once they are all on disk. */
  append: (id: ContextId, updates: Uint8Array[]) => Promise<void>
  /** Roughly how many updates are stored for a context: what compaction would merge. */
  pending: (id: ContextId) => number
  compact: (id: ContextId) => Promise<CompactionResult>
}

/**
 * LevelDB's `sync` write option (fsync before the write resolves). classic-level honours it
 * through sublevels, which pass their options on to the root database.
 */
const SYNC = { sync: true }

const SEQ_DIGITS = 13 // 2^52 updates per context

function prefix (id: ContextId): string {
  return `${id}:`
}

/** ':' never occurs in a context id, and ';' is the next code point: the end of the range. */
function range (id: ContextId): { gt: string, lt: string } {
  return { gt: prefix(id), lt: `${id};` }
}

function key (id: ContextId, seq: number): string {
  return prefix(id) + seq.toString(16).padStart(SEQ_DIGITS, '0')
}

function seqOf (k: string): number {
  return Number.parseInt(k.slice(k.lastIndexOf(':') + 1), 16)
}

export function createUpdateLog (db: LevelHandle): UpdateLog {
  const contexts: LevelSublevel<ContextRecord> = db.sublevel('contexts', { valueEncoding: 'json' })
  const updatesDb: LevelSublevel<Uint8Array> = db.sublevel('updates', { valueEncoding: 'view' })
  const nextSeq = new Map<ContextId, number>()
  const sinceCompaction = new Map<ContextId, number>()
  const compacting = new Map<ContextId, Promise<CompactionResult>>()

  async function lastSeq (id: ContextId): Promise<number> {
    for await (const k of updatesDb.keys({ ...range(id), reverse: true, limit: 1 })) return seqOf(k)
    return -1
  }

  const seqLookups = new Map<ContextId, Promise<number>>()

  /** Reserves the next sequence number; the first use per context looks up the stored end. */
  async function seqFor (id: ContextId): Promise<number> {
    let next = nextSeq.get(id)
    if (next == null) {
      let lookup = seqLookups.get(id)
      if (lookup == null) {
        lookup = lastSeq(id).then(last => {
          if (!nextSeq.has(id)) nextSeq.set(id, last + 1)
          return last
        }).finally(() => seqLookups.delete(id))
        seqLookups.set(id, lookup)
      }
      await lookup
      next = nextSeq.get(id) as number
    }
    nextSeq.set(id, next + 1)
    return next
  }

  async function compactNow (id: ContextId): Promise<CompactionResult> {
    const keys: string[] = []
    const values: Uint8Array[] = []
    let bytesBefore = 0
    for await (const [k, v] of updatesDb.iterator(range(id))) {
      keys.push(k)
      values.push(v)
      bytesBefore += v.byteLength
    }
    if (values.length < 2) return { merged: values.length, bytesBefore, bytesAfter: bytesBefore }
    const merged = Y.mergeUpdates(values)
    const newest = keys[keys.length - 1] as string
    await updatesDb.batch([
      ...keys.slice(0, -1).map(k => ({ type: 'del' as const, key: k })),
      { type: 'put' as const, key: newest, value: merged }
    ], SYNC)
    sinceCompaction.set(id, Math.max(1, (sinceCompaction.get(id) ?? 0) - values.length + 1))
    return { merged: values.length, bytesBefore, bytesAfter: merged.byteLength }
  }

  return {
    async ids () {
      const out: ContextId[] = []
      for await (const k of contexts.keys()) out.push(k as ContextId)
      return out
    },

    async record (id) {
      return await contexts.get(id)
    },

    async create (id, record) {
      await contexts.put(id, record, SYNC)
    },

    async load (id) {
      const out: Uint8Array[] = []
      let last = -1
      for await (const [k, v] of updatesDb.iterator(range(id))) {
        out.push(v)
        last = seqOf(k)
      }
      nextSeq.set(id, last + 1)
      sinceCompaction.set(id, out.length)
      return out
    },

    async read (id) {
      const out: Uint8Array[] = []
      for await (const v of updatesDb.values(range(id))) out.push(v)
      return out
    },

    async append (id, updates) {
      const operations: BatchOperation[] = []
      for (const value of updates) operations.push({ type: 'put', key: key(id, await seqFor(id)), value })
      if (operations.length === 1) {
        const only = operations[0] as { key: string, value: Uint8Array }
        await updatesDb.put(only.key, only.value, SYNC)
      } else {
        await updatesDb.batch(operations, SYNC)
      }
      sinceCompaction.set(id, (sinceCompaction.get(id) ?? 0) + updates.length)
    },

    pending (id) {
      return sinceCompaction.get(id) ?? 0
    },

    async compact (id) {
      const running = compacting.get(id)
      if (running != null) return await running
      const job = compactNow(id).finally(() => compacting.delete(id))
      compacting.set(id, job)
      return await job
    }
  }
}
