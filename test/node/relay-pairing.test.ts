// Pairing across networks, on loopback: an invite made by a member that holds a reservation on
// a member relay carries its address through that relay, and a device given nothing but that
// address pairs through the relay and is then a member. The relay lets a stranger through only
// to that inviter, only while its invite is open, and grants it nothing else.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, describe, it } from 'node:test'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { RELAY_V2_HOP_CODEC, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { joinHive } from '../helpers/hive.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { Invite, PAIRING_PROTOCOL, RELAY_WINDOW_MAX_MS, decodeInvite, encodeInvite, inviteAddressForm } from '../../protocol/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { MembershipRefusal } from '../../protocol/index.ts'
import type { Connection, Libp2p } from '@libp2p/interface'

const nodes: HiveNode[] = []
const dirs: string[] = []

async function node (label: string, extra: Parameters<typeof startNode>[1] = {}): Promise<HiveNode> {
  const dir = await makeTempDir()
  dirs.push(dir)
  const n = await startNode(label, extra, dir)
  nodes.push(n)
  return n
}

after(async () => {
  await Promise.all(nodes.map(async n => { await n.stop() }))
  await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
})

/** The same invite with only its addresses through a relay: the joiner cannot reach the inviter directly. */
function relayOnly (uri: string): string {
  const invite = decodeInvite(uri)
  const addresses = invite.addresses.filter(a => inviteAddressForm(a) === 'relayed')
  assert.ok(addresses.length > 0, 'the invite carries an address through the relay')
  return encodeInvite(new Invite({ ...invite.toJSON(), secret: invite.revealSecret(), addresses }))
}

/** A relay R and a member A of its hive holding a reservation on it. */
async function relayAndInviter (tag: string): Promise<{ relay: HiveNode, inviter: HiveNode }> {
  const relay = await node(`relay-${tag}`, { relay: true })
  const inviter = await node(`inviter-${tag}`, { upgradeToDirect: false })
  await joinHive([relay, inviter])
  await inviter.libp2p.dial(relay.libp2p.getMultiaddrs())
  await waitFor(() => inviter.reach.reservedOn().includes(relay.peerId.toString()), { timeoutMs: 30_000, message: 'the inviter holds a reservation on the relay' })
  return { relay, inviter }
}

