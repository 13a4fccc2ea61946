// Helpers for context tests: replicas on temp LevelDBs, links over in-memory libp2p stream
// pairs (optionally through a seeded "network" that holds chunks for random turns, keeping
// each direction in order as TCP would), waiting on events, and convergence checks.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { streamPair } from '@libp2p/utils'
import { Level } from 'level'
import * as prng from 'lib0/prng'
import * as Y from 'yjs'
import { createContextStore } from '../../crdt/store.ts'
import { createReplication } from '../../crdt/replication.ts'
import { Presence } from '../../crdt/presence.ts'
import { newContextDoc } from '../../crdt/layout.ts'
import type { ContextStore, ContextStoreInit } from '../../crdt/store.ts'
import type { Link, Replication, ReplicationInit } from '../../crdt/replication.ts'
import type { Stream } from '@libp2p/interface'

export type PRNG = ReturnType<typeof prng.create>

export interface TempLevel {
  dir: string
  db: Level<string, string>
  destroy: () => Promise<void>
}

export async function tempLevel (label = 'ctx'): Promise<TempLevel> {
  const dir = await mkdtemp(join(tmpdir(), `hive-${label}-`))
  const db = new Level<string, string>(dir)
  await db.open()
  return {
    dir,
    db,
    async destroy () {
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

export interface Replica {
  name: string
  level: TempLevel
  store: ContextStore
  presence: Presence
  replication: Replication
  faults: Error[]
  errors: Error[]
  /** Stops store, presence and replication; keeps the database for a restart. */
  stop: () => Promise<void>
  /** Stops and removes the database. */
  destroy: () => Promise<void>
}

export interface ReplicaOptions extends Partial<Omit<ContextStoreInit, 'nodeName'>>, ReplicationInit {
  level?: TempLevel
}

export async function startReplica (name: string, options: ReplicaOptions = {}): Promise<Replica> {
  const level = options.level ?? await tempLevel(name)
  const store = createContextStore({ ...options, nodeName: name }, { db: level.db.sublevel('crdt') })
  await store.start()
  const presence = new Presence(name)
  const replication = createReplication(options, { store, presence })
  const errors: Error[] = []
  replication.onError(err => errors.push(err))
  store.events.error.add(err => errors.push(err))
  let stopped = false
  const replica: Replica = {
    name,
    level,
    store,
    presence,
    replication,
    faults: [],
    errors,
    async stop () {
      if (stopped) return
      stopped = true
      await replication.stop()
      presence.destroy()
      await store.stop()
    },
    async destroy () {
      await replica.stop()
      await level.destroy()
    }
  }
  return replica
}

export interface Wire {
  a: Replica
  b: Replica
  linkA: Link
  linkB: Link
  cut: () => void
  closed: Promise<void>
}

/**
 * Links two replicas. With an rng the bytes pass through a relay that holds each chunk for a
 * random number of event-loop turns, so deliveries across links interleave at random.
 */
export async function connect (a: Replica, b: Replica, rng?: PRNG): Promise<Wire> {
  let streamA: Stream
  let streamB: Stream
  if (rng == null) {
    [streamA, streamB] = await streamPair()
  } else {
    const [outerA, innerA] = await streamPair()
    const [innerB, outerB] = await streamPair()
    const seedA = prng.uint32(rng, 0, 0xffffffff)
    const seedB = prng.uint32(rng, 0, 0xffffffff)
    void relay(innerA, innerB, prng.create(seedA))
    void relay(innerB, innerA, prng.create(seedB))
    streamA = outerA
    streamB = outerB
  }
  const linkA = a.replication.attach(streamA, { peer: b.name, onFault: err => a.faults.push(err) })
  const linkB = b.replication.attach(streamB, { peer: a.name, onFault: err => b.faults.push(err) })
  return {
    a,
    b,
    linkA,
    linkB,
    cut () {
      linkA.close()
      linkB.close()
    },
    closed: Promise.all([linkA.closed, linkB.closed]).then(() => {})
  }
}

async function relay (from: Stream, to: Stream, rng: PRNG): Promise<void> {
  try {
    for await (const chunk of from) {
      const turns = prng.int32(rng, 0, 3)
      for (let i = 0; i < turns; i++) await new Promise(resolve => setImmediate(resolve))
      if (to.status !== 'open') break
      if (!to.send(chunk)) await to.onDrain()
    }
    if (to.status === 'open') await to.close()
  } catch (err) {
    to.abort(err as Error)
  }
  if (from.status === 'open') from.abort(new Error('relay ended'))
}

type Subscribe = (fn: () => void) => () => void

export function onStoreEvents (replicas: Replica[]): Subscribe[] {
  return replicas.flatMap(r => [
    (fn: () => void) => r.store.events.update.add(fn),
    (fn: () => void) => r.store.events.created.add(fn)
  ])
}

/**
 * Resolves when `check` returns true, re-checking after every event from `sources`; rejects
 * after `timeoutMs` with `describe()` in the message. No polling, no sleeping.
 */
export async function waitFor (check: () => boolean, sources: Subscribe[], timeoutMs: number, describe: () => string = () => ''): Promise<void> {
  if (check()) return
  await new Promise<void>((resolve, reject) => {
    const offs: Array<() => void> = []
    const finish = (err?: Error): void => {
      clearTimeout(timer)
      for (const off of offs) off()
      if (err == null) resolve()
      else reject(err)
    }
    const timer = setTimeout(() => {
      finish(new Error(`condition not met within ${timeoutMs} ms ${describe()}`))
    }, timeoutMs)
    for (const subscribe of sources) {
      offs.push(subscribe(() => {
        queueMicrotask(() => { if (check()) finish() })
      }))
    }
  })
}

/** Content and state (state vector plus delete set) of one context on every replica. */
export function contextsEqual (replicas: Replica[], id: string): boolean {
  const docs = replicas.map(r => r.store.get(id)?.doc)
  if (docs.some(d => d == null)) return false
  const first = docs[0] as Y.Doc
  const snapshot = Y.snapshot(first)
  const json = canonicalJson(first.toJSON())
  return docs.every(d => Y.equalSnapshots(snapshot, Y.snapshot(d as Y.Doc)) && canonicalJson((d as Y.Doc).toJSON()) === json)
}

/** JSON with object keys sorted: map key order is insertion order, which differs by replica. */
export function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v == null || typeof v !== 'object' || Array.isArray(v) || v instanceof Uint8Array) return v
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  })
}

