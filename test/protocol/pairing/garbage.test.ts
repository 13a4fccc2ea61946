// A joiner that sends garbage on the pairing protocol is hung up on: the stream is reset and the
// connection closed, for a stranger on a pairing-only connection and for a member alike, at
// every step of the exchange. The inviter keeps pairing other devices.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { FramedStream, encodeFrame, encodeVarint } from '../../../protocol/index.ts'
import { MAX_PAIRING_MESSAGE_BYTES, PAIRING_PROTOCOL } from '../../../protocol/pairing/index.ts'
import { waitFor } from '../../helpers/wait.ts'
import { connected, devices, memberIds } from '../../helpers/pairing-fixture.ts'
import type { CreatedInvite } from '../../../protocol/pairing/index.ts'
import type { Device } from '../../helpers/pairing-fixture.ts'

type Garbage = (framed: FramedStream, invite: CreatedInvite) => Promise<void>

const GARBAGE: Record<string, Garbage> = {
  'bytes that are not CBOR': async (framed) => { await framed.writeRaw(Uint8Array.from([3, 0xff, 0xfe, 0xfd])) },
  'CBOR that is not a hello': async (framed) => { await framed.writeRaw(encodeFrame({ t: 'hello', v: 2, hive: 7 })) },
  'a length prefix beyond the frame bound': async (framed) => { await framed.writeRaw(encodeVarint(MAX_PAIRING_MESSAGE_BYTES + 1)) },
  'a frame cut short, then the end of the stream': async (framed) => {
    await framed.writeRaw(Uint8Array.from([40, 1, 2, 3]))
    await framed.close()
  },
  'a valid hello, then a proof that is not one': async (framed, invite) => {
    await framed.write({ t: 'hello', v: 1, hive: invite.hiveId, invite: invite.id, nonce: new Uint8Array(randomBytes(32)), name: 'garbage', addrs: [] })
    const challenge = await framed.readFrame({ signal: AbortSignal.timeout(10_000) })
    assert.ok(challenge != null, 'the inviter answered the hello')
    await framed.write({ t: 'proof', mac: 'not thirty-two bytes' })
  }
}

/** Opens a pairing stream from `from` to `to` on a fresh connection, sends garbage, returns the connection. */
async function sendGarbage (from: Device, to: Device, invite: CreatedInvite, garbage: Garbage): Promise<{ status: string }> {
  const connection = await from.libp2p.dial(to.libp2p.getMultiaddrs(), { force: true })
  const stream = await connection.newStream(PAIRING_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(10_000) })
  const framed = new FramedStream(stream, { maxMessageBytes: MAX_PAIRING_MESSAGE_BYTES })
  await garbage(framed, invite)
  // the answer is a reset stream, never a frame
  await assert.rejects(framed.readFrame({ signal: AbortSignal.timeout(10_000) }), (err: Error) => err.name !== 'AbortError' && err.name !== 'TimeoutError')
  return connection
}

describe('pairing garbage', () => {
  it('a stranger on a pairing connection is hung up on for any malformed frame, and the inviter still pairs others', async (t) => {
    const [a, stranger, c] = await devices(t, ['a', 'stranger', 'c']) as [Device, Device, Device]
    const invite = a.pairing.createInvite()
    // the stranger's own gate lets it dial a device that is not in its hive
    t.after(stranger.gate.expectPairing(a.peerId))
    for (const [name, garbage] of Object.entries(GARBAGE)) {
      const connection = await sendGarbage(stranger, a, invite, garbage)
      assert.ok((connection as { limits?: unknown }).limits != null, `${name}: a pairing-only connection`)
      await waitFor(() => connection.status !== 'open', { message: `${name}: the stranger's connection is closed` })
      await waitFor(() => !a.libp2p.getConnections().some(x => x.remotePeer.toString() === stranger.peerId && x.status === 'open'), { message: `${name}: the inviter holds no connection to the stranger` })
    }
    assert.equal(a.membership.isMember(stranger.peerId), false)
    assert.equal(a.pairing.invites()[0]?.state, 'open', 'garbage neither uses nor closes the invite')
    await c.pairing.join(invite.uri)
    assert.deepEqual(memberIds(a), [a.peerId, c.peerId].sort())
  })

  it('a member is hung up on for a malformed pairing frame like any peer, and comes back as a member', async (t) => {
    const [a, m, c] = await devices(t, ['a', 'm', 'c']) as [Device, Device, Device]
    await m.pairing.join(a.pairing.createInvite().uri)
    await waitFor(() => connected(a, m) && connected(m, a), { message: 'm connected to a as a member' })
    const invite = a.pairing.createInvite()
    // (a member's hello is refused as AlreadyMember before any challenge, so no garbage proof)
    for (const [name, garbage] of Object.entries(GARBAGE).filter(([name]) => !name.includes('proof'))) {
      const connection = await sendGarbage(m, a, invite, garbage)
      await waitFor(() => connection.status !== 'open', { message: `${name}: the member's connection is closed` })
    }
    assert.equal(a.membership.isMember(m.peerId), true, 'hanging up removes no one')
    await waitFor(() => connected(a, m) && connected(m, a), { message: 'm redials a' })
    await c.pairing.join(invite.uri)
    assert.deepEqual(memberIds(a), [a.peerId, c.peerId, m.peerId].sort())
  })
})
