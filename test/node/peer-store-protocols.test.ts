// A stream's protocol merged into a peer's entry that already lists it is not written again,
// for a minute; every other write goes through, and the store holds what it held before.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createLibp2p } from 'libp2p'
import { PROTOCOL_MERGE_REFRESH_MS, skipRepeatedProtocolMerges } from '../../node/peer-store-protocols.ts'
import type { Libp2p, PeerId, PeerStore } from '@libp2p/interface'

describe('peer store: repeated protocol merges', () => {
  let node: Libp2p
  let store: PeerStore
  let peer: PeerId
  let clock = 0
  const writes: string[] = []

  before(async () => {
    node = await createLibp2p({ start: false })
    store = node.peerStore
    // count what reaches libp2p's own store, under the shortcut
    const target = store as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>
    for (const name of ['merge', 'patch', 'save', 'delete']) {
      const original = target[name]!.bind(store)
      target[name] = async (...args: unknown[]) => { writes.push(name); return await original(...args) }
    }
    skipRepeatedProtocolMerges(store, () => clock)
    peer = peerIdFromPrivateKey(await generateKeyPair('Ed25519'))
  })

  after(async () => { await node.stop() })

  it('takes a protocol the entry lists without a write, and writes a new one', async () => {
    writes.length = 0
    const first = await store.merge(peer, { protocols: ['/a/1.0.0'] })
    const again = await store.merge(peer, { protocols: ['/a/1.0.0'] })
    assert.deepEqual(writes, ['merge'], 'the second merge of the same protocol reached no store')
    assert.equal(again, first, 'it answers with the entry the first merge returned')
    await store.merge(peer, { protocols: ['/b/1.0.0'] })
    assert.deepEqual(writes, ['merge', 'merge'], 'a protocol the entry lacks is written')
    assert.deepEqual((await store.get(peer)).protocols, ['/a/1.0.0', '/b/1.0.0'])
    await store.merge(peer, { protocols: ['/b/1.0.0', '/a/1.0.0'] })
    assert.equal(writes.length, 2, 'both known: no write')
  })

  it('writes again once the entry is a minute old, so `updated` moves while streams open', async () => {
    writes.length = 0
    clock += PROTOCOL_MERGE_REFRESH_MS - 1
    await store.merge(peer, { protocols: ['/a/1.0.0'] })
    assert.deepEqual(writes, [])
    clock += 1
    await store.merge(peer, { protocols: ['/a/1.0.0'] })
    assert.deepEqual(writes, ['merge'])
    await store.merge(peer, { protocols: ['/a/1.0.0'] })
    assert.deepEqual(writes, ['merge'], 'and trusts the entry that write returned')
  })

  it('lets every other write through and follows what it leaves', async () => {
    writes.length = 0
    await store.merge(peer, { protocols: ['/a/1.0.0'], tags: { t: { value: 1 } } })
    assert.deepEqual(writes, ['merge'], 'a merge of more than protocols is written')
    await store.patch(peer, { protocols: ['/b/1.0.0'] })
    await store.merge(peer, { protocols: ['/a/1.0.0'] })
    assert.deepEqual(writes, ['merge', 'patch', 'merge'], 'a protocol a patch removed is written again')
    assert.deepEqual((await store.get(peer)).protocols, ['/a/1.0.0', '/b/1.0.0'])
    await store.delete(peer)
    await store.merge(peer, { protocols: ['/a/1.0.0'] })
    assert.deepEqual(writes, ['merge', 'patch', 'merge', 'delete', 'merge'], 'after a delete the entry is written anew')
    assert.deepEqual((await store.get(peer)).protocols, ['/a/1.0.0'])
  })

  it('is installed once', () => {
    const merge = store.merge
    skipRepeatedProtocolMerges(store)
    assert.equal(store.merge, merge)
  })
})
