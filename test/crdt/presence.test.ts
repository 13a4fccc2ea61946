// Presence at the size of a hive: a node renews its state at an interval that grows with the
// nodes it knows and says so in the state; receivers drop a state silent for twice its author's
// interval; a `renew` out of bounds is refused; and an update that brings no newer clock (the
// same renewal arriving over another link) is dropped before any state in it is decoded.
// Time is node:test's mock clock (setInterval and Date), so no test waits for real seconds.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import * as awarenessProtocol from 'y-protocols/awareness'
import * as Y from 'yjs'
import {
  PRESENCE_CHECK_MS, PRESENCE_RENEW_MAX_MS, PRESENCE_RENEW_MIN_MS, Presence, presenceRenewMs
} from '../../crdt/presence.ts'
import { MalformedUpdateError } from '../../crdt/errors.ts'

/** Another node's awareness, authoring states by hand. */
function remote (state: Record<string, unknown>): { awareness: awarenessProtocol.Awareness, update: () => Uint8Array, destroy: () => void } {
  const doc = new Y.Doc()
  const awareness = new awarenessProtocol.Awareness(doc)
  clearInterval(awareness._checkInterval)
  awareness.setLocalState(state)
  return {
    awareness,
    update: () => awarenessProtocol.encodeAwarenessUpdate(awareness, [awareness.clientID]),
    destroy: () => { doc.destroy() }
  }
}

/** The renewals `presence` publishes of its own state, with the `renew` each carries. */
function ownRenewals (presence: Presence): Array<{ at: number, renew: unknown }> {
  const seen: Array<{ at: number, renew: unknown }> = []
  const reader = new awarenessProtocol.Awareness(new Y.Doc())
  clearInterval(reader._checkInterval)
  presence.onChange(({ update, origin }) => {
    if (origin !== 'local') return
    awarenessProtocol.applyAwarenessUpdate(reader, update, 'test')
    const state = [...reader.getStates().values()].find(s => (s as { node?: string }).node === presence.nodeName) as { renew?: unknown } | undefined
    seen.push({ at: Date.now(), renew: state?.renew })
  })
  return seen
}

const LINK = { name: 'link' }

describe('presence renewal at the size of the hive', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 }) })
  afterEach(() => { mock.timers.reset() })

  it('renews 1 s per known node, in steps of 15 s from 15 s to 120 s', () => {
    assert.equal(presenceRenewMs(1), 15_000)
    assert.equal(presenceRenewMs(15), 15_000)
    assert.equal(presenceRenewMs(16), 30_000)
    assert.equal(presenceRenewMs(24), 30_000)
    assert.equal(presenceRenewMs(50), 60_000)
    assert.equal(presenceRenewMs(120), 120_000)
    assert.equal(presenceRenewMs(500), 120_000)
  })

  it('a node that knows 40 nodes renews its state every 45 s, and its state says so', () => {
    const presence = new Presence('self')
    const others = Array.from({ length: 39 }, (_, i) => remote({ node: `n${i}`, contexts: [], renew: 120_000 }))
    try {
      for (const other of others) presence.apply(other.update(), LINK)
      const renewals = ownRenewals(presence)
      mock.timers.tick(PRESENCE_CHECK_MS)
      // the interval moved a step: announced at once
      assert.deepEqual(renewals.map(r => r.renew), [45_000])
      assert.equal(presence.renewMs(), 45_000)
      // over 180 s: one renewal each 45 s (within one check), where awareness renews each 15 s
      const from = Date.now()
      for (let t = 0; t < 180_000; t += PRESENCE_CHECK_MS) mock.timers.tick(PRESENCE_CHECK_MS)
      const later = renewals.slice(1)
      assert.equal(later.length, 4, `renewals at ${later.map(r => (r.at - from) / 1000).join(', ')} s`)
      for (const r of later) assert.equal(r.renew, 45_000)
    } finally {
      for (const other of others) other.destroy()
      presence.destroy()
    }
  })

  it('drops a remote state silent for twice its author\'s interval, not before', () => {
    const presence = new Presence('self')
    const slow = remote({ node: 'slow', contexts: [], renew: 60_000 })
    const old = remote({ node: 'old', contexts: [] })
    try {
      presence.apply(slow.update(), LINK)
      presence.apply(old.update(), LINK)
      const listed = (): string[] => presence.list().filter(p => !p.self).map(p => p.node)
      mock.timers.tick(27_000)
      assert.deepEqual(listed(), ['old', 'slow'])
      // a state without `renew` (an older node) is held as awareness held it: 30 s
      mock.timers.tick(6_000)
      assert.deepEqual(listed(), ['slow'])
      mock.timers.tick(81_000)
      assert.deepEqual(listed(), ['slow'], 'still there at 114 s of 120')
      // a renewal heard in time keeps it
      slow.awareness.setLocalState({ node: 'slow', contexts: [], renew: 60_000 })
      presence.apply(slow.update(), LINK)
      mock.timers.tick(117_000)
      assert.deepEqual(listed(), ['slow'])
      mock.timers.tick(6_000)
      assert.deepEqual(listed(), [], 'dropped once silent for 120 s')
    } finally {
      slow.destroy()
      old.destroy()
      presence.destroy()
    }
  })

  it('refuses a renew interval out of bounds from the network', () => {
    const presence = new Presence('self')
    try {
      for (const renew of [PRESENCE_RENEW_MIN_MS - 1, PRESENCE_RENEW_MAX_MS + 1, 1e12, 30_000.5, -1, '30000']) {
        const bad = remote({ node: 'bad', contexts: [], renew })
        try {
          assert.throws(() => { presence.apply(bad.update(), LINK) }, MalformedUpdateError, `renew ${String(renew)}`)
        } finally {
          bad.destroy()
        }
      }
      assert.deepEqual(presence.list().map(p => p.node), ['self'])
    } finally {
      presence.destroy()
    }
  })
})

