// Only a live invite opens the gate to strangers. Once a device's last invite is used,
// cancelled, closed by wrong attempts or expired, a stranger's pairing connection is closed and
// a new one refused: strangers get nothing.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { Invite, decodeInvite } from '../../../protocol/pairing/index.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import { devices } from '../../helpers/pairing-fixture.ts'
import type { Connection } from '@libp2p/interface'
import type { Refusal } from '../../../protocol/membership/index.ts'
import type { CreatedInvite } from '../../../protocol/pairing/index.ts'
import type { Device } from '../../helpers/pairing-fixture.ts'

/** A stranger's pairing-only connection to `to`, as a device holding one of its invites gets. */
async function pairingConnection (stranger: Device, to: Device): Promise<Connection> {
  const connection = await stranger.libp2p.dial(to.libp2p.getMultiaddrs(), { force: true })
  assert.ok(connection.limits != null, 'a pairing-only connection')
  await waitFor(() => to.libp2p.getConnections().some(c => c.remotePeer.toString() === stranger.peerId && c.limits != null), { message: 'the inviter admitted the stranger for pairing' })
  return connection
}

/** The stranger's connection is closed and a new one is refused by the gater. */
async function shutOut (stranger: Device, to: Device, connection: Connection): Promise<void> {
  await waitFor(() => connection.status !== 'open', { message: 'the stranger\'s pairing connection is closed' })
  const refused = eventPromise<CustomEvent<Refusal>>(to.gate, 'refused', { filter: e => e.detail.peer === stranger.peerId && e.detail.layer === 'connection', message: 'the gater refused the stranger' })
  const again = await stranger.libp2p.dial(to.libp2p.getMultiaddrs(), { force: true }).catch(() => undefined)
  assert.equal((await refused).detail.reason, 'not a member')
  if (again != null) await waitFor(() => again.status !== 'open', { message: 'a new connection does not stay open' })
  assert.equal(to.libp2p.getConnections().some(c => c.remotePeer.toString() === stranger.peerId && c.status === 'open'), false)
}

const ENDINGS: Record<string, (a: Device, b: Device, invite: CreatedInvite) => Promise<void>> = {
  used: async (_a, b, invite) => { await b.pairing.join(invite.uri) },
  cancelled: async (a, _b, invite) => { a.pairing.cancelInvite(invite.id) },
  'closed after 20 wrong attempts': async (a, b, invite) => {
    const decoded = decodeInvite(invite.uri)
    for (let attempt = 1; attempt <= 20; attempt++) {
      const forged = new Invite({ ...decoded.toJSON(), secret: new Uint8Array(randomBytes(16)) })
      await assert.rejects(b.pairing.join(forged), { name: 'WrongSecret' }, `attempt ${attempt}`)
    }
    assert.equal(a.pairing.invites()[0]?.state, 'closed')
  },
  expired: async (a) => {
    await waitFor(() => a.pairing.invites()[0]?.state === 'expired', { message: 'the invite expired' })
  }
}

describe('the pairing window', () => {
  for (const [ending, end] of Object.entries(ENDINGS)) {
    it(`closes when the device's only invite is ${ending}: the stranger's pairing connection is closed and a new one refused`, async (t) => {
      const [a, b, stranger] = await devices(t, ['a', 'b', 'stranger']) as [Device, Device, Device]
      const invite = a.pairing.createInvite(ending === 'expired' ? { ttlMs: 1_000 } : {})
      t.after(stranger.gate.expectPairing(a.peerId))
      const connection = await pairingConnection(stranger, a)
      await end(a, b, invite)
      await shutOut(stranger, a, connection)
      // a device still holding the dead invite cannot reach the inviter either, and is told why it may be
      if (ending !== 'used') {
        const late = decodeInvite(invite.uri)
        const joining = b.pairing.join(new Invite({ ...late.toJSON(), secret: late.revealSecret(), expiresAt: Date.now() + 60_000 }))
        await assert.rejects(joining, (err: Error) => err.name === 'InviterUnreachable' && /used, cancelled or expired/.test(err.message))
      }
    })
  }

  it('stays open for an exchange under way: devices joining at once on their own invites are all welcomed', async (t) => {
    const [a, ...joiners] = await devices(t, ['a', 'b', 'c', 'd']) as [Device, ...Device[]]
    const invites = joiners.map(() => a.pairing.createInvite())
    // each joiner's welcome must reach it although the other exchanges, ending first, leave no
    // live invite behind them
    const joined = await Promise.allSettled(joiners.map(async (joiner, i) => joiner.pairing.join(invites[i]!.uri)))
    assert.deepEqual(joined.map(j => j.status === 'fulfilled' ? 'joined' : (j.reason as Error).message), joiners.map(() => 'joined'))
    for (const joiner of joiners) assert.equal(a.membership.isMember(joiner.peerId), true)
  })

  it('stays open while another invite is live, and closes with the last', async (t) => {
    const [a, b, c, stranger] = await devices(t, ['a', 'b', 'c', 'stranger']) as [Device, Device, Device, Device]
    const first = a.pairing.createInvite()
    const second = a.pairing.createInvite()
    t.after(stranger.gate.expectPairing(a.peerId))
    await b.pairing.join(first.uri)
    // the window is open for the second invite: a stranger still connects, and a device
    // holding the first hears it is used
    const connection = await pairingConnection(stranger, a)
    await assert.rejects(c.pairing.join(first.uri), { name: 'InviteUsed' })
    assert.equal(connection.status, 'open', 'the stranger\'s connection outlives the used invite')
    a.pairing.cancelInvite(second.id)
    await shutOut(stranger, a, connection)
  })
})
