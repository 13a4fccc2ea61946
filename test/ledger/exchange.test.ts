import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import {
  decodeHead, recordKey, sha256, signHead, signRecord
} from '../../ledger/index.ts'
import { startMesh } from '../helpers/mesh.ts'
import { eventPromise, waitFor } from '../helpers/wait.ts'
import { content } from './fixtures.ts'
import type { RefusedDetail } from '../../ledger/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { Mesh } from '../helpers/mesh.ts'

const PER_NODE = 8

function signerOf (node: HiveNode): { peerId: string, sign: (m: Uint8Array) => Promise<Uint8Array> } {
  return { peerId: node.peerId.toString(), sign: node.identity.sign }
}

describe('ledger exchange between three nodes', () => {
  let mesh: Mesh
  let nodes: HiveNode[]

  before(async () => {
    mesh = await startMesh(3, { label: 'ledger' })
    nodes = mesh.nodes
    // gossip reaches a peer once its subscription is known: wait for that, not for time
    await waitFor(() => nodes.every(n => n.libp2p.services.pubsub.getSubscribers(n.ledger.topic).length === 2), { message: 'ledger topic subscriptions' })
  })

  after(async () => {
    await mesh?.stop()
  })

  it('each node appends; every node then holds all three chains and verify is clean on all three', async () => {
    for (const node of nodes) {
      for (let i = 0; i < PER_NODE; i++) await node.ledger.append(content(i, { time: Date.now() }))
    }
    await waitFor(async () => {
      for (const node of nodes) {
        const chains = await node.ledger.chains()
        if (chains.length !== 3 || !chains.every(c => c.end === PER_NODE - 1 && c.headSeq === PER_NODE - 1)) return false
      }
      return true
    }, { message: 'all chains replicated with their heads' })
    for (const node of nodes) {
      const report = await node.ledger.verify()
      assert.equal(report.ok, true, JSON.stringify(report.chains.map(c => c.firstBad)))
      assert.equal(report.chains.length, 3)
      assert.equal(report.records, 3 * PER_NODE)
      assert.deepEqual(report.chains.map(c => c.end), [PER_NODE - 1, PER_NODE - 1, PER_NODE - 1])
      assert.equal(report.chains.filter(c => c.self).length, 1)
    }
    // the copies are byte-identical to the originals
    const [a, b] = nodes as [HiveNode, HiveNode]
    assert.deepEqual(
      (await b.ledger.list({ signer: a.peerId.toString() })).map(r => r.bytes),
      (await a.ledger.list()).map(r => r.bytes)
    )
  })

  it('a node that is sent a corrupted copy refuses it, stores none of it and hangs up on the sender', async () => {
    const [a, b, forger] = nodes as [HiveNode, HiveNode, HiveNode]
    const forgerId = forger.peerId.toString()
    // the forger writes a record whose signature does not cover what it says, under a head it
    // signs properly, and announces that head
    const end = (await forger.ledger.store.end(forgerId))!
    const record = await signRecord({ ...content(PER_NODE), seq: end.seq + 1, prev: end.hash, signer: forgerId }, signerOf(forger))
    const corrupted = Uint8Array.from(record.bytes)
    corrupted[45] = (corrupted[45] as number) ^ 0x04 // a bit of the time field
    const head = await signHead(end.seq + 1, sha256(corrupted), signerOf(forger))
    await forger.ledger.store.records.put(recordKey(forgerId, end.seq + 1), corrupted)
    await forger.ledger.store.heads.put(forgerId, head.bytes)

    const refusedBy = (node: HiveNode): Promise<CustomEvent<RefusedDetail>> => eventPromise<CustomEvent<RefusedDetail>>(node.ledger, 'refused', {
      filter: (e) => e.detail.peer === forgerId && e.detail.reason === 'bad-signature',
      message: `${node.name} refuses the corrupted copy`
    })
    const dropped = (node: HiveNode): Promise<Event> => eventPromise(node.libp2p, 'peer:disconnect', {
      filter: (e) => (e as CustomEvent<{ toString: () => string }>).detail.toString() === forgerId,
      message: `${node.name} hangs up on the forger`
    })
    const waits = [refusedBy(a), refusedBy(b), dropped(a), dropped(b)]
    await forger.ledger.announce()
    const [refusedA] = await Promise.all(waits) as [CustomEvent<RefusedDetail>]
    assert.equal(refusedA.detail.signer, forgerId)

    for (const node of [a, b]) {
      assert.equal((await node.ledger.store.end(forgerId))?.seq, PER_NODE - 1, `${node.name} stored none of the bad copy`)
      const report = await node.ledger.verify()
      assert.equal(report.ok, true)
      // the forger's newer head is known; its records were refused, so the copy is behind
      assert.equal(report.chains.find(c => c.signer === forgerId)?.behind?.seq, PER_NODE)
    }
  })

  it('a node whose store lost its newest records learns of it from a peer, refuses to append, then takes its records back', async () => {
    const [a, b] = nodes as [HiveNode, HiveNode]
    const self = a.peerId.toString()
    // make a's store look like an older copy: last record gone, head back at the one before
    const records = await a.ledger.list()
    const last = records[records.length - 1]!
    const before = records[records.length - 2]!
    await a.ledger.store.records.del(recordKey(self, last.seq))
    await a.ledger.store.heads.put(self, (await signHead(before.seq, before.record!.hash, signerOf(a))).bytes)
    assert.equal((await a.ledger.verify({ signer: self })).ok, true)

    // b holds a's newest head; handed to a's store alone (no fetch yet), it proves the rollback
    const newest = decodeHead((await b.ledger.store.headRaw(self))!)
    assert.equal(newest.seq, last.seq)
    assert.equal(await a.ledger.store.acceptHead(newest), 'ahead')
    const report = await a.ledger.verify({ signer: self })
    assert.deepEqual([report.chains[0]?.firstBad?.seq, report.chains[0]?.firstBad?.reason], [last.seq, 'rollback'])
    // the audit's finding is the node's state: no task runs here meanwhile
    assert.deepEqual([a.ledger.health().state, a.ledger.health().reason], ['damaged', 'rollback'])
    assert.equal(a.ledger.unwritable()?.name, 'LedgerDamaged')
    // signing a new record now would fork the chain
    await assert.rejects(a.ledger.append(content(99)), { name: 'LedgerRollback' })
    assert.equal((await a.ledger.store.end(self))?.seq, before.seq, 'the refused append stored nothing')

    // asking b for its heads fetches the lost record back from b's copy
    const restored = eventPromise<CustomEvent<{ end: number }>>(a.ledger, 'restored', { message: 'chain restored from b' })
    await a.ledger.syncWith(b.peerId)
    assert.deepEqual((await restored).detail, { end: last.seq })
    const healed = await a.ledger.verify({ signer: self })
    assert.equal(healed.ok, true, JSON.stringify(healed.chains[0]?.firstBad))
    assert.equal(a.ledger.health().state, 'ok')
    assert.equal(healed.chains[0]?.end, last.seq)
    assert.deepEqual(await a.ledger.store.getRaw(self, last.seq), last.bytes, 'the record taken back is the one signed before')
    // and the chain goes on from where it was, not from the older copy
    const next = await a.ledger.append(content(100))
    assert.equal(next.seq, last.seq + 1)
  })

  it('a node restored from an older copy that appended before hearing of it keeps the fork as proof and does not blame its peers', async () => {
    const [a, b] = nodes as [HiveNode, HiveNode]
    const self = a.peerId.toString()
    const end = (await a.ledger.store.end(self))!.seq
    await waitFor(async () => (await b.ledger.store.end(self))?.seq === end, { message: 'b holds all of a\'s chain' })
    // a's store loses its two newest records; a appends before any peer tells it
    const records = await a.ledger.list()
    const kept = records.find(r => r.seq === end - 2)!
    await a.ledger.store.records.del(recordKey(self, end))
    await a.ledger.store.records.del(recordKey(self, end - 1))
    await a.ledger.store.heads.put(self, (await signHead(kept.seq, kept.record!.hash, signerOf(a))).bytes)
    await a.ledger.store.seen.del(self)
    const other = await a.ledger.append(content(300))
    assert.equal(other.seq, end - 1, 'a signed a second record for a seq it had signed before')

    const refused: string[] = []
    const onRefused = (e: Event): void => { refused.push((e as CustomEvent<RefusedDetail>).detail.reason) }
    a.ledger.addEventListener('refused', onRefused)
    try {
      const fork = eventPromise<CustomEvent<{ signer: string, seq: number }>>(a.ledger, 'fork', { message: 'a finds its own fork in b\'s copy' })
      await a.ledger.syncWith(b.peerId)
      assert.deepEqual((await fork).detail, { signer: self, seq: end - 1 })
    } finally {
      a.ledger.removeEventListener('refused', onRefused)
    }
    assert.deepEqual(refused, [], 'b sent the genuine records of a: nothing of it is refused')
    assert.ok(a.libp2p.getConnections(b.peerId).length > 0, 'a did not hang up on b')
    const report = await a.ledger.verify({ signer: self })
    assert.equal(report.chains[0]?.forks.some(f => f.seq === end - 1), true, 'the audit shows the fork')
    assert.equal(a.ledger.health().state, 'damaged')
    // appending again would only fork further
    await assert.rejects(a.ledger.append(content(301)), { name: 'LedgerRollback' })
  })
})
