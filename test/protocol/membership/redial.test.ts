// The membership dialler beyond an all-to-all hive, against a network whose dials fail (a
// member that refuses a device it does not know yet, or one not up): a neighbour not reached
// is dialled again after about a second, not at the next tick.

import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { describe, it } from 'node:test'
import { createMembershipSync, neighboursOf } from '../../../protocol/membership/index.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { Membership, MembershipNetwork } from '../../../protocol/membership/index.ts'

async function peers (count: number): Promise<string[]> {
  return await Promise.all(Array.from({ length: count }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
}

/** A hive of `ids` seen from the first, over a network where every dial is refused. */
function refusingHive (ids: string[]): { membership: Membership, network: MembershipNetwork, dials: Map<string, number> } {
  const [self] = ids
  const dials = new Map<string, number>()
  const membership = {
    peerId: self,
    hiveId: 'hive',
    members: () => ids.map(peerId => ({ peerId, self: peerId === self })),
    isMember: (peer: string) => ids.includes(peer),
    addressesOf: () => [],
    addEventListener: () => {},
    removeEventListener: () => {}
  } as unknown as Membership
  const network = {
    handle: async () => {},
    unhandle: async () => {},
    hangUp: async () => {},
    getConnections: () => [],
    getMultiaddrs: () => [],
    peerStore: { get: async () => { throw new Error('not known') } },
    addEventListener: () => {},
    removeEventListener: () => {},
    dial: async (target: unknown) => {
      const peer = String(target)
      dials.set(peer, (dials.get(peer) ?? 0) + 1)
      throw new Error('connection refused: not a member here yet')
    }
  } as unknown as MembershipNetwork
  return { membership, network, dials }
}

describe('the membership dialler when a dial fails', () => {
  it('beyond an all-to-all hive, dials an unreached neighbour again within seconds, with the tick 10 minutes away', async () => {
    const ids = await peers(12)
    const { membership, network, dials } = refusingHive(ids)
    const sync = createMembershipSync({ redialIntervalMs: 600_000 }, { membership, network, gate: { allows: () => true } })
    await sync.start()
    try {
      const neighbours = [...neighboursOf(ids[0]!, ids)]
      assert.ok(neighbours.length > 0 && neighbours.length < ids.length - 1)
      await waitFor(() => neighbours.every(n => (dials.get(n) ?? 0) >= 2), { timeoutMs: 20_000, message: 'every neighbour dialled a second time' })
      for (const peer of ids.slice(1)) if (!neighbours.includes(peer)) assert.equal(dials.get(peer) ?? 0, 0, 'a member that is not a neighbour is not dialled')
    } finally {
      await sync.stop()
    }
  })

})
