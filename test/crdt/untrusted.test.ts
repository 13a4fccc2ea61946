// Untrusted input: what a peer sends is validated before Yjs sees it. Includes the inputs
// reported to hang or break Yjs (yjs#498 zero-length update, yjs#687 crafted run lengths,
// yjs#479 garbage), crafted v1 updates with impossible counts and lengths, truncated and
// padded updates, and the same inputs sent over a replication link: the sender is dropped,
// the document is unchanged, nothing is stored, and the node keeps replicating with others.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { streamPair } from '@libp2p/utils'
import * as encoding from 'lib0/encoding'
import * as prng from 'lib0/prng'
import * as syncProtocol from 'y-protocols/sync'
import * as Y from 'yjs'
import { z } from 'zod'
import { encodeFrame, FramedStream } from '../../protocol/wire/index.ts'
import { MAX_CLOCK, MESSAGE_AWARENESS, MESSAGE_REFUSED, MESSAGE_SYNC, ROOT_NAMES, validateSnapshot, validateStateVector, validateUpdate } from '../../crdt/index.ts'
import { connect, startReplica, waitFor } from './helpers.ts'
import type { Replica } from './helpers.ts'

const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'))

/** yjs#687: the reporter's run-length input that makes Y.mergeUpdatesV2 loop forever. */
const YJS_687 = hex('00010000000001000100010200001602000001fdffffffff7f0000')
/** yjs#479: base64 "garbagedoc", which hung Y.applyUpdate in older releases. */
const YJS_479 = Uint8Array.from(Buffer.from('garbagedoc', 'base64'))
/** yjs#498: the zero-length update. */
const YJS_498 = new Uint8Array(0)

function varuint (n: number): number[] {
  const out: number[] = []
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80)
    n = Math.floor(n / 0x80)
  }
  out.push(n)
  return out
}

function str (s: string): number[] {
  const bytes = [...Buffer.from(s, 'utf8')]
  return [...varuint(bytes.length), ...bytes]
}

/** One client, one item in root `root`, content built by `content`; then an empty delete set. */
function oneItem (info: number, content: number[], root = 'state', key?: string): Uint8Array {
  const keyBytes = key == null ? [] : str(key)
  return Uint8Array.from([1, 1, ...varuint(42), 0, info | (key == null ? 0 : 0x20), 1, ...str(root), ...keyBytes, ...content, 0])
}

const CRAFTED: Record<string, Uint8Array> = {
  'zero-length update (yjs#498)': YJS_498,
  'run-length crafted update (yjs#687)': YJS_687,
  'garbage (yjs#479)': YJS_479,
  'struct count far beyond the bytes present': Uint8Array.from([1, ...varuint(2 ** 32 - 1), 1, 0, 0]),
  'client count far beyond the bytes present': Uint8Array.from([...varuint(2 ** 40), 0]),
  'GC range of length 2^53': Uint8Array.from([1, 1, 7, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f, 0]),
  'varint longer than 53 bits': Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
  'delete set range of length 2^52': Uint8Array.from([0, 1, 7, 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x08]),
  'value array claiming 2^31 elements': oneItem(8, [1, 117, ...varuint(2 ** 31)], 'state', 'k'),
  'unknown value tag': oneItem(8, [1, 3], 'state', 'k'),
  'unknown content type': oneItem(11, [0], 'state', 'k'),
  'subdocument content': oneItem(9, [...str('guid'), 118, 0], 'state', 'k'),
  'root type outside the layout': oneItem(4, str('hi'), 'evil'),
  'JSON content that is not JSON': oneItem(2, [1, ...str('{nope')], 'state', 'k'),
  'string that is not UTF-8': oneItem(4, [2, 0xc3, 0x28]),
  'empty string content': oneItem(4, [0]),
  'unknown parent info': Uint8Array.from([1, 1, 1, 0, 4, 7, ...str('x'), 0]),
  'trailing bytes after a valid update': Uint8Array.from([0, 0, 0])
}

/** Well-formed, but beyond a limit: refused, without hanging up on the sender. */
const BEYOND_LIMITS: Record<string, Uint8Array> = {
  'values nested 5,000 deep': oneItem(8, [1, ...Array<number>(5_000).fill(117).flatMap(t => [t, 1]), 126], 'state', 'k'),
  'values nested 65 deep': oneItem(8, [1, ...Array<number>(65).fill(117).flatMap(t => [t, 1]), 126], 'state', 'k')
}

