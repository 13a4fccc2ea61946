import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { encode as cborEncode } from 'cborg'
import { createRecord, hiveRecordKey } from '../../protocol/index.ts'
import { joinHive } from '../helpers/hive.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { eventPromise, waitFor } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { Message } from '@libp2p/gossipsub'

describe('three nodes joined by --bootstrap', () => {
  const nodes: HiveNode[] = []
  const dirs: string[] = []

  before(async () => {
    for (let i = 0; i < 3; i++) dirs.push(await makeTempDir())
    const first = await startNode('boot-0', {}, dirs[0])
    nodes.push(first)
    const bootstrap = [first.libp2p.getMultiaddrs()[0]!.toString()]
    nodes.push(await startNode('boot-1', { bootstrap }, dirs[1]))
    nodes.push(await startNode('boot-2', { bootstrap: [...bootstrap, nodes[1]!.libp2p.getMultiaddrs()[0]!.toString()] }, dirs[2]))
    // nodes outside one hive refuse each other: pair them, then bootstrap reaches members
    await joinHive(nodes)
  })

  after(async () => {
    await Promise.all(nodes.map(async n => { await n.stop() }))
    await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
  })

  it('each sees the others in GET /peers', async () => {
    for (const node of nodes) {
      const others = nodes.filter(n => n !== node).map(n => n.peerId.toString()).sort()
      await waitFor(async () => {
        const response = await fetch(`${node.apiUrl}/peers`)
        const body = await response.json() as { peers: Array<{ peerId: string, addresses: string[] }> }
        const seen = body.peers.map(p => p.peerId).sort()
        return others.every(id => seen.includes(id)) && body.peers.every(p => p.addresses.length > 0)
      }, { message: `${node.name} lists both other nodes` })
    }
  })

  it('a record put under the hive namespace by one is read back by the other two', async () => {
    const [a, b, c] = nodes as [HiveNode, HiveNode, HiveNode]
    await waitFor(() => nodes.every(n => n.libp2p.getConnections().length >= 2), { message: 'full mesh' })
    await a.publishPeerRecord()
    for (const reader of [b, c]) {
      const record = await reader.findPeerRecord(a.peerId.toString())
      assert.ok(record != null, `${reader.name} finds the record`)
      assert.equal(record.name, 'boot-0')
      assert.equal(record.peerId, a.peerId.toString())
    }
  })

  it('refuses records in an unknown namespace or kind, and forged ones', async () => {
    const [a, b] = nodes as [HiveNode, HiveNode, HiveNode]
    const validate = b.libp2p.services.dht.validators
    const payload = cborEncode({ name: 'x', version: '0', addresses: [] })
    const foreign = new TextEncoder().encode('/ipns/somekey')
    const unknownKind = hiveRecordKey('bogus', 'x')
    const good = await createRecord(hiveRecordKey('peer', a.peerId.toString()), payload, a.signer)

    await assert.rejects(a.putRecord(foreign, good), { name: 'InvalidRecord' })
    await assert.rejects(a.putRecord(unknownKind, await createRecord(unknownKind, payload, a.signer)), { name: 'UnknownRecordKind' })
    // bypassing the local check: the other nodes refuse to store it, and nobody reads it back
    const errors: string[] = []
    let accepted = 0
    for await (const event of a.libp2p.services.dht.put(foreign, good)) {
      if (event.name === 'QUERY_ERROR') errors.push(event.error.message)
      if (event.name === 'PEER_RESPONSE' && event.record != null) accepted++
    }
    assert.equal(accepted, 0, 'no peer stored a record in a foreign namespace')
    assert.ok(errors.length > 0, 'peers answered the put with errors')
    for await (const event of b.libp2p.services.dht.get(foreign)) {
      assert.notEqual(event.name, 'VALUE', 'a foreign-namespace record is never returned')
    }
    assert.equal(validate.ipns, undefined, 'no validator for a foreign namespace')
    const hive = validate.hive!
    await assert.rejects(async () => { await hive(unknownKind, await createRecord(unknownKind, payload, a.signer)) }, { name: 'UnknownRecordKind' })
    await hive(hiveRecordKey('peer', a.peerId.toString()), good)
    // a record about a peer, published by someone else
    await assert.rejects(async () => { await hive(hiveRecordKey('peer', b.peerId.toString()), await createRecord(hiveRecordKey('peer', b.peerId.toString()), payload, a.signer)) }, { name: 'InvalidRecord' })
    // a flipped bit in the signed value
    const tampered = Uint8Array.from(good)
    tampered[tampered.length - 3]! ^= 1
    await assert.rejects(async () => { await hive(hiveRecordKey('peer', a.peerId.toString()), tampered) }, { name: 'InvalidRecord' })
  })

  it('a gossip message published by one reaches the other two', async () => {
    const topic = 'hive/test/gossip'
    for (const node of nodes) node.libp2p.services.pubsub.subscribe(topic)
    const [a, b, c] = nodes as [HiveNode, HiveNode, HiveNode]
    await waitFor(() => a.libp2p.services.pubsub.getSubscribers(topic).length >= 2, { message: 'subscribers known' })
    const data = new TextEncoder().encode('hello from a')
    const received = [b, c].map(async node => eventPromise<CustomEvent<Message>>(node.libp2p.services.pubsub, 'message', {
      filter: (event) => event.detail.topic === topic
    }))
    await a.libp2p.services.pubsub.publish(topic, data)
    for (const event of await Promise.all(received)) {
      assert.deepEqual(new Uint8Array(event.detail.data), data)
    }
  })
})