export function allConverged (replicas: Replica[]): boolean {
  const ids = new Set(replicas.flatMap(r => r.store.ids()))
  for (const id of ids) {
    if (!contextsEqual(replicas, id)) return false
  }
  return true
}

export function describeReplicas (replicas: Replica[]): string {
  const ids = [...new Set(replicas.flatMap(r => r.store.ids()))].sort()
  return ids.map(id => `\n  ${id}: ` + replicas.map(r => {
    const doc = r.store.get(id)?.doc
    if (doc == null) return `${r.name}=missing`
    return `${r.name}=${[...Y.encodeStateVector(doc)].length}b/${r.store.get(id)?.view().conversation.length}e`
  }).join(' ')).join('')
}

/** Asserts that every replica holds every context with identical content and state vectors. */
export function assertConverged (replicas: Replica[]): void {
  const ids = new Set(replicas.flatMap(r => r.store.ids()))
  for (const id of ids) {
    const docs = replicas.map(r => {
      const doc = r.store.get(id)?.doc
      assert.ok(doc != null, `${r.name} lacks context ${id}`)
      return doc
    })
    const [first, ...rest] = docs as [Y.Doc, ...Y.Doc[]]
    for (const [i, doc] of rest.entries()) {
      const name = replicas[i + 1]?.name
      assert.deepEqual(Buffer.from(Y.encodeStateVector(doc)), Buffer.from(Y.encodeStateVector(first)), `state vector of ${id} on ${name} differs`)
      assert.ok(Y.equalSnapshots(Y.snapshot(doc), Y.snapshot(first)), `delete set of ${id} on ${name} differs`)
      assert.deepEqual(doc.toJSON(), first.toJSON(), `content of ${id} on ${name} differs`)
    }
  }
}

/** A document rebuilt from every update stored for a context. */
export async function rebuildFromStorage (replica: Replica, id: string): Promise<Y.Doc> {
  const doc = newContextDoc()
  const ctx = replica.store.get(id)
  assert.ok(ctx != null)
  for (const update of await replica.store.storedUpdates(ctx.id)) Y.applyUpdate(doc, update)
  return doc
}