function legit (): { updates: Uint8Array[], doc: Y.Doc } {
  const rng = prng.create(99)
  const docs = [new Y.Doc({ gc: false }), new Y.Doc({ gc: false }), new Y.Doc({ gc: true })]
  const updates: Uint8Array[] = []
  for (const doc of docs) doc.on('update', (u: Uint8Array) => updates.push(u))
  for (let i = 0; i < 300; i++) {
    const doc = prng.oneOf(rng, docs)
    const conversation = doc.getArray<unknown>('conversation')
    const state = doc.getMap<unknown>('state')
    const checkpoints = doc.getMap<unknown>('checkpoints')
    switch (prng.int32(rng, 0, 9)) {
      case 0: conversation.push([{ role: 'user', text: prng.utf16String(rng, 30), node: 'n', time: i }]); break
      case 1: state.set(prng.word(rng, 1, 3), prng.oneOf(rng, [null, true, 1.5, -7, 2 ** 40, 'x', [1, [2, { a: 3 }]], new Uint8Array([1, 2]), undefined])); break
      case 2: if (conversation.length > 0) conversation.delete(0, Math.min(2, conversation.length)); break
      case 3: { const text = new Y.Text(); state.set('text', text); text.insert(0, prng.utf16String(rng, 10), { bold: true }); text.insertEmbed(0, { img: 'x' }); break }
      case 4: { const nested = new Y.Map<unknown>(); state.set('nested', nested); nested.set('inner', new Y.Array()); break }
      case 5: state.delete(prng.word(rng, 1, 3)); break
      case 6: { const xml = new Y.XmlElement('p'); state.set('xml', xml); xml.insert(0, [new Y.XmlText('t')]); break }
      case 7: checkpoints.set(`c${i}`, { snapshot: Y.encodeSnapshot(Y.snapshot(doc)), time: i, node: 'n' }); break
      case 8: conversation.insert(0, [new Uint8Array([9, 9]), 'plain']); break
      default: {
        const a = prng.oneOf(rng, docs)
        const b = prng.oneOf(rng, docs)
        Y.applyUpdate(b, Y.encodeStateAsUpdate(a, Y.encodeStateVector(b)))
      }
    }
  }
  const merged = Y.mergeUpdates(updates)
  updates.push(merged, Y.encodeStateAsUpdate(docs[0] as Y.Doc), Y.diffUpdate(merged, Y.encodeStateVector(docs[1] as Y.Doc)), Y.encodeStateAsUpdate(new Y.Doc()))
  return { updates, doc: docs[0] as Y.Doc }
}

