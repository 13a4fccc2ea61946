import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { Level } from 'level'
import * as Y from 'yjs'
import { createContextStore, newContextDoc } from '../../crdt/index.ts'
import { tempLevel } from './helpers.ts'

const WRITER = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url))

function rebuild (updates: Uint8Array[]): Y.Doc {
  const doc = newContextDoc()
  for (const u of updates) Y.applyUpdate(doc, u)
  return doc
}

describe('durability', () => {
  it('keeps every edit made before a clean stop, and the stored updates rebuild the live document', async () => {
    const level = await tempLevel('restart')
    try {
      const db = level.db.sublevel('crdt')
      const first = createContextStore({ nodeName: 'a', compactAfter: 10 }, { db })
      await first.start()
      const ctx = await first.open('diary')
      for (let i = 0; i < 30; i++) await ctx.append(`line ${i}`)
      await ctx.set('mood', 'fine')
      await ctx.checkpoint('morning')
      await ctx.set('mood', 'tired')
      await (await first.open('other')).set('x', 1)
      const live = { view: ctx.view(), sv: Y.encodeStateVector(ctx.doc), snapshot: Y.snapshot(ctx.doc) }
      const rebuilt = rebuild(await first.storedUpdates(ctx.id))
      assert.ok(Y.equalSnapshots(Y.snapshot(rebuilt), live.snapshot), 'stored updates rebuild the live state')
      assert.deepEqual(rebuilt.toJSON(), ctx.doc.toJSON())
      await first.stop()

      const second = createContextStore({ nodeName: 'a' }, { db })
      await second.start()
      try {
        assert.deepEqual(second.ids(), ['diary', 'other'])
        const again = second.get('diary')
        assert.ok(again != null)
        assert.deepEqual(again.view(), live.view)
        assert.deepEqual(Y.encodeStateVector(again.doc), live.sv)
        assert.deepEqual(again.at('morning').state, { mood: 'fine' })
        assert.equal(again.at('morning').conversation.length, 30)
        // and it keeps working after the restart
        await again.append('line 30')
        assert.equal(again.view().conversation.length, 31)
      } finally {
        await second.stop()
      }
    } finally {
      await level.destroy()
    }
  })

  it('compacts stored updates into one, atomically, without losing any, also while writes continue', async () => {
    const level = await tempLevel('compact')
    const store = createContextStore({ nodeName: 'a', compactAfter: 1_000_000 }, { db: level.db.sublevel('crdt') })
    await store.start()
    try {
      const ctx = await store.open('log')
      for (let i = 0; i < 40; i++) await ctx.append(`e${i}`)
      await ctx.checkpoint('forty')
      assert.equal((await store.storedUpdates(ctx.id)).length, 41)
      // writes racing the compaction land after it, under their own keys
      const writes = Promise.all(Array.from({ length: 10 }, async (_, i) => { await ctx.set(`k${i}`, i) }))
      const result = await store.compact(ctx.id)
      await writes
      assert.ok(result.merged >= 41, `merged ${result.merged}`)
      const stored = await store.storedUpdates(ctx.id)
      assert.ok(stored.length <= 11, `${stored.length} stored after compaction`)
      const rebuilt = rebuild(stored)
      assert.ok(Y.equalSnapshots(Y.snapshot(rebuilt), Y.snapshot(ctx.doc)))
      assert.deepEqual(rebuilt.toJSON(), ctx.doc.toJSON())
      // gc stays off through compaction: the checkpoint still reads
      await store.compact(ctx.id)
      assert.equal((await store.storedUpdates(ctx.id)).length, 1)
      assert.equal(ctx.at('forty').conversation.length, 40)
    } finally {
      await store.stop()
      await level.destroy()
    }
  })

  it('compacts in the background once enough updates are stored', async () => {
    const level = await tempLevel('autocompact')
    const store = createContextStore({ nodeName: 'a', compactAfter: 20 }, { db: level.db.sublevel('crdt') })
    await store.start()
    try {
      const ctx = await store.open('busy')
      for (let i = 0; i < 60; i++) await ctx.append(`e${i}`)
      await store.stop() // waits for background compaction
      await store.start()
      const stored = await store.storedUpdates(ctx.id)
      assert.ok(stored.length < 60, `${stored.length} updates stored for 60 edits`)
      assert.equal(store.get('busy')?.view().conversation.length, 60)
    } finally {
      await store.stop()
      await level.destroy()
    }
  })

  it('keeps every acknowledged update of a process killed with SIGKILL while writing', async () => {
    const level = await tempLevel('crash')
    await level.db.close()
    try {
      const child = spawn(process.execPath, [WRITER, level.dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      const acked: string[] = []
      let stderr = ''
      child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
      const exited = new Promise<NodeJS.Signals | null>((resolve) => { child.once('exit', (_code, signal) => { resolve(signal) }) })
      await new Promise<void>((resolve, reject) => {
        let buffer = ''
        child.stdout.on('data', (chunk: Buffer) => {
          buffer += chunk.toString()
          let nl: number
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl)
            buffer = buffer.slice(nl + 1)
            if (line.startsWith('acked ')) acked.push(line.slice(6))
          }
          // kill it mid-stream, well past several background compactions
          if (acked.length >= 150 && child.exitCode == null && child.signalCode == null) {
            child.kill('SIGKILL')
            resolve()
          }
        })
        void exited.then(() => { reject(new Error(`writer exited before it was killed: ${stderr}`)) })
      })
      assert.equal(await exited, 'SIGKILL')

      const db = new Level<string, string>(level.dir)
      await db.open()
      const store = createContextStore({ nodeName: 'after' }, { db: db.sublevel('crdt') })
      await store.start()
      try {
        const view = store.get('journal')?.view()
        assert.ok(view != null, 'the context survived')
        const texts = new Set(view.conversation.map(e => e.text))
        const keys = new Map<string, number>()
        for (const item of acked) {
          const eq = item.indexOf('=')
          if (eq < 0) {
            assert.ok(texts.has(item), `acknowledged ${item} is missing after the crash`)
          } else {
            keys.set(item.slice(0, eq), Number(item.slice(eq + 1)))
          }
        }
        for (const [key, value] of keys) {
          const stored = view.state[key] as number
          assert.ok(stored >= value, `acknowledged ${key}=${value} lost (found ${stored})`)
        }
      } finally {
        await store.stop()
        await db.close()
      }
    } finally {
      await level.destroy().catch(() => {})
    }
  })
})
