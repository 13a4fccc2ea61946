// The context subsystem over real libp2p nodes (TCP on 127.0.0.1, noise, yamux): one stream
// per peer pair, replication both ways, catch-up after a connection drops, and a peer that
// sends garbage on the protocol is hung up on while the others carry on.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import { CONTEXT_PROTOCOL, createContexts } from '../../crdt/index.ts'
import { waitFor } from '../helpers/wait.ts'
import { tempLevel } from './helpers.ts'
import type { Contexts } from '../../crdt/index.ts'
import type { TempLevel } from './helpers.ts'
import type { Libp2p } from '@libp2p/interface'

async function libp2pNode (): Promise<Libp2p> {
  return await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // every node here dials from 127.0.0.1: lift the per-host inbound rate limit
    connectionManager: { inboundConnectionThreshold: 10_000 }
  })
}

interface Node {
  name: string
  libp2p: Libp2p
  level: TempLevel
  contexts: Contexts
  errors: Error[]
}

describe('contexts over real libp2p nodes on loopback', () => {
  const nodes: Node[] = []

  before(async () => {
    for (const name of ['laptop', 'desktop', 'server']) {
      const libp2p = await libp2pNode()
      const level = await tempLevel(name)
      const contexts = createContexts({}, { db: level.db.sublevel('crdt'), libp2p, nodeName: name })
      const errors: Error[] = []
      contexts.onError(err => errors.push(err))
      await contexts.start()
      nodes.push({ name, libp2p, level, contexts, errors })
    }
    const [a, b, c] = nodes as [Node, Node, Node]
    await a.libp2p.dial(b.libp2p.getMultiaddrs())
    await b.libp2p.dial(c.libp2p.getMultiaddrs())
    await c.libp2p.dial(a.libp2p.getMultiaddrs())
    await waitFor(() => nodes.every(n => n.contexts.linkedPeers().length === 2), { message: 'every node linked to both others' })
  })

  after(async () => {
    for (const n of nodes) {
      await n.contexts.stop()
      await n.libp2p.stop()
      await n.level.destroy()
    }
  })

  it('uses one stream per pair of peers and replicates every context to every node', async () => {
    const [a, b, c] = nodes as [Node, Node, Node]
    for (const n of nodes) {
      const streams = n.libp2p.getConnections().flatMap(conn => conn.streams.filter(s => s.protocol === CONTEXT_PROTOCOL))
      assert.equal(streams.length, 2, `${n.name} has one context stream per peer`)
    }
    await (await a.contexts.store.open('agent-1')).append('hello from the laptop')
    await (await c.contexts.store.open('agent-1')).set('step', 3)
    await waitFor(() => nodes.every(n => {
      const view = n.contexts.store.get('agent-1')?.view()
      return view?.conversation.length === 1 && view.state.step === 3
    }), { message: 'agent-1 everywhere' })
    assert.equal(b.contexts.store.get('agent-1')?.view().conversation[0]?.node, 'laptop')
  })

  it('catches up and merges edits made while a connection was down', async () => {
    const [a, b] = nodes as [Node, Node, Node]
    // cut a off from everyone
    for (const n of nodes.slice(1)) await a.libp2p.hangUp(n.libp2p.peerId)
    await waitFor(() => a.contexts.linkedPeers().length === 0, { message: 'a unlinked' })
    await (await a.contexts.store.open('agent-1')).append('written while offline')
    await (await b.contexts.store.open('agent-1')).append('written meanwhile')
    await (await b.contexts.store.open('agent-2')).set('new', true)
    await a.libp2p.dial(b.libp2p.getMultiaddrs())
    await waitFor(() => nodes.every(n => n.contexts.store.get('agent-1')?.view().conversation.length === 3 && n.contexts.store.get('agent-2') != null), { message: 'merged everywhere' })
    const texts = (n: Node): string[] => n.contexts.store.get('agent-1')?.view().conversation.map(e => e.text) ?? []
    assert.deepEqual(texts(a), texts(b))
    assert.deepEqual(texts(a), texts(nodes[2] as Node))
  })

  it('hangs up on a peer that sends garbage and keeps serving the others', async () => {
    const [a, b] = nodes as [Node, Node, Node]
    const rogue = await libp2pNode()
    try {
      await rogue.dial(a.libp2p.getMultiaddrs())
      const stream = await rogue.dialProtocol(a.libp2p.peerId, CONTEXT_PROTOCOL)
      stream.send(Uint8Array.from([4, 0xde, 0xad, 0xbe, 0xef]))
      await waitFor(() => rogue.getConnections(a.libp2p.peerId).length === 0, { message: 'a hung up on the rogue' })
      await (await b.contexts.store.open('agent-3')).append('still replicating')
      await waitFor(() => a.contexts.store.get('agent-3')?.view().conversation.length === 1, { message: 'a still replicates with b' })
      assert.ok(a.errors.some(e => e.name === 'ReplicationProtocol'), 'the fault was reported')
    } finally {
      await rogue.stop()
    }
  })
})