describe('duplicate presence deliveries', () => {
  it('an update that brings no newer clock is dropped before any state in it is decoded', (t) => {
    const presence = new Presence('self')
    const other = remote({ node: 'other', contexts: [], renew: 30_000 })
    try {
      const relayed: unknown[] = []
      presence.onChange(({ origin }) => { relayed.push(origin) })
      const first = other.update()
      presence.apply(first, LINK)
      assert.equal(relayed.length, 1)

      const parse = t.mock.method(JSON, 'parse')
      // the same update over three more links
      for (let i = 0; i < 3; i++) presence.apply(first, { name: `link ${i}` })
      assert.equal(parse.mock.callCount(), 0, 'no state decoded for a duplicate')
      assert.equal(relayed.length, 1, 'and nothing relayed')

      // a renewal (a newer clock) is decoded, applied and relayed
      other.awareness.setLocalState({ node: 'other', contexts: [], renew: 30_000 })
      presence.apply(other.update(), LINK)
      assert.ok(parse.mock.callCount() > 0)
      assert.equal(relayed.length, 2)
    } finally {
      other.destroy()
      presence.destroy()
    }
  })

  it('a removal at the clock held still removes, as awareness would', () => {
    const presence = new Presence('self')
    const other = remote({ node: 'other', contexts: [], renew: 30_000 })
    try {
      presence.apply(other.update(), LINK)
      assert.deepEqual(presence.list().map(p => p.node), ['self', 'other'])
      // { clock held, state null }: awareness's way of marking a node offline
      const states = new Map([[other.awareness.clientID, null]])
      const removal = awarenessProtocol.encodeAwarenessUpdate(other.awareness, [other.awareness.clientID], states as unknown as Map<number, Record<string, unknown>>)
      presence.apply(removal, LINK)
      assert.deepEqual(presence.list().map(p => p.node), ['self'])
    } finally {
      other.destroy()
      presence.destroy()
    }
  })

  it('a duplicate whose structure is broken is still refused', () => {
    const presence = new Presence('self')
    const other = remote({ node: 'other', contexts: [] })
    try {
      const update = other.update()
      presence.apply(update, LINK)
      const trailing = new Uint8Array([...update, 0])
      assert.throws(() => { presence.apply(trailing, LINK) }, MalformedUpdateError)
    } finally {
      other.destroy()
      presence.destroy()
    }
  })
})
