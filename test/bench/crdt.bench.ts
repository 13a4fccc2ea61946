// Context benchmark: five real libp2p nodes on loopback (TCP, noise, yamux), each with the
// context subsystem on its own LevelDB.
//   latency     one small update made on node 0 until all 4 other nodes have stored and
//               applied it (includes every synced write on the way), p50 and p99
//   throughput  updates/s into one context written on node 0 and replicated on 4 nodes,
//               counted until the last replica has them all
// Baselines, measured in the same run: Y.applyUpdate into an in-memory document of the updates
// the same edits make (one per edit; the floor of any Yjs replication), and one synced LevelDB
// put (the floor of "durable before acknowledged"; group commit lets the store beat it).
//
// `npm run bench -- crdt`, or `node test/bench/crdt.bench.ts` for this one alone.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { Level } from 'level'
import { createLibp2p } from 'libp2p'
import * as Y from 'yjs'
import { createContexts, newContextDoc } from '../../crdt/index.ts'
import { waitFor } from '../helpers/wait.ts'
import { percentile, printTable } from './table.ts'
import type { Context, Contexts } from '../../crdt/index.ts'
import type { BenchResult } from './table.ts'
import type { Libp2p } from '@libp2p/interface'

const NODES = 5
const LATENCY_SAMPLES = 300
const THROUGHPUT_UPDATES = 2000

interface BenchNode {
  libp2p: Libp2p
  db: Level<string, string>
  dir: string
  contexts: Contexts
}

async function startNode (i: number): Promise<BenchNode> {
  const dir = await mkdtemp(join(tmpdir(), `hive-bench-ctx-${i}-`))
  const db = new Level<string, string>(dir)
  await db.open()
  const libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: { inboundConnectionThreshold: 10_000 }
  })
  const contexts = createContexts({}, { db: db.sublevel('crdt'), libp2p, nodeName: `bench-${i}` })
  await contexts.start()
  return { libp2p, db, dir, contexts }
}

/** Resolves once `ready(ctx)` holds on every context, checked on each of their updates. */
async function reachedAll (contexts: Context[], ready: (ctx: Context) => boolean, stores: Contexts[]): Promise<void> {
  const pending = new Set(contexts.filter(c => !ready(c)))
  if (pending.size === 0) return
  await new Promise<void>((resolve, reject) => {
    const offs: Array<() => void> = []
    const timer = setTimeout(() => { done(new Error('updates did not reach every replica within 60 s')) }, 60_000)
    function done (err?: Error): void {
      clearTimeout(timer)
      for (const off of offs) off()
      if (err == null) resolve()
      else reject(err)
    }
    for (const [i, store] of stores.entries()) {
      const ctx = contexts[i] as Context
      offs.push(store.store.events.update.add(({ id }) => {
        if (id !== ctx.id || !pending.has(ctx) || !ready(ctx)) return
        pending.delete(ctx)
        if (pending.size === 0) done()
      }))
    }
  })
}

/** The updates the same edits make on a plain in-memory document, one per edit. */
function sameUpdates (count: number, edit: (doc: Y.Doc, i: number) => void): Uint8Array[] {
  const doc = newContextDoc()
  const out: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => out.push(u))
  for (let i = 0; i < count; i++) edit(doc, i)
  return out
}

function inMemory (updates: Uint8Array[]): { perUpdateMs: number[], perSecond: number } {
  // warm up the same code path once, then measure on a fresh document
  const warm = newContextDoc()
  for (const u of updates) Y.applyUpdate(warm, u)
  const doc = newContextDoc()
  const perUpdateMs: number[] = []
  const t0 = performance.now()
  for (const u of updates) {
    const s = performance.now()
    Y.applyUpdate(doc, u)
    perUpdateMs.push(performance.now() - s)
  }
  const total = performance.now() - t0
  return { perUpdateMs, perSecond: updates.length / (total / 1000) }
}

async function syncedPutMs (dir: string): Promise<number> {
  const db = new Level<string, Uint8Array>(join(dir, 'floor'), { valueEncoding: 'view' })
  await db.open()
  const value = new Uint8Array(40)
  const t0 = performance.now()
  for (let i = 0; i < 200; i++) await db.put(`k${i}`, value, { sync: true } as object)
  const ms = (performance.now() - t0) / 200
  await db.close()
  return ms
}