/** A device with nothing of the hive but libp2p's relay client. */
async function startStranger (): Promise<Libp2p> {
  return createLibp2p({
    privateKey: await generateKeyPair('Ed25519'),
    addresses: { listen: [] },
    transports: [tcp(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() }
  })
}

/** Whether a hop request on a connection gets no answer (a refused or reset stream). */
async function hopRefused (connection: Connection, message: Uint8Array): Promise<boolean> {
  try {
    const stream = await connection.newStream(RELAY_V2_HOP_CODEC, { runOnLimitedConnection: true, signal: AbortSignal.timeout(10_000) })
    stream.send(message)
    for await (const chunk of stream) {
      // a status reply: HopMessage { type: STATUS (2), status } — OK is 100
      const bytes = chunk.subarray()
      const at = bytes.indexOf(0x18)
      return at < 0 || bytes[at + 1] !== 100
    }
    return true
  } catch {
    return true
  }
}

describe('pairing across networks through a member relay', () => {
  it('an invite carries the inviter\'s address through its relay; a device given only that pairs, then is a member', { timeout: 180_000 }, async () => {
    const { relay, inviter } = await relayAndInviter('a')
    const joiner = await node('joiner-a')
    const created = await inviter.hive.pairing.openInvite()
    const through = created.addresses.filter(a => inviteAddressForm(a) === 'relayed')
    assert.equal(through.length, 1)
    assert.ok(through[0]!.endsWith(`/p2p/${relay.peerId.toString()}/p2p-circuit`), 'the address goes through the relay')
    assert.ok(relay.hive.gate.relayWindowOpen(inviter.peerId.toString()), 'the relay holds a window open for the inviter')
    // how the joiner reached the inviter: through the relay, never directly
    const seen: string[] = []
    const onOpen = (e: CustomEvent<Connection>): void => {
      // while it is not a member yet: afterwards it dials the inviter at every address it now knows
      if (e.detail.remotePeer.equals(joiner.peerId) && !inviter.hive.membership.isMember(joiner.peerId.toString())) seen.push(e.detail.remoteAddr.toString())
    }
    inviter.libp2p.addEventListener('connection:open', onOpen)
    const joined = await joiner.hive.pairing.join(relayOnly(created.uri))
    inviter.libp2p.removeEventListener('connection:open', onOpen)
    assert.equal(joined.hiveId, inviter.hive.membership.hiveId)
    assert.ok(seen.length > 0 && seen.every(a => a.includes('/p2p-circuit')), `the pairing connection came through the relay (${seen.join(', ')})`)
    assert.ok(inviter.hive.membership.isMember(joiner.peerId.toString()), 'the inviter lists the joiner')
    // the invite is spent: the relay's window for it is closed
    await waitFor(() => !relay.hive.gate.relayWindowOpen(inviter.peerId.toString()), { message: 'the relay closes the window once the invite is used' })
    // a member now: the relay learns of it, and it reaches the inviter as a member
    await waitFor(() => relay.hive.membership.isMember(joiner.peerId.toString()), { timeoutMs: 60_000, message: 'the relay lists the joiner' })
    await waitFor(() => joiner.peers().some(p => p.peerId === inviter.peerId.toString()), { timeoutMs: 60_000, message: 'the joiner is connected to the inviter as a member' })
  })

  it('a stranger without the invite gets through to the inviter only to fail its proof, and is granted nothing else', { timeout: 180_000 }, async () => {
    const { relay, inviter } = await relayAndInviter('b')
    const other = await node('other-b')
    await joinHive([relay, inviter, other])
    const refusals: MembershipRefusal[] = []
    relay.hive.gate.addEventListener('refused', (e) => { refusals.push((e as CustomEvent<MembershipRefusal>).detail) })
    const created = await inviter.hive.pairing.openInvite()
    // a forged invite: the right addresses, a secret of its own
    const real = decodeInvite(relayOnly(created.uri))
    const forged = encodeInvite(new Invite({ ...real.toJSON(), secret: new Uint8Array(16).fill(7) }))
    const guesser = await node('guesser-b')
    await assert.rejects(guesser.hive.pairing.join(forged), { name: 'WrongSecret' })
    assert.equal(inviter.hive.membership.isMember(guesser.peerId.toString()), false)

    // a bare stranger at the relay while the window is open: admitted as a guest, no more
    const stranger = await startStranger()
    try {
      const connection = await stranger.dial(relay.libp2p.getMultiaddrs(), { signal: AbortSignal.timeout(20_000) })
      // a reservation: HopMessage { type: RESERVE (0) }
      assert.ok(await hopRefused(connection, new Uint8Array([2, 8, 0])), 'the relay grants a guest no reservation')
      // a relayed connection to a member with no window open (the other member, no reservation either)
      await assert.rejects(stranger.dial(multiaddr(`${relay.libp2p.getMultiaddrs()[0]!.toString()}/p2p-circuit/p2p/${other.peerId.toString()}`), { signal: AbortSignal.timeout(20_000) }))
      // to the inviter it gets through, and may speak the pairing protocol there alone
      const relayed = await stranger.dial(multiaddr(`${relay.libp2p.getMultiaddrs()[0]!.toString()}/p2p-circuit/p2p/${inviter.peerId.toString()}`), { signal: AbortSignal.timeout(20_000) })
      assert.ok(relayed.remoteAddr.toString().includes('/p2p-circuit'))
      await assert.rejects(async () => {
        const stream = await relayed.newStream('/ipfs/id/1.0.0', { runOnLimitedConnection: true, signal: AbortSignal.timeout(10_000) })
        for await (const chunk of stream) assert.fail(`the inviter answered identify with ${chunk.byteLength} bytes`)
        throw new Error('the stream ended without an answer')
      })
      const pairing = await relayed.newStream(PAIRING_PROTOCOL, { runOnLimitedConnection: true, signal: AbortSignal.timeout(10_000) })
      pairing.abort(new Error('done'))
      // nothing learnt of either device beyond the protocols it asked for: identify answered nothing
      for (const [peer, allowed] of [[relay, [RELAY_V2_HOP_CODEC]], [inviter, [PAIRING_PROTOCOL]]] as const) {
        const record = await stranger.peerStore.get(peer.peerId).catch(() => undefined)
        const extra = (record?.protocols ?? []).filter(p => !([...allowed, '/ipfs/id/1.0.0', '/ipfs/ping/1.0.0'] as string[]).includes(p))
        assert.deepEqual(extra, [], `no other protocol of ${peer.name}`)
        assert.equal(record?.metadata.has('AgentVersion') ?? false, false, `no identify answer from ${peer.name}`)
        assert.ok((record?.addresses ?? []).every(a => !a.multiaddr.toString().includes('/p2p-circuit') || peer === inviter), `no address of ${peer.name} beyond the one dialled`)
      }
      const reserved = [...(relay.libp2p.services.relay as { reservations: Map<unknown, unknown> }).reservations.keys()].map(String)
      assert.deepEqual(reserved.sort(), [inviter.peerId.toString(), other.peerId.toString()].sort(), 'the relay holds its members\' reservations only')
    } finally {
      await stranger.stop()
    }
    assert.ok(refusals.some(r => r.layer === 'relay' && /relayed connection refused/.test(r.reason)), 'the relay refused the connection to a member without a window')
  })

  it('once the invite is cancelled or expired the relay lets no stranger through, invite or not', { timeout: 180_000 }, async () => {
    const { relay, inviter } = await relayAndInviter('c')
    const cancelled = await inviter.hive.pairing.openInvite()
    assert.ok(relay.hive.gate.relayWindowOpen(inviter.peerId.toString()))
    inviter.hive.pairing.cancelInvite(cancelled.id)
    await waitFor(() => !relay.hive.gate.relayWindowOpen(inviter.peerId.toString()), { message: 'the relay closes the window when the invite is cancelled' })
    const late = await node('late-c')
    await assert.rejects(late.hive.pairing.join(relayOnly(cancelled.uri)), { name: 'InviterUnreachable' })
    assert.equal(inviter.hive.membership.isMember(late.peerId.toString()), false)

    // an invite's expiry closes the window at the relay with no word from the inviter
    const short = await inviter.hive.pairing.openInvite({ ttlMs: 2_000 })
    assert.ok(relay.hive.gate.relayWindowOpen(inviter.peerId.toString()))
    await waitFor(() => !relay.hive.gate.relayWindowOpen(inviter.peerId.toString()), { timeoutMs: 30_000, message: 'the window lapses with the invite' })
    await assert.rejects(late.hive.pairing.join(relayOnly(short.uri)), { name: /InviteExpired|InviterUnreachable/ })

    // a window is bounded whatever the inviter asks: a day-long invite gets RELAY_WINDOW_MAX_MS at a time
    const now = Date.now()
    const end = relay.hive.gate.openRelayWindow(inviter.peerId.toString(), 'ffffffffffffffff', now + 24 * 3_600_000, now)
    assert.equal(end, now + RELAY_WINDOW_MAX_MS)
    relay.hive.gate.closeRelayWindow(inviter.peerId.toString(), 'ffffffffffffffff')
    // and only a member may open one
    assert.throws(() => relay.hive.gate.openRelayWindow(late.peerId.toString(), 'eeeeeeeeeeeeeeee', now + 60_000), { name: 'PeerNotAllowed' })
  })
})
