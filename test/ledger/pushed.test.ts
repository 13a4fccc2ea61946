// Records pushed with a head announcement (exchange.ts: `records` in a heads message): peers
// store them from the gossip without opening a stream; a bad pushed copy is refused as a fetched
// one is; pushed records that do not follow what a peer holds are fetched instead.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { encodeMessage } from '../../protocol/index.ts'
import { HeadsMessage, LEDGER_PROTOCOL, MAX_PUSHED_RECORDS, recordKey, sha256, signHead, signRecord } from '../../ledger/index.ts'
import { startMesh } from '../helpers/mesh.ts'
import { eventPromise, waitFor } from '../helpers/wait.ts'
import { content } from './fixtures.ts'
import type { RefusedDetail } from '../../ledger/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { Mesh } from '../helpers/mesh.ts'

function signerOf (node: HiveNode): { peerId: string, sign: (m: Uint8Array) => Promise<Uint8Array> } {
  return { peerId: node.peerId.toString(), sign: node.identity.sign }
}

/** Counts the ledger streams a node opens from now on. */
function countLedgerDials (node: HiveNode): { count: () => number, restore: () => void } {
  const libp2p = node.libp2p
  const original = libp2p.dialProtocol.bind(libp2p)
  let n = 0
  libp2p.dialProtocol = (async (peer: Parameters<typeof original>[0], protocols: Parameters<typeof original>[1], options?: Parameters<typeof original>[2]) => {
    if ([protocols].flat().includes(LEDGER_PROTOCOL)) n++
    return original(peer, protocols, options)
  }) as typeof libp2p.dialProtocol
  return { count: () => n, restore: () => { libp2p.dialProtocol = original } }
}

async function holds (node: HiveNode, signer: string, seq: number): Promise<boolean> {
  const chain = (await node.ledger.chains()).find(c => c.signer === signer)
  return chain?.end === seq && chain.headSeq === seq
}