export async function run (): Promise<BenchResult> {
  const nodes: BenchNode[] = []
  try {
    for (let i = 0; i < NODES; i++) nodes.push(await startNode(i))
    for (let i = 0; i < NODES; i++) {
      for (let j = i + 1; j < NODES; j++) await (nodes[i] as BenchNode).libp2p.dial((nodes[j] as BenchNode).libp2p.getMultiaddrs())
    }
    await waitFor(() => nodes.every(n => n.contexts.linkedPeers().length === NODES - 1), { message: 'full mesh of context links', timeoutMs: 30_000 })
    const writer = nodes[0] as BenchNode
    const others = nodes.slice(1)

    // ---- latency: one small update until all 4 others have it ----
    const latencyCtx = await writer.contexts.store.open('bench-latency')
    await waitFor(() => others.every(n => n.contexts.store.get('bench-latency') != null), { message: 'latency context everywhere' })
    const replicasL = others.map(n => n.contexts.store.get('bench-latency') as Context)
    const latencies: number[] = []
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const t0 = performance.now()
      await latencyCtx.set('seq', i)
      await reachedAll(replicasL, ctx => ctx.get('seq') === i, others.map(n => n.contexts))
      latencies.push(performance.now() - t0)
    }

    // ---- throughput: many updates into one context, until every replica has them all ----
    const tputCtx = await writer.contexts.store.open('bench-throughput')
    await waitFor(() => others.every(n => n.contexts.store.get('bench-throughput') != null), { message: 'throughput context everywhere' })
    const replicasT = others.map(n => n.contexts.store.get('bench-throughput') as Context)
    const t0 = performance.now()
    const writes: Array<Promise<void>> = []
    for (let i = 0; i < THROUGHPUT_UPDATES; i++) writes.push(tputCtx.append(`message ${i}`))
    await Promise.all(writes)
    const ackedMs = performance.now() - t0
    await reachedAll(replicasT, ctx => ctx.doc.getArray('conversation').length === THROUGHPUT_UPDATES, others.map(n => n.contexts))
    const replicatedMs = performance.now() - t0

    const memL = inMemory(sameUpdates(LATENCY_SAMPLES, (doc, i) => { doc.getMap('state').set('seq', i) }))
    const memT = inMemory(sameUpdates(THROUGHPUT_UPDATES, (doc, i) => {
      doc.getArray('conversation').push([{ role: 'user', text: `message ${i}`, node: 'bench-0', time: Date.now() }])
    }))
    const putMs = await syncedPutMs(writer.dir)
    const perSecond = THROUGHPUT_UPDATES / (replicatedMs / 1000)
    return {
      title: `crdt: ${NODES} nodes on loopback, one writer, ${NODES - 1} replicas`,
      rows: [
        { metric: 'small update reaches 4 nodes, p50', value: percentile(latencies, 50), unit: 'ms', baseline: { label: 'in-memory applyUpdate p50', value: percentile(memL.perUpdateMs, 50) } },
        { metric: 'small update reaches 4 nodes, p99', value: percentile(latencies, 99), unit: 'ms', baseline: { label: 'in-memory applyUpdate p99', value: percentile(memL.perUpdateMs, 99) }, note: `${LATENCY_SAMPLES} sequential updates` },
        { metric: 'sustained updates into one context, all 4 replicas', value: perSecond, unit: 'updates/s', baseline: { label: 'in-memory applyUpdate', value: memT.perSecond }, note: `${THROUGHPUT_UPDATES} appends; in-memory is ${(memT.perSecond / perSecond).toFixed(0)}× faster` },
        { metric: 'acknowledged (durable) on the writer', value: THROUGHPUT_UPDATES / (ackedMs / 1000), unit: 'updates/s', baseline: { label: 'bare synced LevelDB put', value: 1000 / putMs } }
      ]
    }
  } finally {
    for (const n of nodes) {
      await n.contexts.stop().catch(() => {})
      await Promise.resolve(n.libp2p.stop()).catch(() => {})
      await n.db.close().catch(() => {})
      await rm(n.dir, { recursive: true, force: true })
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable(await run())
}
