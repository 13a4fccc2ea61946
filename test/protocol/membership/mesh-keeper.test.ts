// The mesh keeper's sweep (protocol/membership/mesh.ts) against a stub network, in a hive past
// all-to-all: a connection to a member that is not a neighbour, idle for `idleMs` but for
// background streams (gossip, and gossip's direct links), is closed; one carrying a stream of its
// own is kept.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ALL_TO_ALL_MAX, neighboursOf } from '../../../protocol/membership/index.ts'
import { MeshKeeper } from '../../../protocol/membership/mesh.ts'
import { DIRECT_GOSSIP_PROTOCOL, PLACEMENT_PROTOCOL } from '../../../protocol/wire/index.ts'
import type { MeshNetwork } from '../../../protocol/membership/mesh.ts'
import type { Connection, PeerId } from '@libp2p/interface'

const IDLE_MS = 1_000

async function hive (size: number): Promise<PeerId[]> {
  return Promise.all(Array.from({ length: size }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
}

function connection (peer: PeerId, protocols: string[], closed: string[]): Connection {
  return {
    id: `${peer.toString()}-${protocols.join()}`,
    remotePeer: peer,
    status: 'open',
    timeline: { open: 0 },
    streams: protocols.map(protocol => ({ protocol })),
    close: async () => { closed.push(protocols.join()) }
  } as unknown as Connection
}

describe('the mesh keeper\'s sweep', () => {
  it('closes an idle connection to a non-neighbour that carries only gossip and a direct link, and keeps one in use', async () => {
    const members = await hive(ALL_TO_ALL_MAX + 4)
    const self = members[0]!.toString()
    const neighbours = neighboursOf(self, members.map(m => m.toString()))
    const stranger = members.find(m => m.toString() !== self && !neighbours.has(m.toString()))!
    const closed: string[] = []
    const connections = [
      connection(stranger, ['/meshsub/1.2.0', DIRECT_GOSSIP_PROTOCOL], closed),
      connection(stranger, ['/meshsub/1.2.0', PLACEMENT_PROTOCOL], closed)
    ]
    const network = {
      getConnections: () => connections,
      peerStore: { get: async () => ({ tags: new Map() }), merge: async () => {} },
      addEventListener: () => {},
      removeEventListener: () => {}
    } as unknown as MeshNetwork
    const keeper = new MeshKeeper({ idleMs: IDLE_MS }, {
      network,
      membership: { peerId: self, members: () => members.map(m => ({ peerId: m.toString() })) as never, isMember: () => true }
    })
    assert.equal(await keeper.sweep(IDLE_MS + 1), 1)
    assert.deepEqual(closed, [`/meshsub/1.2.0,${DIRECT_GOSSIP_PROTOCOL}`])
  })
})
