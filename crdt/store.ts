// ContextStore: every context of this node as a live Y.Doc, durable in LevelDB.
//
// Each context has two documents:
//   committed  what readers see, what sync answers from and what peers are sent. It only ever
//              receives updates that are already on disk.
//   staging    where changes are made first: a local change runs against it, a peer's update is
//              applied to it. The update Yjs emits there (exactly what was new) is written with
//              a synced put, and only then applied to `committed`, acknowledged and forwarded.
// If the write fails, or Yjs throws while applying, staging is rebuilt from committed (with a
// fresh client id, so no id is ever reused for different content) and the caller gets the
// error: nothing half-done is visible, stored or sent. Staging also plays the scratch-document
// role for untrusted updates: a peer's bytes are validated structurally, then decoded by Yjs
// into staging, never straight into the document readers hold.
//
// All work on one context goes through its drain loop, in order. The loop takes every operation
// waiting, stages each, writes all their updates in one synced batch (group commit: one fsync
// for many updates), then applies them to committed, emits and acknowledges them in order. So
// "persist, then apply, then forward" holds for each update, and staging equals committed
// whenever the loop is idle (apart from updates Yjs holds pending for missing dependencies).

import * as Y from 'yjs'
import { ContextCorruptError, ContextNotFoundError, ContextStoreClosedError, ContextWriteFailedError, CheckpointExistsError, CheckpointNotFoundError, MalformedUpdateError, PendingOverLimitError, UpdateTooLargeError } from './errors.ts'
import { checkpointName, contextId as toContextId } from './ids.ts'
import { ROOT_NAMES, checkpointsOf, layoutOf, newContextDoc, parseCheckpointEntry, viewOf } from './layout.ts'
import { createUpdateLog } from './persistence.ts'
import { MAX_UPDATE_BYTES } from './limits.ts'
import { checkValue, validateSnapshot, validateUpdate } from './validate.ts'
import type { ContextId } from './ids.ts'
import type { CheckpointInfo, ContextLayout, ContextView } from './layout.ts'
import type { CompactionResult, LevelHandle, UpdateLog } from './persistence.ts'
import type { AbortOptions } from '@libp2p/interface'

/** Transaction origin of changes made on this node through the store. */
export const LOCAL_ORIGIN: unique symbol = Symbol('hive.context.local')
const LOAD_ORIGIN = Symbol('hive.context.load')

export const DEFAULT_MAX_UPDATE_BYTES = MAX_UPDATE_BYTES
export const DEFAULT_COMPACT_AFTER = 500

export interface ContextStoreInit {
  /** This node's name, recorded on conversation entries and checkpoints. */
  nodeName: string
  /** Largest update accepted from a peer or made locally. */
  maxUpdateBytes?: number
  /** Bytes Yjs may hold pending (updates whose dependencies have not arrived) per context. */
  maxPendingBytes?: number
  /** Compact a context once this many updates are stored for it. */
  compactAfter?: number
}

export interface ContextStoreComponents {
  db: LevelHandle
}

export interface ContextUpdateEvent {
  id: ContextId
  /** The update as stored and applied: only what was new to this node. */
  update: Uint8Array
  /** LOCAL_ORIGIN, or the object the caller of `applyRemote` passed (e.g. a peer link). */
  origin: unknown
}

export interface ContextCreatedEvent {
  id: ContextId
  origin: unknown
}

export interface ContextInfo {
  id: ContextId
  created: number
  entries: number
  keys: number
  checkpoints: number
}

type Listener<T> = (value: T) => void

/** A tiny typed event list; a throwing listener cannot break the emitter. */
export class Listeners<T> {
  private readonly fns = new Set<Listener<T>>()

  add (fn: Listener<T>): () => void {
    this.fns.add(fn)
    return () => { this.fns.delete(fn) }
  }

  emit (value: T): void {
    for (const fn of this.fns) {
      try {
        fn(value)
      } catch {
        // a listener's failure is its own
      }
    }
  }
}

