// Records put straight to chosen peers (protocol/wire/dht-put.ts) are stored by kad-dht's own
// PUT_VALUE handler exactly as those of a walk, and `get` finds them; a record a peer refuses is
// not stored, and the peer keeps serving.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { DHT_PROTOCOL, MAX_DHT_RECORD_BYTES, putRecords } from '../../../protocol/index.ts'
import { Requirements, bidKey, createBidRecord, makeBid } from '../../../protocol/placement/index.ts'
import { createRecord } from '../../../protocol/index.ts'
import { encode as cborEncode } from 'cborg'
import { dhtHeldBy, startMesh } from '../../helpers/mesh.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { TaskId } from '../../../protocol/placement/index.ts'

const TASK = '0123456789abcdef0123456789abcdef' as TaskId

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex')

describe('DHT records put straight to peers', () => {
  let mesh: Mesh
  let nodes: HiveNode[]

  before(async () => {
    mesh = await startMesh(3, { label: 'dht-put' })
    nodes = mesh.nodes
  })

  after(async () => { await mesh.stop() })

  async function bidOf (node: HiveNode, task: TaskId): Promise<{ key: Uint8Array, value: Uint8Array }> {
    const bid = makeBid({ task, submitter: nodes[0]!.peerId.toString(), requirements: Requirements.parse({}), agentSize: 100 }, await node.capabilities.local(), true)
    return { key: bidKey(task, node.peerId.toString()), value: await createBidRecord(bid, node.signer) }
  }

  it('stores several records on a peer over one stream, where its own store and a get from another member find them', async () => {
    const [a, b, c] = nodes as [HiveNode, HiveNode, HiveNode]
    const records = [await bidOf(a, TASK), await bidOf(a, TASK.replace('0', '1') as TaskId)]
    const stored = await putRecords(a.libp2p, b.peerId, records, { protocol: DHT_PROTOCOL, maxMessageBytes: MAX_DHT_RECORD_BYTES + 4096, signal: AbortSignal.timeout(30_000) })
    assert.equal(stored, 2)
    for (const { key, value } of records) assert.deepEqual(await dhtHeldBy(b, key), [hex(value)])
    // c holds nothing itself and finds it on b
    let found: string | undefined
    for await (const event of c.libp2p.services.dht.get(records[0]!.key, { signal: AbortSignal.timeout(30_000) })) {
      if (event.name === 'VALUE') found = hex(event.value)
    }
    assert.equal(found, hex(records[0]!.value))
  })

  it('a record the peer refuses (signed in another member\'s name) is not stored, and the peer keeps taking records', async () => {
    const [a, b] = nodes as [HiveNode, HiveNode, HiveNode]
    const task = TASK.replace('0', '2') as TaskId
    const genuine = await bidOf(a, task)
    const key = bidKey(task, b.peerId.toString())
    const forged = { key, value: await createRecord(key, cborEncode({ v: 1 }), a.signer) }
    await assert.rejects(putRecords(a.libp2p, b.peerId, [forged, genuine], { protocol: DHT_PROTOCOL, maxMessageBytes: MAX_DHT_RECORD_BYTES + 4096, signal: AbortSignal.timeout(30_000) }))
    assert.deepEqual(await dhtHeldBy(b, key), [])
    assert.deepEqual(await dhtHeldBy(b, genuine.key), [], 'the records after a refused one are not sent')
    assert.equal(await putRecords(a.libp2p, b.peerId, [genuine], { protocol: DHT_PROTOCOL, maxMessageBytes: MAX_DHT_RECORD_BYTES + 4096, signal: AbortSignal.timeout(30_000) }), 1)
    assert.deepEqual(await dhtHeldBy(b, genuine.key), [hex(genuine.value)])
  })
})
