// gossipsub as the hive configures it (node/libp2p.ts GOSSIP_OPTIONS): half the default mesh
// degree and IDONTWANT only for large messages, on real nodes, with a message of a few KiB
// still reaching every member of an all-to-all hive.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { GOSSIP_OPTIONS } from '../../node/libp2p.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { Mesh } from '../helpers/mesh.ts'

describe('gossip options', () => {
  let mesh: Mesh

  before(async () => { mesh = await startMesh(4, { label: 'gossip' }) })
  after(async () => { await mesh?.stop() })

  it('every node runs gossipsub with the hive\'s degree and IDONTWANT threshold', () => {
    for (const node of mesh.nodes) {
      const opts = (node.libp2p.services.pubsub as unknown as { opts: Record<string, unknown> }).opts
      for (const [key, value] of Object.entries(GOSSIP_OPTIONS)) assert.equal(opts[key], value, `${node.name} ${key}`)
    }
  })

  it('a 4 KiB message reaches every other member, and no IDONTWANT is sent for it', async () => {
    const topic = 'hive-test/gossip-options'
    const got = new Map<string, number>()
    for (const node of mesh.nodes) {
      node.libp2p.services.pubsub.subscribe(topic)
      node.libp2p.services.pubsub.addEventListener('message', (e) => {
        if (e.detail.topic === topic) got.set(node.name, e.detail.data.byteLength)
      })
    }
    const [from, ...rest] = mesh.nodes
    await waitFor(() => rest.every(n => from!.libp2p.services.pubsub.getSubscribers(topic).some(p => p.equals(n.peerId))), { message: 'every member subscribed' })
    await from!.libp2p.services.pubsub.publish(topic, new Uint8Array(4096).fill(7))
    await waitFor(() => rest.every(n => got.get(n.name) === 4096), { message: 'every other member receives the message' })
    for (const node of mesh.nodes) {
      const idontwants = (node.libp2p.services.pubsub as unknown as { idontwants: Map<string, Map<string, number>> }).idontwants
      const told = [...idontwants.values()].reduce((n, m) => n + m.size, 0)
      assert.equal(told, 0, `${node.name} was told IDONTWANT for a message under the threshold`)
    }
  })
})
