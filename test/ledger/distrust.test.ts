// A peer that sends the ledger garbage is not listened to for `distrustMs` (60 s by default),
// then is again: a ledger with stub host and gossip, a real store, and a mocked clock.

import assert from 'node:assert/strict'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { createLedger } from '../../ledger/index.ts'
import { makeSigner, tempDb } from './fixtures.ts'
import type { LedgerComponents, RefusedDetail } from '../../ledger/index.ts'

const TOPIC = 'hive/test/ledger'

describe('a peer that sent the ledger garbage', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['Date'], now: 1_000_000 }) })
  afterEach(() => { mock.timers.reset() })

  it('is hung up on and not listened to for 60 s, then is again', async () => {
    const tmp = await tempDb('distrust')
    const [me, peer] = [await makeSigner(1), await makeSigner(2)]
    const pubsub = Object.assign(new EventTarget(), { subscribe: () => {}, unsubscribe: () => {}, publish: async () => {} })
    const hungUp: string[] = []
    const host = {
      getPeers: () => [],
      handle: async () => {},
      unhandle: async () => {},
      dialProtocol: async () => { throw new Error('no network here') },
      hangUp: async (p: { toString: () => string }) => { hungUp.push(p.toString()) }
    }
    const ledger = createLedger({ topic: TOPIC }, { db: tmp.db.sublevel('ledger', { valueEncoding: 'view' }), signer: me, host, pubsub } as unknown as LedgerComponents)
    const refused: RefusedDetail[] = []
    ledger.addEventListener('refused', (e) => { refused.push((e as CustomEvent<RefusedDetail>).detail) })
    await ledger.start()
    const garbage = (): void => {
      pubsub.dispatchEvent(new CustomEvent('message', { detail: { topic: TOPIC, data: new Uint8Array([0xff, 0x00, 0x13]), from: peer.peerId } }))
    }
    try {
      garbage()
      assert.equal(refused.length, 1)
      assert.equal(refused[0]?.reason, 'malformed-gossip')
      assert.equal(refused[0]?.peer, peer.peerId.toString())
      assert.deepEqual(hungUp, [peer.peerId.toString()])
      // within the 60 s, what it sends is not even read
      garbage()
      mock.timers.tick(59_999)
      garbage()
      assert.equal(refused.length, 1)
      // after it, it is heard again (and refused again for garbage)
      mock.timers.tick(1)
      garbage()
      assert.equal(refused.length, 2)
    } finally {
      await ledger.stop()
      await tmp.close()
    }
  })
})
