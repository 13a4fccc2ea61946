import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import * as Y from 'yjs'
import { contextId, createContextStore } from '../../crdt/index.ts'
import { tempLevel } from './helpers.ts'
import type { ContextStore, LevelHandle } from '../../crdt/index.ts'
import type { TempLevel } from './helpers.ts'

describe('context store', () => {
  let level: TempLevel
  let store: ContextStore

  before(async () => {
    level = await tempLevel('store')
    store = createContextStore({ nodeName: 'laptop' }, { db: level.db.sublevel('crdt') })
    await store.start()
  })
  after(async () => {
    await store.stop()
    await level.destroy()
  })

  it('validates context ids', async () => {
    assert.equal(contextId('agent-7.run_2'), 'agent-7.run_2')
    for (const bad of ['', '-lead', 'a b', 'a:b', 'a/b', 'x'.repeat(129), 'é']) {
      assert.throws(() => contextId(bad), { name: 'InvalidContextId' }, bad)
    }
    await assert.rejects(store.open('no spaces'), { name: 'InvalidContextId' })
    assert.deepEqual(store.ids(), [])
  })

  it('creates a context on first use with the documented layout, and lists it', async () => {
    assert.equal(store.get('notes'), undefined)
    const ctx = await store.open('notes')
    assert.deepEqual(ctx.view(), { conversation: [], state: {}, checkpoints: [] })
    assert.ok(ctx.doc.share.get('conversation') instanceof Y.Array)
    assert.ok(ctx.doc.share.get('state') instanceof Y.Map)
    assert.ok(ctx.doc.share.get('checkpoints') instanceof Y.Map)
    assert.equal(ctx.doc.gc, false)
    assert.equal(await store.open('notes'), ctx)
    await ctx.append('hello', { role: 'user' })
    await ctx.set('model', 'small')
    const info = store.list().find(c => c.id === 'notes')
    assert.deepEqual({ ...info, created: 0 }, { id: 'notes', created: 0, entries: 1, keys: 1, checkpoints: 0 })
    const entry = ctx.view().conversation[0]
    assert.equal(entry?.text, 'hello')
    assert.equal(entry?.node, 'laptop')
  })

  it('names the current state with a checkpoint and reads the context as of it', async () => {
    const ctx = await store.open('plan')
    await ctx.append('first')
    await ctx.set('step', 1)
    const cp = await ctx.checkpoint('before-step-2')
    assert.equal(cp.name, 'before-step-2')
    await ctx.append('second')
    await ctx.set('step', 2)
    await ctx.delete('missing')
    const then = ctx.at('before-step-2')
    assert.deepEqual(then.conversation.map(e => e.text), ['first'])
    assert.deepEqual(then.state, { step: 1 })
    assert.deepEqual(ctx.view().conversation.map(e => e.text), ['first', 'second'])
    assert.deepEqual(ctx.checkpoints().map(c => c.name), ['before-step-2'])
    await assert.rejects(ctx.checkpoint('before-step-2'), { name: 'CheckpointExists' })
    await assert.rejects(ctx.checkpoint('  '), { name: 'InvalidCheckpointName' })
    assert.throws(() => ctx.at('nope'), { name: 'CheckpointNotFound' })
    // the refused checkpoint left nothing behind
    assert.deepEqual(ctx.checkpoints().map(c => c.name), ['before-step-2'])
  })

  it('keeps nothing of a change whose function throws', async () => {
    const ctx = await store.open('atomic')
    await ctx.set('kept', true)
    const before = Y.encodeStateVector(ctx.doc)
    await assert.rejects(ctx.change(layout => {
      layout.state.set('half', 'done')
      throw new Error('agent crashed')
    }), /agent crashed/)
    assert.deepEqual(ctx.view().state, { kept: true })
    assert.deepEqual(Y.encodeStateVector(ctx.doc), before)
    await ctx.set('after', 1)
    assert.deepEqual(ctx.view().state, { kept: true, after: 1 })
  })

  it('honours an aborted signal before changing anything', async () => {
    const ctx = await store.open('abort')
    await assert.rejects(ctx.set('k', 'v', { signal: AbortSignal.abort() }), { name: 'AbortError' })
    assert.deepEqual(ctx.view().state, {})
  })

  it('refuses a local change larger than the update limit', async () => {
    const small = createContextStore({ nodeName: 'tiny', maxUpdateBytes: 1024 }, { db: level.db.sublevel('tiny') })
    await small.start()
    try {
      const ctx = await small.open('big')
      await assert.rejects(ctx.append('x'.repeat(4096)), { name: 'UpdateTooLarge' })
      assert.deepEqual(ctx.view().conversation, [])
      await ctx.append('fits')
      assert.equal(ctx.view().conversation.length, 1)
    } finally {
      await small.stop()
    }
  })
})

