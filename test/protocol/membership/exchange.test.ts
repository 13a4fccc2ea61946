// A device formed early knows few members and refuses every other device's connection, so it
// learns of the later ones only over a link from a member that knows more. The exchange on
// that link must happen even when the first attempt finds no answer: the other side's list
// does not change again, and nothing else would run one.

import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { describe, it } from 'node:test'
import { MEMBERSHIP_PROTOCOL, createMembershipSync, toWire } from '../../../protocol/membership/index.ts'
import { devices, memberIds } from '../../helpers/pairing-fixture.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { Device } from '../../helpers/pairing-fixture.ts'
import type { MembershipGate, MembershipNetwork, MembershipSync } from '../../../protocol/membership/index.ts'
import type { PeerId } from '@libp2p/interface'
import type { TestContext } from 'node:test'

/**
 * `a` founds a hive and adds `b`, then `c`; `b` adopts the list as it stood when it was added
 * (a and b), `c` the whole list. The syncs of `a` and `b` are stopped, so that the test starts
 * others in the order it needs; `a` knows where `b` listens.
 */
async function formedOneByOne (a: Device, b: Device, c: Device): Promise<void> {
  await a.sync.stop()
  await b.sync.stop()
  await a.membership.add(b.peerId)
  const early = a.membership.entries().map(toWire)
  await a.membership.add(c.peerId)
  await b.membership.adopt(a.membership.hiveId, early)
  await c.membership.adopt(a.membership.hiveId, a.membership.entries().map(toWire))
  await a.libp2p.peerStore.merge(peerIdFromString(b.peerId), { multiaddrs: b.libp2p.getMultiaddrs() })
  assert.deepEqual(memberIds(b), [a.peerId, b.peerId].sort())
}

/**
 * A membership sync for `device` in place of the fixture's, with its log lines collected.
 * `dials: false`: its dials all fail (a device behind a NAT), so it is reached only over links
 * that others open.
 */
function syncFor (t: TestContext, device: Device, lines: string[], options: { gate?: Pick<MembershipGate, 'allows'>, dials?: boolean } = {}): MembershipSync {
  const log = { debug: (m: string) => { lines.push(m) }, info: (m: string) => { lines.push(m) }, warn: (m: string) => { lines.push(m) } }
  // this device's own addresses and protocols are taken to stay as they are: the exchange that
  // a change of them runs with every connected member would otherwise hide what is tested
  const network: MembershipNetwork = new Proxy(device.libp2p, {
    get: (target, key) => {
      if (key === 'dial' && options.dials === false) return async () => { throw new Error('no route to the member') }
      if (key === 'addEventListener' || key === 'removeEventListener') {
        return (type: string, listener: EventListener) => { if (type !== 'self:peer:update') target[key](type as 'peer:connect', listener) }
      }
      const value: unknown = Reflect.get(target, key)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
  const sync = createMembershipSync({ log, redialIntervalMs: 600_000 }, { membership: device.membership, gate: options.gate ?? device.gate, network })
  t.after(async () => { await sync.stop() })
  return sync
}

describe('membership exchange on a link from a member that knows more', () => {
  it('a device that served no membership yet when the link opened learns the whole list once it does', async (t) => {
    const [a, b, c] = await devices(t, ['a', 'b', 'c'], { redialIntervalMs: 600_000 })
    await formedOneByOne(a!, b!, c!)
    // a dials b before b serves the membership protocol: a's exchange finds no answer
    const lines: string[] = []
    await syncFor(t, a!, lines).start()
    await waitFor(() => lines.some(l => l.includes(`membership exchange with ${b!.peerId} not started`)), { message: 'a\'s first exchange with b fails' })
    await syncFor(t, b!, [], { dials: false }).start()
    await waitFor(() => memberIds(b!).length === 3, { timeoutMs: 15_000, message: 'b lists a, b and c' })
    assert.deepEqual(memberIds(b!), [a!.peerId, b!.peerId, c!.peerId].sort())
  })

  it('an exchange that failed on an open link is run again, with neither list changing', async (t) => {
    const [a, b, c] = await devices(t, ['a', 'b', 'c'], { redialIntervalMs: 600_000 })
    await formedOneByOne(a!, b!, c!)
    // b serves the protocol, but refuses a's first exchange (as a timeout on a loaded machine
    // would end it), and cannot dial a itself: only a's link reaches it
    let asked = 0
    const gate: Pick<MembershipGate, 'allows'> = {
      allows: (peer: PeerId | string, protocol: string): boolean => {
        if (protocol === MEMBERSHIP_PROTOCOL && peer.toString() === a!.peerId && asked++ === 0) return false
        return b!.gate.allows(peer, protocol)
      }
    }
    await syncFor(t, b!, [], { gate, dials: false }).start()
    await syncFor(t, a!, []).start()
    await waitFor(() => memberIds(b!).length === 3, { timeoutMs: 15_000, message: 'b lists a, b and c' })
    assert.ok(asked >= 2, `a ran the exchange ${asked} times`)
    assert.deepEqual(memberIds(b!), [a!.peerId, b!.peerId, c!.peerId].sort())
  })
})