export interface Context {
  readonly id: ContextId
  readonly created: number
  /**
   * The committed document, for reading and observing. Change it through `change` (or the
   * helpers below) so the change is durable before anyone sees it; a write made on this
   * document directly is stored and sent afterwards, but cannot be acknowledged.
   */
  readonly doc: Y.Doc
  view: () => ContextView
  get: (key: string) => unknown
  checkpoints: () => CheckpointInfo[]
  /**
   * Runs `fn` against the staging document and resolves once its update is on disk and
   * applied. Resolves false when `fn` changed nothing. If `fn` throws, nothing it did is kept.
   */
  change: (fn: (layout: ContextLayout, doc: Y.Doc) => void, options?: AbortOptions) => Promise<boolean>
  set: (key: string, value: unknown, options?: AbortOptions) => Promise<void>
  delete: (key: string, options?: AbortOptions) => Promise<void>
  append: (text: string, options?: AbortOptions & { role?: string }) => Promise<void>
  /** Names the current state. Names are unique within a context. */
  checkpoint: (name: string, options?: AbortOptions) => Promise<CheckpointInfo>
  /** The context as it was when the checkpoint was taken. */
  at: (name: string) => ContextView
}

export interface ContextStore {
  start: () => Promise<void>
  stop: () => Promise<void>
  readonly nodeName: string
  readonly maxUpdateBytes: number
  has: (id: ContextId) => boolean
  ids: () => ContextId[]
  list: () => ContextInfo[]
  /** The context, created (durably) on first use. */
  open: (id: ContextId | string, options?: AbortOptions) => Promise<Context>
  /** The context if it exists. */
  get: (id: ContextId | string) => Context | undefined
  /**
   * Validates a peer's update, stores what is new in it with a synced write, then applies it.
   * Returns the update as stored, or null when it carried nothing new. Throws MalformedUpdate
   * or UpdateTooLarge without touching the document, ContextWriteFailed if the write failed.
   */
  applyRemote: (id: ContextId, update: Uint8Array, origin: unknown, options?: AbortOptions) => Promise<Uint8Array | null>
  /** Creates the context if it is new, noting where the news came from. */
  ensure: (id: ContextId, origin: unknown, options?: AbortOptions) => Promise<Context>
  compact: (id: ContextId) => Promise<CompactionResult>
  /** Updates exactly as stored, for audits and tests. */
  storedUpdates: (id: ContextId) => Promise<Uint8Array[]>
  readonly events: {
    update: Listeners<ContextUpdateEvent>
    created: Listeners<ContextCreatedEvent>
    error: Listeners<Error>
  }
}

type Op =
  | { kind: 'local', fn: (layout: ContextLayout, doc: Y.Doc) => void, signal?: AbortSignal, resolve: (changed: boolean) => void, reject: (err: Error) => void }
  | { kind: 'remote', update: Uint8Array, origin: unknown, resolve: (stored: Uint8Array | null) => void, reject: (err: Error) => void }
  | { kind: 'stray', update: Uint8Array, resolve: () => void, reject: (err: Error) => void }

interface Entry {
  id: ContextId
  created: number
  committed: Y.Doc
  staging: Y.Doc
  /** Operations waiting for the drain loop. */
  ops: Op[]
  draining: boolean
  idle: Promise<void>
  /** True while the store itself applies to `committed`: any other update there is a stray write. */
  applying: boolean
  handle: Context
}

/** Operations staged together and made durable by one synced batch (group commit). */
const MAX_BATCH_OPS = 256