describe('updates waiting for missing dependencies', () => {
  it('are held up to maxPendingBytes per context; past it they are dropped with PendingOverLimit, and arrive again in order', async () => {
    const level = await tempLevel('pending')
    const source = createContextStore({ nodeName: 'source' }, { db: level.db.sublevel('source') })
    const sink = createContextStore({ nodeName: 'sink', maxPendingBytes: 2048 }, { db: level.db.sublevel('sink') })
    await source.start()
    await sink.start()
    try {
      const updates: Uint8Array[] = []
      source.events.update.add(({ update }) => { updates.push(update) })
      const ctx = await source.open('waits')
      await ctx.append('first')
      await ctx.append('small')
      await ctx.append('y'.repeat(4096))
      const [first, small, large] = updates as [Uint8Array, Uint8Array, Uint8Array]
      const id = contextId('waits')
      // a small update without the one before it waits, within the bound
      await sink.applyRemote(id, small, 'peer')
      // a large one would pass the bound: refused, and what waited is dropped with it
      await assert.rejects(sink.applyRemote(id, large, 'peer'), { name: 'PendingOverLimit', message: /exceed 2048 bytes; they were dropped and arrive again with the next sync/ })
      // in order, all of it applies
      for (const u of [first, small, large]) await sink.applyRemote(id, u, 'peer')
      assert.deepEqual(sink.get(id)?.view().conversation.map(m => m.text.slice(0, 5)), ['first', 'small', 'yyyyy'])
    } finally {
      await sink.stop()
      await source.stop()
      await level.destroy()
    }
  })
})

describe('a failed write', () => {
  it('is the caller\'s error, and the change is neither applied nor emitted', async () => {
    const level = await tempLevel('failing')
    let failWrites = false
    const db = level.db.sublevel('crdt')
    // a handle whose writes fail on demand, as a full or broken disk would
    const failing = new Proxy(db, {
      get (target, prop, receiver) {
        if (prop === 'sublevel') {
          return (name: string, options: object) => {
            const sub = target.sublevel(name, options)
            return new Proxy(sub, {
              get (t, p, r) {
                if (p === 'put' || p === 'batch') {
                  return async (...args: unknown[]) => {
                    if (failWrites) throw new Error('EIO: simulated disk failure')
                    return await (Reflect.get(t, p, r) as (...a: unknown[]) => Promise<void>).apply(t, args)
                  }
                }
                const value = Reflect.get(t, p, r)
                return typeof value === 'function' ? value.bind(t) : value
              }
            })
          }
        }
        const value = Reflect.get(target, prop, receiver)
        return typeof value === 'function' ? value.bind(target) : value
      }
    }) as LevelHandle
    const store = createContextStore({ nodeName: 'n' }, { db: failing })
    await store.start()
    try {
      const ctx = await store.open('c')
      await ctx.set('a', 1)
      const emitted: unknown[] = []
      store.events.update.add(e => emitted.push(e))
      failWrites = true
      await assert.rejects(ctx.set('b', 2), { name: 'ContextWriteFailed', message: /EIO/ })
      assert.deepEqual(ctx.view().state, { a: 1 })
      assert.deepEqual(emitted, [])
      failWrites = false
      await ctx.set('c', 3)
      assert.deepEqual(ctx.view().state, { a: 1, c: 3 })
      assert.equal(emitted.length, 1)
      const stored = await store.storedUpdates(ctx.id)
      const rebuilt = new Y.Doc({ gc: false })
      for (const u of stored) Y.applyUpdate(rebuilt, u)
      assert.deepEqual(rebuilt.getMap('state').toJSON(), { a: 1, c: 3 })
    } finally {
      await store.stop()
      await level.destroy()
    }
  })
})