describe('update validation', () => {
  const limits = { maxBytes: 1 << 20, rootNames: ROOT_NAMES }

  it('accepts everything Yjs itself produces (transactions, merges, diffs, full states, snapshots)', () => {
    const { updates, doc } = legit()
    assert.ok(updates.length > 300)
    for (const u of updates) validateUpdate(u, limits)
    validateStateVector(Y.encodeStateVector(doc), 1 << 20)
    validateSnapshot(Y.encodeSnapshot(Y.snapshot(doc)))
  })

  for (const [name, bytes] of Object.entries(CRAFTED)) {
    it(`refuses ${name}`, () => {
      assert.throws(() => validateUpdate(bytes, limits), { name: 'MalformedUpdate' })
    })
  }

  for (const [name, bytes] of Object.entries(BEYOND_LIMITS)) {
    it(`refuses ${name} as beyond the depth limit`, () => {
      assert.throws(() => validateUpdate(bytes, limits), { name: 'ValueTooDeep' })
    })
  }

  it('accepts values nested exactly 64 deep', () => {
    validateUpdate(oneItem(8, [1, ...Array<number>(64).fill(117).flatMap(t => [t, 1]), 126], 'state', 'k'), limits)
  })

  it('refuses every truncation of a valid update (Yjs would integrate part of one before failing)', () => {
    const doc = new Y.Doc({ gc: false })
    doc.getArray('conversation').push(['a', 'b', { c: 1 }])
    doc.getMap('state').set('k', 'v')
    doc.getArray('conversation').delete(0, 1)
    const full = Y.encodeStateAsUpdate(doc)
    validateUpdate(full, limits)
    for (let cut = 0; cut < full.byteLength; cut++) {
      assert.throws(() => validateUpdate(full.subarray(0, cut), limits), { name: 'MalformedUpdate' }, `prefix of ${cut} bytes`)
    }
  })

  it('refuses an update over the size limit before reading it', () => {
    assert.throws(() => validateUpdate(new Uint8Array(2048), { maxBytes: 1024, rootNames: ROOT_NAMES }), { name: 'UpdateTooLarge' })
  })

  it('refuses a clock beyond MAX_CLOCK (2^32) in a state vector and in an update\'s delete set, and takes the limit itself', () => {
    assert.equal(MAX_CLOCK, 2 ** 32)
    const vector = (clock: number): Uint8Array => {
      const e = encoding.createEncoder()
      encoding.writeVarUint(e, 1)
      encoding.writeVarUint(e, 7)
      encoding.writeVarUint(e, clock)
      return encoding.toUint8Array(e)
    }
    validateStateVector(vector(MAX_CLOCK), 1 << 20)
    assert.throws(() => validateStateVector(vector(MAX_CLOCK + 1), 1 << 20), { name: 'MalformedUpdate', message: /clock 4294967297 beyond the limit of 4294967296/ })
    // an update: no structs, one delete range starting past the limit
    const update = (from: number): Uint8Array => {
      const e = encoding.createEncoder()
      encoding.writeVarUint(e, 0)
      encoding.writeVarUint(e, 1)
      encoding.writeVarUint(e, 7)
      encoding.writeVarUint(e, 1)
      encoding.writeVarUint(e, from)
      encoding.writeVarUint(e, 1)
      return encoding.toUint8Array(e)
    }
    validateUpdate(update(MAX_CLOCK - 1), limits)
    assert.throws(() => validateUpdate(update(MAX_CLOCK), limits), { name: 'MalformedUpdate', message: /beyond the limit/ })
  })

  it('refuses malformed state vectors and snapshots', () => {
    assert.throws(() => validateStateVector(Uint8Array.from([5, 1]), 1024), { name: 'MalformedUpdate' })
    assert.throws(() => validateStateVector(Uint8Array.from([0, 0]), 1024), { name: 'MalformedUpdate' })
    assert.throws(() => validateSnapshot(Uint8Array.from([1])), { name: 'MalformedUpdate' })
  })
})

