// The dialling hints a membership exchange carries are gathered from the peer store at most
// every HINTS_TTL_MS, and at once after the member list changes; what they say still reaches
// the other side.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createMembershipSync, toWire } from '../../../protocol/membership/index.ts'
import { devices, memberIds } from '../../helpers/pairing-fixture.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { Device } from '../../helpers/pairing-fixture.ts'
import type { MembershipNetwork, MembershipSync } from '../../../protocol/membership/index.ts'
import type { TestContext } from 'node:test'

/** A sync for `device` in place of the fixture's, whose peer-store reads are counted. */
function countingSync (t: TestContext, device: Device, reads: { n: number }): MembershipSync {
  const peerStore = new Proxy(device.libp2p.peerStore, {
    get: (target, key) => {
      const value: unknown = Reflect.get(target, key)
      if (key === 'get' && typeof value === 'function') return async (...args: unknown[]) => { reads.n++; return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args) }
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const network: MembershipNetwork = new Proxy(device.libp2p, {
    get: (target, key) => {
      if (key === 'peerStore') return peerStore
      const value: unknown = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const sync = createMembershipSync({ redialIntervalMs: 600_000 }, { membership: device.membership, gate: device.gate, network })
  t.after(async () => { await sync.stop() })
  return sync
}

describe('membership hints', () => {
  it('are gathered once for exchanges close together, again after the list changes, and reach the peer', async (t) => {
    const [a, b, c, d] = await devices(t, ['a', 'b', 'c', 'd'], { redialIntervalMs: 600_000 })
    await a!.membership.add(b!.peerId)
    await a!.membership.add(c!.peerId)
    await b!.membership.adopt(a!.membership.hiveId, a!.membership.entries().map(toWire))
    await c!.membership.adopt(a!.membership.hiveId, a!.membership.entries().map(toWire))
    // a knows where c listens; b does not, and learns it from a's hints
    await a!.sync.stop()
    await a!.libp2p.peerStore.merge(c!.libp2p.peerId, { multiaddrs: c!.libp2p.getMultiaddrs() })
    await a!.libp2p.dial(b!.libp2p.getMultiaddrs())
    const reads = { n: 0 }
    const sync = countingSync(t, a!, reads)
    // on start it runs an exchange with b, the one member it is connected to
    await sync.start()
    const cAddress = c!.libp2p.getMultiaddrs()[0]?.toString().split('/p2p/')[0] ?? ''
    await waitFor(() => b!.membership.addressesOf(c!.peerId).some(a => a.startsWith(cAddress)), { message: 'b holds c\'s address from a\'s hints' })
    const first = reads.n
    assert.ok(first >= 2, `the first exchange read the peer store for each other member (${first} reads)`)

    await sync.syncWith(b!.peerId)
    assert.equal(reads.n, first, 'a second exchange within the interval gathers no hints')

    // the change runs an exchange with b, which gathers them anew
    await a!.membership.add(d!.peerId)
    await waitFor(() => memberIds(b!).includes(d!.peerId), { message: 'b hears of d' })
    assert.ok(reads.n > first, 'an exchange after the list changed gathers them again')
  })
})