describe('ledger records pushed with a head announcement', () => {
  let mesh: Mesh
  let nodes: HiveNode[]

  before(async () => {
    mesh = await startMesh(3, { label: 'pushed' })
    nodes = mesh.nodes
    await waitFor(() => nodes.every(n => n.libp2p.services.pubsub.getSubscribers(n.ledger.topic).length === 2), { message: 'ledger topic subscriptions' })
  })

  after(async () => {
    await mesh?.stop()
  })

  it('records appended after an announcement reach every peer in the next one, without a ledger stream', async () => {
    const [a, b, c] = nodes as [HiveNode, HiveNode, HiveNode]
    const self = a.peerId.toString()
    // the first record may go the old way (announced before the node had announced its head)
    await a.ledger.append(content(0, { time: Date.now() }))
    await waitFor(async () => await holds(b, self, 0) && await holds(c, self, 0), { message: 'peers hold a\'s first record' })

    const dials = [countLedgerDials(b), countLedgerDials(c)]
    try {
      for (let i = 1; i <= 3; i++) await a.ledger.append(content(i, { time: Date.now() }))
      await waitFor(async () => await holds(b, self, 3) && await holds(c, self, 3), { message: 'peers hold a\'s records 1..3 with the head' })
      assert.deepEqual(dials.map(d => d.count()), [0, 0], 'no peer opened a ledger stream to fetch them')
    } finally {
      for (const d of dials) d.restore()
    }
    assert.deepEqual((await b.ledger.list({ signer: self })).map(r => r.bytes), (await a.ledger.list()).map(r => r.bytes))
    assert.equal((await c.ledger.verify({ signer: self })).ok, true)
  })

  it('a pushed record with a bad signature is refused, none of the push is stored and its sender is hung up on', async () => {
    const [a, b, forger] = nodes as [HiveNode, HiveNode, HiveNode]
    const forgerId = forger.peerId.toString()
    await forger.ledger.append(content(0, { time: Date.now() }))
    await waitFor(async () => await holds(a, forgerId, 0) && await holds(b, forgerId, 0), { message: 'peers hold the forger\'s first record' })
    const end = (await forger.ledger.store.end(forgerId))!
    const good = await signRecord({ ...content(1), seq: end.seq + 1, prev: end.hash, signer: forgerId }, signerOf(forger))
    const bad = Uint8Array.from((await signRecord({ ...content(2), seq: end.seq + 2, prev: good.hash, signer: forgerId }, signerOf(forger))).bytes)
    bad[45] = (bad[45] as number) ^ 0x04 // a bit of the time field: the signature no longer covers it
    const head = await signHead(end.seq + 2, sha256(bad), signerOf(forger))

    const refusedBy = (node: HiveNode): Promise<CustomEvent<RefusedDetail>> => eventPromise<CustomEvent<RefusedDetail>>(node.ledger, 'refused', {
      filter: (e) => e.detail.peer === forgerId && e.detail.reason === 'bad-signature',
      message: `${node.name} refuses the pushed copy`
    })
    const dropped = (node: HiveNode): Promise<Event> => eventPromise(node.libp2p, 'peer:disconnect', {
      filter: (e) => (e as CustomEvent<{ toString: () => string }>).detail.toString() === forgerId,
      message: `${node.name} hangs up on the forger`
    })
    const waits = [refusedBy(a), refusedBy(b), dropped(a), dropped(b)]
    await forger.libp2p.services.pubsub.publish(forger.ledger.topic, encodeMessage({
      type: 'heads', heads: [head.bytes], records: { signer: forgerId, from: end.seq + 1, records: [good.bytes, bad] }
    }))
    await Promise.all(waits)
    for (const node of [a, b]) {
      assert.equal((await node.ledger.store.end(forgerId))?.seq, end.seq, `${node.name} stored none of the pushed copy, not even its good record`)
    }
  })

  it('pushed records that do not follow the chain a peer holds are not taken from the push; the peer fetches the chain', async () => {
    const [a, b] = nodes as [HiveNode, HiveNode]
    const self = a.peerId.toString()
    await waitFor(async () => a.libp2p.getPeers().some(p => p.equals(b.peerId)), { message: 'a and b connected' })
    const end = (await a.ledger.store.end(self))!
    // two records on a's chain that no announcement carried, then a push of the second alone
    const first = await signRecord({ ...content(10), seq: end.seq + 1, prev: end.hash, signer: self }, signerOf(a))
    const second = await signRecord({ ...content(11), seq: end.seq + 2, prev: first.hash, signer: self }, signerOf(a))
    const head = await signHead(second.seq, second.hash, signerOf(a))
    await a.ledger.store.db.batch([
      { type: 'put', sublevel: a.ledger.store.records, key: recordKey(self, first.seq), value: first.bytes },
      { type: 'put', sublevel: a.ledger.store.records, key: recordKey(self, second.seq), value: second.bytes },
      { type: 'put', sublevel: a.ledger.store.heads, key: self, value: head.bytes }
    ], { sync: true })
    const refused: RefusedDetail[] = []
    const onRefused = (e: Event): void => { refused.push((e as CustomEvent<RefusedDetail>).detail) }
    b.ledger.addEventListener('refused', onRefused)
    try {
      await a.libp2p.services.pubsub.publish(a.ledger.topic, encodeMessage({
        type: 'heads', heads: [head.bytes], records: { signer: self, from: second.seq, records: [second.bytes] }
      }))
      await waitFor(async () => holds(b, self, second.seq), { message: 'b fetched a\'s records up to the pushed head' })
    } finally {
      b.ledger.removeEventListener('refused', onRefused)
    }
    assert.deepEqual(refused, [], 'nobody is blamed for a push that does not follow')
    assert.deepEqual(Uint8Array.from((await b.ledger.store.getRaw(self, first.seq))!), Uint8Array.from(first.bytes))
    assert.equal((await b.ledger.verify({ signer: self })).ok, true)
  })

  it('a heads message carries at most MAX_PUSHED_RECORDS records, of the size a record may have', () => {
    const record = new Uint8Array(100)
    const message = (n: number): unknown => ({ type: 'heads', heads: [], records: { signer: 'z6Mk', from: 0, records: Array.from({ length: n }, () => record) } })
    assert.equal(HeadsMessage.safeParse(message(MAX_PUSHED_RECORDS)).success, true)
    assert.equal(HeadsMessage.safeParse(message(MAX_PUSHED_RECORDS + 1)).success, false)
    assert.equal(HeadsMessage.safeParse({ type: 'heads', heads: [], records: { signer: 'z6Mk', from: 0, records: [new Uint8Array(0)] } }).success, false)
  })
})