describe('untrusted updates from a peer', () => {
  let a: Replica
  let b: Replica

  before(async () => {
    a = await startReplica('a', { maxUpdateBytes: 16 * 1024 })
    b = await startReplica('b', { maxUpdateBytes: 16 * 1024 })
    await connect(a, b)
    await (await a.store.open('shared')).append('before the attacks')
    await waitFor(() => b.store.get('shared')?.view().conversation.length === 1, [fn => b.store.events.update.add(fn)], 5000)
  })
  after(async () => {
    await a.destroy()
    await b.destroy()
  })

  function syncUpdate (update: Uint8Array): Uint8Array {
    const encoder = encoding.createEncoder()
    syncProtocol.writeUpdate(encoder, update)
    return encoding.toUint8Array(encoder)
  }

  const big = (() => {
    const doc = new Y.Doc()
    doc.getArray('conversation').push(['x'.repeat(32 * 1024)])
    return Y.encodeStateAsUpdate(doc)
  })()

  const attacks: Record<string, () => Uint8Array> = {
    ...Object.fromEntries(Object.entries(CRAFTED).map(([name, bytes]) => [name, () => encodeFrame({ t: MESSAGE_SYNC, c: 'shared', m: syncUpdate(bytes) }, 1 << 22)])),
    'an update over the size limit': () => encodeFrame({ t: MESSAGE_SYNC, c: 'shared', m: syncUpdate(big) }, 1 << 22),
    'a frame over the frame limit': () => encodeFrame({ t: MESSAGE_SYNC, c: 'shared', m: new Uint8Array(1 << 21) }, 1 << 22),
    'a frame that is not CBOR': () => Uint8Array.from([3, 0xff, 0xff, 0xff]),
    'an unknown message type': () => encodeFrame({ t: 9, m: new Uint8Array(1) }),
    'an invalid context id': () => encodeFrame({ t: MESSAGE_SYNC, c: '../etc', m: syncUpdate(Uint8Array.from([0, 0])) }),
    'an unknown sync message type': () => encodeFrame({ t: MESSAGE_SYNC, c: 'shared', m: Uint8Array.from([7, 0]) }),
    'a sync step 1 with a broken state vector': () => encodeFrame({ t: MESSAGE_SYNC, c: 'shared', m: Uint8Array.from([0, 2, 9, 1]) }),
    'an awareness update that is not a presence record': () => {
      const state = Buffer.from(JSON.stringify({ evil: true }))
      return encodeFrame({ t: MESSAGE_AWARENESS, m: Uint8Array.from([1, 5, 1, ...varuint(state.length), ...state]) })
    },
    'an awareness update with broken JSON': () => encodeFrame({ t: MESSAGE_AWARENESS, m: Uint8Array.from([1, 5, 1, 2, 0x7b, 0x7b]) })
  }

  for (const [name, bytes] of Object.entries(BEYOND_LIMITS)) {
    it(`refuses an update with ${name} but keeps the link, and tells the sender which`, async () => {
      const ctx = a.store.get('shared')
      assert.ok(ctx != null)
      const before = { json: JSON.stringify(ctx.doc.toJSON()), stored: (await a.store.storedUpdates(ctx.id)).length }
      const faults = a.faults.length
      const errors = a.errors.length
      const [peerEnd, aEnd] = await streamPair()
      const link = a.replication.attach(aEnd, { peer: 'old-peer', onFault: err => a.faults.push(err) })
      const peer = new FramedStream(peerEnd, { maxMessageBytes: 1 << 22 })
      const heard: Array<{ t: number, c?: string, code?: string, reason?: string }> = []
      const reading = (async () => {
        for await (const message of peer.messages(z.object({ t: z.number() }).passthrough())) {
          heard.push(message as { t: number })
          if (message.t === MESSAGE_REFUSED) return
        }
      })()
      await peer.writeRaw(encodeFrame({ t: MESSAGE_SYNC, c: 'shared', m: syncUpdate(bytes) }, 1 << 22))
      await reading
      const refusal = heard.at(-1)
      assert.equal(refusal?.c, 'shared')
      assert.equal(refusal?.code, 'ValueTooDeep')
      assert.match(refusal?.reason ?? '', /deeper than 64/)
      assert.equal(a.faults.length, faults, 'not treated as a fault')
      assert.equal(a.errors.slice(errors).map(e => e.name).join(), 'UpdateRefused')
      a.errors.splice(errors)
      assert.equal(JSON.stringify(ctx.doc.toJSON()), before.json, 'document unchanged')
      assert.equal((await a.store.storedUpdates(ctx.id)).length, before.stored, 'nothing stored')
      assert.ok(a.replication.links().includes(link), 'the link is still open')
      link.close()
      await link.closed
    })
  }

  for (const [name, frame] of Object.entries(attacks)) {
    it(`drops a peer that sends ${name}, leaving the document and storage untouched`, async () => {
      const ctx = a.store.get('shared')
      assert.ok(ctx != null)
      const before = { snapshot: Y.snapshot(ctx.doc), json: JSON.stringify(ctx.doc.toJSON()), stored: (await a.store.storedUpdates(ctx.id)).length, ids: a.store.ids() }
      const faults = a.faults.length
      const [rogueEnd, aEnd] = await streamPair()
      const link = a.replication.attach(aEnd, { peer: 'rogue', onFault: err => a.faults.push(err) })
      const rogue = new FramedStream(rogueEnd, { maxMessageBytes: 1 << 22 })
      // the node may reset the stream before a large frame is fully written
      await rogue.writeRaw(frame()).catch(() => {})
      await link.closed
      assert.equal(a.faults.length, faults + 1, 'the rogue peer was reported as at fault')
      assert.equal(a.faults.at(-1)?.name, 'ReplicationProtocol')
      assert.ok(Y.equalSnapshots(before.snapshot, Y.snapshot(ctx.doc)), 'document unchanged')
      assert.equal(JSON.stringify(ctx.doc.toJSON()), before.json)
      assert.equal((await a.store.storedUpdates(ctx.id)).length, before.stored, 'nothing stored')
      assert.deepEqual(a.store.ids(), before.ids)

      // still responsive: an edit on b reaches a over the honest link
      const text = `after ${name}`
      await (await b.store.open('shared')).append(text)
      await waitFor(() => ctx.view().conversation.some(e => e.text === text), [fn => a.store.events.update.add(fn)], 5000, () => 'edit from b did not reach a')
      assert.deepEqual(a.errors, [])
    })
  }
})
