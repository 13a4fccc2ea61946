// The periodic announcement of every head held, spaced by the hive's size: max(30 s, min(120 s,
// members × 2 s)), the member count read again before each. A ledger with stub host and gossip,
// a real store, and node:test's mock clock; an announcement is counted when it begins (it reads
// every head held first, at once when its timer fires).

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { ANNOUNCE_MAX_MS, ANNOUNCE_MIN_MS, announceIntervalFor, createLedger } from '../../ledger/index.ts'
import { content, makeSigner, tempDb } from './fixtures.ts'
import type { Ledger, LedgerComponents } from '../../ledger/index.ts'
import type { TempDb } from './fixtures.ts'

const TOPIC = 'hive/test/ledger'

interface Fixture {
  ledger: Ledger
  /** Announcements of every head begun so far (each reads every head held, at once). */
  announced: () => number
  tmp: TempDb
}

/** A started ledger holding one record of its own. */
async function announcing (init: { members?: () => number, announceIntervalMs?: number }): Promise<Fixture> {
  const tmp = await tempDb('announce')
  const me = await makeSigner(1)
  const pubsub = Object.assign(new EventTarget(), { subscribe: () => {}, unsubscribe: () => {}, publish: async () => {} })
  const host = {
    getPeers: () => [],
    handle: async () => {},
    unhandle: async () => {},
    dialProtocol: async () => { throw new Error('no network here') },
    hangUp: async () => {}
  }
  const ledger = createLedger({ topic: TOPIC, ...(init.announceIntervalMs != null ? { announceIntervalMs: init.announceIntervalMs } : {}) },
    { db: tmp.db.sublevel('ledger', { valueEncoding: 'view' }), signer: me, host, pubsub, ...(init.members != null ? { members: init.members } : {}) } as unknown as LedgerComponents)
  let announced = 0
  const allHeads = ledger.store.allHeads.bind(ledger.store)
  ledger.store.allHeads = async () => { announced++; return await allHeads() }
  await ledger.start()
  await ledger.append(content(0))
  return { ledger, announced: () => announced, tmp }
}

describe('the periodic announcement of ledger heads', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 }) })
  afterEach(() => { mock.timers.reset() })

  it('is spaced by the hive\'s size: 30 s up to 15 members, 2 s a member beyond, at most 120 s', () => {
    assert.equal(announceIntervalFor(0), ANNOUNCE_MIN_MS)
    assert.equal(announceIntervalFor(8), 30_000)
    assert.equal(announceIntervalFor(15), 30_000)
    assert.equal(announceIntervalFor(24), 48_000)
    assert.equal(announceIntervalFor(50), 100_000)
    assert.equal(announceIntervalFor(60), 120_000)
    assert.equal(announceIntervalFor(500), ANNOUNCE_MAX_MS)
  })

  it('in a hive of 50 comes every 100 s, and follows the member count as it changes', async () => {
    let members = 50
    const fixture = await announcing({ members: () => members })
    try {
      const base = fixture.announced()
      mock.timers.tick(99_999)
      assert.equal(fixture.announced(), base, 'nothing before 100 s')
      mock.timers.tick(1)
      assert.equal(fixture.announced(), base + 1, 'one announcement at 100 s')
      // the hive shrank: the interval after the next announcement is the new size's
      members = 10
      mock.timers.tick(100_000)
      assert.equal(fixture.announced(), base + 2)
      mock.timers.tick(29_999)
      assert.equal(fixture.announced(), base + 2)
      mock.timers.tick(1)
      assert.equal(fixture.announced(), base + 3, 'then every 30 s')
    } finally {
      await fixture.ledger.stop()
      await fixture.tmp.close()
    }
  })

  it('without a member count comes every 30 s; an explicit interval is kept', async () => {
    for (const [init, interval] of [[{}, 30_000], [{ members: () => 50, announceIntervalMs: 5_000 }, 5_000]] as const) {
      const fixture = await announcing(init)
      try {
        const base = fixture.announced()
        mock.timers.tick(interval - 1)
        assert.equal(fixture.announced(), base)
        mock.timers.tick(1)
        assert.equal(fixture.announced(), base + 1)
      } finally {
        await fixture.ledger.stop()
        await fixture.tmp.close()
      }
    }
  })
})
