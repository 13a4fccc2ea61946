// Ledger heads go on the hive's own gossip topic, and follow a device into the hive it joins.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { gossipTopic } from '../../protocol/wire/ids.ts'
import { makeTempDir, startMesh, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { Mesh } from '../helpers/mesh.ts'
import type { HiveNode } from '../../node/hive-node.ts'

describe('ledger heads on the hive topic', () => {
  let mesh: Mesh
  let stranger: HiveNode
  let strangerDir: string

  before(async () => {
    // the second node starts in a hive of its own and then joins the first one's
    mesh = await startMesh(2, { label: 'ledger-topic' })
    strangerDir = await makeTempDir()
    stranger = await startNode('ledger-topic-stranger', {}, strangerDir)
  })

  after(async () => {
    await stranger?.stop()
    if (strangerDir != null) await rm(strangerDir, { recursive: true, force: true })
    await mesh?.stop()
  })

  it('each member announces on hive/<hive id>/ledger, and a joiner moved there', () => {
    const [a, b] = mesh.nodes as [HiveNode, HiveNode]
    const hiveId = a.hive.membership.hiveId
    assert.equal(b.hive.membership.hiveId, hiveId)
    for (const node of [a, b]) {
      assert.equal(node.ledger.topic, gossipTopic(hiveId, 'ledger'), `${node.name} announces heads on its hive's topic`)
      assert.ok(node.libp2p.services.pubsub.getTopics().includes(node.ledger.topic), `${node.name} is subscribed to it`)
    }
    // the joiner left the topic of the hive it founded at first start
    assert.ok(!b.libp2p.services.pubsub.getTopics().some(t => t.endsWith('/ledger') && t !== a.ledger.topic), 'the joiner left its old ledger topic')
    // a device of another hive announces on that hive's topic
    assert.equal(stranger.ledger.topic, gossipTopic(stranger.hive.membership.hiveId, 'ledger'))
    assert.notEqual(stranger.ledger.topic, a.ledger.topic)
  })

  it('a new head reaches the other member over the hive topic', async () => {
    const [a, b] = mesh.nodes as [HiveNode, HiveNode]
    await waitFor(() => b.libp2p.services.pubsub.getSubscribers(b.ledger.topic).some(p => p.equals(a.peerId)), { message: 'the members see each other on the ledger topic' })
    const record = await a.ledger.append({ task: 'topic-check', agent: 'sha256:test', status: 'ok' })
    await waitFor(async () => (await b.ledger.list({ signer: a.peerId.toString() })).some(r => r.seq === record.seq && Buffer.from(r.bytes).equals(record.bytes)), { message: `${b.name} holds ${a.name}'s new record` })
  })
})