export function createContextStore (init: ContextStoreInit, components: ContextStoreComponents): ContextStore {
  const maxUpdateBytes = init.maxUpdateBytes ?? DEFAULT_MAX_UPDATE_BYTES
  const maxPendingBytes = init.maxPendingBytes ?? maxUpdateBytes
  const compactAfter = init.compactAfter ?? DEFAULT_COMPACT_AFTER
  const limits = { maxBytes: maxUpdateBytes, rootNames: ROOT_NAMES }
  const events = {
    update: new Listeners<ContextUpdateEvent>(),
    created: new Listeners<ContextCreatedEvent>(),
    error: new Listeners<Error>()
  }
  const entries = new Map<ContextId, Entry>()
  const creating = new Map<ContextId, Promise<Entry>>()
  const background = new Set<Promise<unknown>>()
  let log: UpdateLog | undefined
  let running = false

  function requireRunning (): UpdateLog {
    if (!running || log == null) throw new ContextStoreClosedError('the context store is not running: start it first (or it was stopped)')
    return log
  }

  function track (job: Promise<unknown>): void {
    background.add(job)
    void job.finally(() => background.delete(job))
  }

  function cloneDoc (source: Y.Doc): Y.Doc {
    const doc = newContextDoc()
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(source), LOAD_ORIGIN)
    return doc
  }

  /**
   * Replaces staging with a copy of committed plus `staged` (this batch's updates not yet on
   * disk). Updates Yjs was holding for missing dependencies are carried over unless they are
   * what went wrong. The copy gets a new client id, so an id is never reused for other content.
   */
  function rebuildStaging (entry: Entry, staged: Uint8Array[] = [], keepPending = true): void {
    const old = entry.staging
    const pending = keepPending ? [old.store.pendingStructs?.update, old.store.pendingDs] : []
    entry.staging = cloneDoc(entry.committed)
    for (const update of staged) Y.applyUpdate(entry.staging, update, LOAD_ORIGIN)
    for (const update of pending) {
      if (update != null) Y.applyUpdateV2(entry.staging, update, LOAD_ORIGIN)
    }
    old.destroy()
  }

  function applyCommitted (entry: Entry, update: Uint8Array, origin: unknown): void {
    entry.applying = true
    try {
      Y.applyUpdate(entry.committed, update, origin)
    } finally {
      entry.applying = false
    }
  }

  /** Runs `apply` on staging and returns the update Yjs emitted for it, merged, or null. */
  function capture (entry: Entry, apply: (token: object) => void): Uint8Array | null {
    const token = {}
    const captured: Uint8Array[] = []
    const onUpdate = (update: Uint8Array, origin: unknown): void => {
      if (origin === token) captured.push(update)
    }
    const staging = entry.staging
    staging.on('update', onUpdate)
    try {
      apply(token)
    } finally {
      staging.off('update', onUpdate)
    }
    if (captured.length === 0) return null
    return captured.length === 1 ? captured[0] as Uint8Array : Y.mergeUpdates(captured)
  }

  function pendingBytes (doc: Y.Doc): number {
    return (doc.store.pendingStructs?.update.byteLength ?? 0) + (doc.store.pendingDs?.byteLength ?? 0)
  }

  /** Stages one operation; returns the update to store, or null when it changed nothing. */
  function stageOp (entry: Entry, op: Op, staged: Uint8Array[]): Uint8Array | null {
    switch (op.kind) {
      case 'local': {
        op.signal?.throwIfAborted()
        let update: Uint8Array | null
        try {
          update = capture(entry, token => {
            const staging = entry.staging
            staging.transact(() => { op.fn(layoutOf(staging), staging) }, token)
          })
        } catch (err) {
          rebuildStaging(entry, staged)
          throw err
        }
        if (update != null && update.byteLength > maxUpdateBytes) {
          rebuildStaging(entry, staged)
          throw new UpdateTooLargeError(`the change makes an update of ${update.byteLength} bytes, over the limit of ${maxUpdateBytes}: split it into smaller changes`)
        }
        // what this node stores, its peers must accept: the same validator, the same limits
        if (update != null) validateOwn(entry, update, staged)
        return update
      }
      case 'remote': {
        let update: Uint8Array | null
        try {
          update = capture(entry, token => { Y.applyUpdate(entry.staging, op.update, token) })
        } catch (err) {
          rebuildStaging(entry, staged, false)
          throw new MalformedUpdateError(`Yjs could not apply an update to context ${entry.id}: ${(err as Error).message}`, { cause: err })
        }
        if (pendingBytes(entry.staging) > maxPendingBytes) {
          rebuildStaging(entry, staged, false)
          throw new PendingOverLimitError(`updates waiting for missing dependencies in context ${entry.id} exceed ${maxPendingBytes} bytes; they were dropped and arrive again with the next sync`)
        }
        return update
      }
      case 'stray':
        validateOwn(entry, op.update, staged)
        try {
          capture(entry, token => { Y.applyUpdate(entry.staging, op.update, token) })
        } catch (err) {
          rebuildStaging(entry, staged)
          throw err
        }
        return op.update
    }
  }

  /** Validates an update made here as a peer would; on failure nothing of it stays in staging. */
  function validateOwn (entry: Entry, update: Uint8Array, staged: Uint8Array[]): void {
    try {
      validateUpdate(update, limits)
    } catch (err) {
      rebuildStaging(entry, staged)
      throw err
    }
  }

  function settle (op: Op, stored: Uint8Array | null): void {
    if (op.kind === 'local') op.resolve(stored != null)
    else if (op.kind === 'remote') op.resolve(stored)
    else op.resolve()
  }

  /**
   * The drain loop of one context: stages every waiting operation, writes all their updates in
   * one synced batch, then applies them to committed in order, emits them and acknowledges.
   */
  async function drain (entry: Entry): Promise<void> {
    for (;;) {
      if (entry.ops.length === 0) {
        entry.draining = false
        return
      }
      const batch = entry.ops.splice(0, MAX_BATCH_OPS)
      const staged: Array<{ op: Op, update: Uint8Array }> = []
      for (const op of batch) {
        try {
          const update = stageOp(entry, op, staged.map(s => s.update))
          if (update == null) settle(op, null)
          else staged.push({ op, update })
        } catch (err) {
          op.reject(err as Error)
        }
      }
      if (staged.length === 0) continue
      // consecutive updates from one origin travel on as one; the batch is stored as one
      const groups: Array<{ origin: unknown, updates: Uint8Array[] }> = []
      for (const { op, update } of staged) {
        const origin = op.kind === 'remote' ? op.origin : LOCAL_ORIGIN
        const last = groups.at(-1)
        if (last != null && last.origin === origin) last.updates.push(update)
        else groups.push({ origin, updates: [update] })
      }
      const merge = (updates: Uint8Array[]): Uint8Array => updates.length === 1 ? updates[0] as Uint8Array : Y.mergeUpdates(updates)
      const stored = merge(staged.map(s => s.update))
      try {
        await requireRunning().append(entry.id, [stored])
      } catch (err) {
        rebuildStaging(entry)
        const error = err instanceof ContextStoreClosedError
          ? err
          : new ContextWriteFailedError(`could not store an update of context ${entry.id}: ${(err as Error).message}; nothing was changed, check the data directory's disk and retry`, { cause: err })
        for (const { op } of staged) op.reject(error)
        continue
      }
      for (const group of groups) {
        const update = merge(group.updates)
        applyCommitted(entry, update, group.origin)
        events.update.emit({ id: entry.id, update, origin: group.origin })
      }
      for (const { op, update } of staged) settle(op, update)
      maybeCompact(entry)
    }
  }

  function submit (entry: Entry, op: Op): void {
    entry.ops.push(op)
    if (entry.draining) return
    entry.draining = true
    const run = drain(entry)
    entry.idle = run
    track(run)
  }

  function maybeCompact (entry: Entry): void {
    if (log == null || log.pending(entry.id) < compactAfter) return
    const l = log
    track(l.compact(entry.id).catch((err: Error) => {
      events.error.emit(new ContextWriteFailedError(`compaction of context ${entry.id} failed (the stored updates are unchanged): ${err.message}`, { cause: err }))
    }))
  }

  /** A write made on `committed` directly: store it and send it on, after the fact. */
  function onStray (entry: Entry, update: Uint8Array): void {
    const failed = (err: Error): void => {
      events.error.emit(new ContextWriteFailedError(`a direct write to context ${entry.id} could not be stored: ${err.message}; write through change() instead`, { cause: err }))
    }
    if (!running) {
      failed(new ContextStoreClosedError('the store is stopped'))
      return
    }
    submit(entry, { kind: 'stray', update, resolve: () => {}, reject: failed })
  }

  function makeEntry (id: ContextId, created: number, committed: Y.Doc): Entry {
    const entry: Entry = {
      id,
      created,
      committed,
      staging: cloneDoc(committed),
      ops: [],
      draining: false,
      idle: Promise.resolve(),
      applying: false,
      handle: undefined as unknown as Context
    }
    committed.on('update', (update: Uint8Array, origin: unknown) => {
      if (!entry.applying && origin !== LOAD_ORIGIN) onStray(entry, update)
    })
    entry.handle = makeHandle(entry)
    return entry
  }

  function makeHandle (entry: Entry): Context {
    const change = async (fn: (layout: ContextLayout, doc: Y.Doc) => void, options: AbortOptions = {}): Promise<boolean> => {
      requireRunning()
      options.signal?.throwIfAborted()
      return await new Promise<boolean>((resolve, reject) => {
        submit(entry, { kind: 'local', fn, signal: options.signal, resolve, reject })
      })
    }

    return {
      id: entry.id,
      created: entry.created,
      get doc () { return entry.committed },
      view: () => viewOf(entry.committed),
      get: (key) => {
        const value = layoutOf(entry.committed).state.get(key)
        return value instanceof Y.AbstractType ? value.toJSON() : value
      },
      checkpoints: () => checkpointsOf(entry.committed),
      change,
      set: async (key, value, options) => {
        checkValue(value)
        await change(layout => { layout.state.set(key, value) }, options)
      },
      delete: async (key, options) => {
        await change(layout => { layout.state.delete(key) }, options)
      },
      append: async (text, options = {}) => {
        const role = options.role ?? 'user'
        await change(layout => {
          layout.conversation.push([{ role, text, node: init.nodeName, time: Date.now() }])
        }, options)
      },
      checkpoint: async (name, options) => {
        const checked = checkpointName(name)
        let info: CheckpointInfo | undefined
        await change((layout, doc) => {
          if (layout.checkpoints.has(checked)) {
            throw new CheckpointExistsError(`context ${entry.id} already has a checkpoint named ${JSON.stringify(checked)}: choose another name`)
          }
          info = { name: checked, time: Date.now(), node: init.nodeName }
          layout.checkpoints.set(checked, { snapshot: Y.encodeSnapshot(Y.snapshot(doc)), time: info.time, node: info.node })
        }, options)
        return info as CheckpointInfo
      },
      at: (name) => {
        const entryValue = parseCheckpointEntry(layoutOf(entry.committed).checkpoints.get(name))
        if (entryValue == null) {
          throw new CheckpointNotFoundError(`context ${entry.id} has no checkpoint named ${JSON.stringify(name)}: see the context's checkpoints`)
        }
        return readAt(entry, name, entryValue.snapshot)
      }
    }
  }

  function readAt (entry: Entry, name: string, bytes: Uint8Array): ContextView {
    let doc: Y.Doc | undefined
    try {
      validateSnapshot(bytes)
      const snap = Y.decodeSnapshot(bytes)
      for (const [client, clock] of snap.sv) {
        if (clock > Y.getState(entry.committed.store, client)) throw new Error('it refers to changes this node does not have')
      }
      entry.applying = true
      try {
        doc = Y.createDocFromSnapshot(entry.committed, snap, newContextDoc())
      } finally {
        entry.applying = false
      }
      return viewOf(doc)
    } catch (err) {
      throw new ContextCorruptError(`checkpoint ${JSON.stringify(name)} of context ${entry.id} cannot be read: ${(err as Error).message}`, { cause: err })
    } finally {
      doc?.destroy()
    }
  }

  async function load (l: UpdateLog, id: ContextId): Promise<Entry> {
    const record = await l.record(id)
    const updates = await l.load(id)
    const committed = newContextDoc()
    try {
      if (updates.length > 0) Y.applyUpdate(committed, updates.length === 1 ? updates[0] as Uint8Array : Y.mergeUpdates(updates), LOAD_ORIGIN)
    } catch (err) {
      throw new ContextCorruptError(`stored updates of context ${id} cannot be read: ${(err as Error).message}`, { cause: err })
    }
    return makeEntry(id, record?.created ?? 0, committed)
  }

  async function ensureEntry (id: ContextId, origin: unknown, options: AbortOptions = {}): Promise<Entry> {
    const l = requireRunning()
    const existing = entries.get(id)
    if (existing != null) return existing
    let pending = creating.get(id)
    if (pending == null) {
      options.signal?.throwIfAborted()
      pending = (async () => {
        const record = { created: Date.now() }
        try {
          await l.create(id, record)
        } catch (err) {
          throw new ContextWriteFailedError(`could not create context ${id}: ${(err as Error).message}; check the data directory's disk and retry`, { cause: err })
        }
        const entry = makeEntry(id, record.created, newContextDoc())
        entries.set(id, entry)
        events.created.emit({ id, origin })
        return entry
      })().finally(() => creating.delete(id))
      creating.set(id, pending)
    }
    return await pending
  }

  function parseId (id: ContextId | string): ContextId {
    return toContextId(id)
  }

  return {
    nodeName: init.nodeName,
    maxUpdateBytes,
    events,

    async start () {
      if (running) return
      const l = createUpdateLog(components.db)
      const ids = await l.ids()
      for (const id of ids) {
        entries.set(id, await load(l, id))
      }
      log = l
      running = true
    },

    async stop () {
      if (!running) return
      running = false
      await Promise.allSettled([...entries.values()].map(async e => await e.idle))
      await Promise.allSettled([...background])
      for (const entry of entries.values()) {
        entry.staging.destroy()
        entry.committed.destroy()
      }
      entries.clear()
      log = undefined
    },

    has: (id) => entries.has(id),
    ids: () => [...entries.keys()].sort(),

    list: () => [...entries.values()]
      .map(e => {
        const layout = layoutOf(e.committed)
        return { id: e.id, created: e.created, entries: layout.conversation.length, keys: layout.state.size, checkpoints: checkpointsOf(e.committed).length }
      })
      .sort((a, b) => a.id.localeCompare(b.id)),

    async open (id, options) {
      return (await ensureEntry(parseId(id), LOCAL_ORIGIN, options)).handle
    },

    get (id) {
      return entries.get(parseId(id))?.handle
    },

    async ensure (id, origin, options) {
      return (await ensureEntry(id, origin, options)).handle
    },

    async applyRemote (id, update, origin, options = {}) {
      requireRunning()
      validateUpdate(update, limits)
      const entry = await ensureEntry(id, origin, options)
      return await new Promise<Uint8Array | null>((resolve, reject) => {
        submit(entry, { kind: 'remote', update, origin, resolve, reject })
      })
    },

    async compact (id) {
      return await requireRunning().compact(id)
    },

    async storedUpdates (id) {
      return await requireRunning().read(id)
    }
  }
}

export function requireContext (store: ContextStore, id: string): Context {
  const ctx = store.get(id)
  if (ctx == null) throw new ContextNotFoundError(`no context ${JSON.stringify(id)} on this node: see \`hive-node context list\``)
  return ctx
}
