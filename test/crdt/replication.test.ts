import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { streamPair } from '@libp2p/utils'
import * as decoding from 'lib0/decoding'
import { FrameDecoder, decodeMessage } from '../../protocol/wire/index.ts'
import { MESSAGE_SYNC } from '../../crdt/index.ts'
import { assertConverged, connect, onStoreEvents, startReplica, allConverged, waitFor } from './helpers.ts'
import type { Replica } from './helpers.ts'
import { z } from 'zod'
import type { Stream } from '@libp2p/interface'

describe('replication', () => {
  it('merges offline edits made on two replicas to the same context once they reconnect', async () => {
    const a = await startReplica('laptop')
    const b = await startReplica('desktop')
    try {
      // both create the context on their own while apart, and edit it
      const onA = await a.store.open('trip')
      const onB = await b.store.open('trip')
      await onA.append('book the train')
      await onA.set('budget', 300)
      await onA.set('owner', 'laptop')
      await onB.append('find a hotel')
      await onB.set('nights', 2)
      await onB.set('owner', 'desktop')
      await connect(a, b)
      await waitFor(() => allConverged([a, b]), onStoreEvents([a, b]), 5000)
      assertConverged([a, b])
      const view = onA.view()
      assert.deepEqual(view.conversation.map(e => e.text).sort(), ['book the train', 'find a hotel'])
      assert.equal(view.state.budget, 300)
      assert.equal(view.state.nights, 2)
      assert.ok(view.state.owner === 'laptop' || view.state.owner === 'desktop')
      assert.deepEqual(onB.view(), view)
    } finally {
      await a.destroy()
      await b.destroy()
    }
  })

  it('brings a replica that was stopped up to date on reconnect, and sends what it wrote before', async () => {
    const a = await startReplica('a')
    let c = await startReplica('c')
    try {
      const wire = await connect(a, c)
      await (await a.store.open('shared')).append('one')
      await waitFor(() => c.store.get('shared')?.view().conversation.length === 1, onStoreEvents([c]), 5000)
      wire.cut()
      await wire.closed
      // c writes while cut off, then stops
      await (await c.store.open('shared')).append('written by c offline')
      await (await c.store.open('c-only')).set('x', 1)
      const level = c.level
      await c.stop()
      // meanwhile a moves on
      await (await a.store.open('shared')).append('two')
      await (await a.store.open('a-new')).append('hello')
      c = await startReplica('c', { level })
      await connect(a, c)
      await waitFor(() => allConverged([a, c]) && a.store.ids().length === 3 && c.store.ids().length === 3, onStoreEvents([a, c]), 5000)
      assertConverged([a, c])
      assert.deepEqual(a.store.get('shared')?.view().conversation.map(e => e.text).sort(), ['one', 'two', 'written by c offline'])
      assert.deepEqual(a.store.get('c-only')?.view().state, { x: 1 })
    } finally {
      await a.destroy()
      await c.destroy()
    }
  })

  it('sends a new context, even an empty one, to every connected replica', async () => {
    const replicas = await Promise.all(['a', 'b', 'c'].map(async n => await startReplica(n)))
    try {
      const [a, b, c] = replicas as [Replica, Replica, Replica]
      await connect(a, b)
      await connect(b, c) // c hears of a's contexts only through b
      await a.store.open('empty-one')
      await waitFor(() => c.store.has('empty-one' as never), onStoreEvents([c]), 5000)
      await (await c.store.open('from-c')).append('hi')
      await waitFor(() => a.store.get('from-c')?.view().conversation.length === 1, onStoreEvents([a]), 5000)
      assertConverged(replicas)
    } finally {
      await Promise.all(replicas.map(async r => { await r.destroy() }))
    }
  })

  it('does not echo an update back to the peer it came from', async () => {
    const a = await startReplica('a')
    const b = await startReplica('b')
    try {
      // a <-> b through a relay that counts sync updates in each direction
      const [aEnd, relayA] = await streamPair()
      const [relayB, bEnd] = await streamPair()
      const counts = { aToB: 0, bToA: 0 }
      void countingRelay(relayA, relayB, () => { counts.aToB++ })
      void countingRelay(relayB, relayA, () => { counts.bToA++ })
      a.replication.attach(aEnd, { peer: 'b' })
      b.replication.attach(bEnd, { peer: 'a' })
      const ctx = await a.store.open('quiet')
      await waitFor(() => b.store.has(ctx.id), onStoreEvents([b]), 5000)
      counts.aToB = 0
      counts.bToA = 0
      for (let i = 0; i < 5; i++) await ctx.append(`m${i}`)
      await waitFor(() => b.store.get('quiet')?.view().conversation.length === 5, onStoreEvents([b]), 5000)
      // one more round trip so anything b would have sent back has arrived
      await (await b.store.open('quiet')).set('ack', true)
      await waitFor(() => ctx.get('ack') === true, onStoreEvents([a]), 5000)
      assert.equal(counts.aToB, 5)
      assert.equal(counts.bToA, 1, 'b sent only its own update, nothing back')
    } finally {
      await a.destroy()
      await b.destroy()
    }
  })

  it('carries presence: which node works in which context, relayed, and dropped when a link closes', async () => {
    const replicas = await Promise.all(['a', 'b', 'c'].map(async n => await startReplica(n)))
    try {
      const [a, b, c] = replicas as [Replica, Replica, Replica]
      const ab = await connect(a, b)
      await connect(b, c)
      const changes = (r: Replica) => (fn: () => void) => r.presence.onChange(fn)
      const seenBy = (r: Replica, node: string): string[] | undefined => r.presence.list().find(p => p.node === node)?.contexts
      const ctx = await a.store.open('research')
      a.presence.setWorking(ctx.id, true)
      await waitFor(() => seenBy(c, 'a')?.includes('research') === true, [changes(c)], 5000, () => JSON.stringify(c.presence.list()))
      assert.deepEqual(c.presence.list().map(p => p.node), ['c', 'a', 'b'])
      assert.equal(c.presence.list()[0]?.self, true)
      a.presence.setWorking(ctx.id, false)
      await waitFor(() => seenBy(c, 'a')?.length === 0, [changes(c)], 5000)
      ab.cut()
      await ab.closed
      assert.equal(seenBy(b, 'a'), undefined, 'b dropped a when their link closed')
    } finally {
      await Promise.all(replicas.map(async r => { await r.destroy() }))
    }
  })
})

const syncFrame = z.object({ t: z.number(), c: z.string().optional(), m: z.instanceof(Uint8Array) })

/** Forwards bytes unchanged, calling `onUpdate` for every sync update message that passes. */
async function countingRelay (from: Stream, to: Stream, onUpdate: () => void): Promise<void> {
  const decoder = new FrameDecoder(1 << 24)
  try {
    for await (const chunk of from) {
      decoder.push(chunk)
      for (let body = decoder.next(); body != null; body = decoder.next()) {
        const message = decodeMessage(body, syncFrame)
        if (message.t === MESSAGE_SYNC && decoding.readVarUint(decoding.createDecoder(message.m)) === 2) onUpdate()
      }
      if (!to.send(chunk)) await to.onDrain()
    }
    await to.close()
  } catch (err) {
    to.abort(err as Error)
  }
}

