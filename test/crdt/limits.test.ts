// One set of limits for what a node writes and what it accepts: a local change is checked by
// the same validator, with the same bounds, as a peer's update, before it is stored, so nothing
// a node stores can be refused by its peers. And when a peer does refuse an update (one stored
// before these checks existed, or written into the store behind the node's back), it refuses
// that update only: the link stays up, other contexts keep replicating, and no reconnect storm.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import * as Y from 'yjs'
import { MAX_VALUE_DEPTH, ROOT_NAMES, createUpdateLog, newContextDoc, validateUpdate } from '../../crdt/index.ts'
import { HiveNode } from '../../node/hive-node.ts'
import { joinHive } from '../helpers/hive.ts'
import { connect, loopbackInit, makeTempDir } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { startReplica } from './helpers.ts'
import type { Replica } from './helpers.ts'

/** An array nesting whose innermost value sits at `depth` (0: the value itself). */
function nested (depth: number): unknown {
  let value: unknown = 'leaf'
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

describe('local writes are held to the limits peers apply', () => {
  let replica: Replica

  before(async () => { replica = await startReplica('local') })
  after(async () => { await replica.destroy() })

  it(`stores a value nested ${MAX_VALUE_DEPTH} deep, and what it stores passes the peers' validator`, async () => {
    const ctx = await replica.store.open('deep')
    await ctx.set('ok', nested(MAX_VALUE_DEPTH))
    const stored = await replica.store.storedUpdates(ctx.id)
    assert.ok(stored.length > 0)
    for (const update of stored) validateUpdate(update, { maxBytes: replica.store.maxUpdateBytes, rootNames: ROOT_NAMES })
  })

  for (const depth of [MAX_VALUE_DEPTH + 1, 100, 100_000]) {
    it(`refuses a value nested ${depth} deep with ValueTooDeep, storing and changing nothing`, async () => {
      const ctx = await replica.store.open('deep')
      const before = { stored: (await replica.store.storedUpdates(ctx.id)).length, json: JSON.stringify(ctx.doc.toJSON()) }
      await assert.rejects(ctx.set(`k${depth}`, nested(depth)), (err: Error) => {
        assert.equal(err.name, 'ValueTooDeep')
        assert.match(err.message, new RegExp(`deeper than ${MAX_VALUE_DEPTH}`))
        return true
      })
      assert.equal((await replica.store.storedUpdates(ctx.id)).length, before.stored, 'nothing stored')
      assert.equal(JSON.stringify(ctx.doc.toJSON()), before.json, 'document unchanged')
      // the context still takes writes
      await ctx.set('after', depth)
      assert.equal(ctx.get('after'), depth)
    })
  }

  it('a change made in a change function is validated too (a root outside the layout is refused)', async () => {
    const ctx = await replica.store.open('deep')
    const stored = (await replica.store.storedUpdates(ctx.id)).length
    await assert.rejects(ctx.change((_layout, doc) => { doc.getMap('elsewhere').set('k', 1) }), { name: 'MalformedUpdate' })
    assert.equal((await replica.store.storedUpdates(ctx.id)).length, stored)
  })
})

describe('a peer refuses one update, not the link', () => {
  const nodes: HiveNode[] = []
  const dirs: string[] = []

  after(async () => {
    await Promise.all(nodes.map(async n => { await n.stop() }))
    await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
  })

  it('two real nodes: a bad update stored on one is refused by the other, which stays connected and keeps receiving every other context', async () => {
    const dirA = await makeTempDir()
    const dirB = await makeTempDir()
    dirs.push(dirA, dirB)
    const a = await HiveNode.open(loopbackInit(dirA, 'writer'))
    nodes.push(a)
    // A value nested beyond the limit, written into the writer's store directly, as a node
    // from before the local checks (or a hand-edited database) would have it.
    const doc = newContextDoc()
    doc.getMap('state').set('deep', nested(100))
    const log = createUpdateLog(a.db.sublevel('crdt'))
    await log.create('bad' as never, { created: Date.now() })
    await log.append('bad' as never, [Y.encodeStateAsUpdate(doc)])
    await a.start()
    const b = await HiveNode.open(loopbackInit(dirB, 'reader'))
    nodes.push(b)
    await b.start()

    const aErrors: Error[] = []
    const bErrors: Error[] = []
    a.contexts.onError(err => aErrors.push(err))
    b.contexts.onError(err => bErrors.push(err))

    await (await a.contexts.store.open('good')).append('before the join')
    await joinHive([a, b])
    await connect(b, a)
    // counted from the members' connection on (pairing uses a connection of its own)
    let disconnects = 0
    b.libp2p.addEventListener('peer:disconnect', (evt) => { if (evt.detail.equals(a.peerId)) disconnects++ })

    // later edits of other contexts still arrive, over the same link
    for (let i = 0; i < 5; i++) {
      const text = `edit ${i}`
      await (await a.contexts.store.open(`later-${i}`)).append(text)
      await (await a.contexts.store.open('good')).append(text)
      await waitFor(() => b.contexts.store.get(`later-${i}`)?.view().conversation.some(e => e.text === text) === true &&
        b.contexts.store.get('good')?.view().conversation.some(e => e.text === text) === true, { timeoutMs: 10_000, message: `${text} reaches the reader` })
    }
    assert.equal(disconnects, 0, 'the reader never hung up on the writer')
    await waitFor(() => bErrors.find(e => e.name === 'UpdateRefused'), { message: 'reader reports the refused update' })
    const refused = bErrors.find(e => e.name === 'UpdateRefused') as Error
    assert.match(refused.message, /context bad/)
    assert.match(refused.message, new RegExp(a.peerId.toString()))
    assert.match(refused.message, new RegExp(`deeper than ${MAX_VALUE_DEPTH}`))
    await waitFor(() => aErrors.find(e => e.name === 'PeerRefusedUpdate'), { message: 'writer hears which update was refused' })
    assert.match((aErrors.find(e => e.name === 'PeerRefusedUpdate') as Error).message, /context bad/)
    assert.equal(b.contexts.store.get('bad')?.get('deep'), undefined, 'the refused value is not on the reader')

    assert.equal(b.libp2p.getConnections(a.peerId).length > 0, true)
    assert.deepEqual(b.contexts.linkedPeers(), [a.peerId.toString()])
    assert.equal(bErrors.filter(e => e.name === 'ReplicationProtocol').length, 0, 'the writer was not treated as at fault')
  })
})
