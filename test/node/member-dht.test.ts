// Placement's DHT puts beyond an all-to-all hive (node/member-dht.ts): a record goes straight to
// the k members closest to its key, which are the peers kad-dht's own walk finds closest, and
// only they store it; a get from any member finds it.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { closestPeers, memberDht } from '../../node/member-dht.ts'
import { DHT_PROTOCOL, MAX_DHT_RECORD_BYTES } from '../../protocol/index.ts'
import { Requirements, bidKey, createBidRecord, makeBid } from '../../protocol/placement/index.ts'
import { dhtHeldBy, startMesh } from '../helpers/mesh.ts'
import type { Mesh } from '../helpers/mesh.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { TaskId } from '../../protocol/placement/index.ts'

const K = 3
const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('DHT puts to the members closest to a key', () => {
  let mesh: Mesh
  let nodes: HiveNode[]

  before(async () => {
    mesh = await startMesh(6, { label: 'member-dht' })
    nodes = mesh.nodes
  })

  after(async () => { await mesh.stop() })

  it('names the peers kad-dht\'s own walk finds closest', async () => {
    const [a] = nodes as [HiveNode]
    const others = nodes.slice(1).map(n => n.peerId.toString())
    for (const task of ['11', '22', '33']) {
      const key = bidKey(task.repeat(16) as TaskId, a.peerId.toString())
      const walked: string[] = []
      for await (const event of a.libp2p.services.dht.getClosestPeers(key, { signal: AbortSignal.timeout(30_000) })) {
        if (event.name === 'FINAL_PEER') walked.push(event.peer.id.toString())
      }
      // a peer whose answer the walk did not get in time is missing from it; the order of the rest is what counts
      const found = walked.filter(p => others.includes(p))
      assert.ok(found.length >= 3, `the walk found ${found.length} members`)
      assert.deepEqual(closestPeers(key, found, found.length), found, `the same order for task ${task}`)
      assert.deepEqual(closestPeers(key, others, others.length).filter(p => found.includes(p)), found)
    }
  })

  it('stores a record on the k closest members only, where a get from another member finds it', async () => {
    const [a] = nodes as [HiveNode]
    const others = nodes.slice(1).map(n => n.peerId.toString())
    const task = '44'.repeat(16) as TaskId
    const bid = makeBid({ task, submitter: a.peerId.toString(), requirements: Requirements.parse({}), agentSize: 100 }, await a.capabilities.local(), true)
    const record = { key: bidKey(task, a.peerId.toString()), value: await createBidRecord(bid, a.signer) }
    const dht = memberDht({
      dht: a.libp2p.services.dht,
      host: a.libp2p,
      isMember: (peer) => a.hive.membership.isMember(peer),
      others: () => others,
      allToAll: () => false,
      protocol: DHT_PROTOCOL,
      maxRecordBytes: MAX_DHT_RECORD_BYTES,
      k: K
    })
    assert.ok(dht.putMany != null)
    await dht.putMany([record], { signal: AbortSignal.timeout(30_000) })
    const chosen = new Set(closestPeers(record.key, others, K))
    assert.equal(chosen.size, K)
    for (const node of nodes) {
      const held = await dhtHeldBy(node, record.key)
      assert.deepEqual(held, chosen.has(node.peerId.toString()) ? [hex(record.value)] : [], `${node.name} ${chosen.has(node.peerId.toString()) ? 'holds' : 'does not hold'} the record`)
    }
    const far = nodes.find(n => n !== a && !chosen.has(n.peerId.toString())) as HiveNode
    let found: string | undefined
    for await (const event of far.libp2p.services.dht.get(record.key, { signal: AbortSignal.timeout(30_000) })) {
      if (event.name === 'VALUE') found = hex(event.value)
    }
    assert.equal(found, hex(record.value))
  })
})
