// A member that relays, on loopback: members reach each other through it (and the hive's
// protocols run over the relayed link), a relayed link is upgraded to a direct one, and a
// stranger gets neither a reservation nor a relayed connection, and learns nothing.

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
import { createLibp2p } from 'libp2p'
import { multiaddr } from '@multiformats/multiaddr'
import { joinHive } from '../helpers/hive.ts'
import { dropKeepAlive, makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { HiveNode, PeerSummary } from '../../node/hive-node.ts'
import { MAX_RELAYED_ADDRS, boundAddresses, isRelayedAddress } from '../../protocol/index.ts'
import type { MembershipRefusal } from '../../protocol/index.ts'
import type { Libp2p } from '@libp2p/interface'

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

/** The address of `target` through `relay`, as a member that holds a reservation there is reached. */
function circuitAddress (relay: HiveNode, target: HiveNode): string {
  const base = relay.libp2p.getMultiaddrs().find(ma => !ma.toString().includes('/p2p-circuit'))
  assert.ok(base != null, 'the relay listens on a direct address')
  return `${base.toString()}/p2p-circuit/p2p/${target.peerId.toString()}`
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

const hasReservation = (n: HiveNode, relay: HiveNode): boolean => n.reach.reservedOn().includes(relay.peerId.toString())

/**
 * Leaves `from` connected to `to` through `relay` only (both with upgrades off). Once hung up
 * on, either may dial the other directly again (libp2p redials a peer kad-dht keeps alive), and
 * a dial through the relay joins such a dial under way; so the relayed link is dialled until it
 * is open, and a direct link that comes back beside it is closed: `to` stays connected through
 * the relay, so nothing redials it.
 */
async function relayedOnly (from: HiveNode, to: HiveNode, relay: HiveNode): Promise<PeerSummary> {
  await dropKeepAlive(from, to)
  await from.libp2p.hangUp(to.peerId)
  return waitFor(async () => {
    const open = from.libp2p.getConnections(to.peerId).filter(c => c.status === 'open')
    if (!open.some(c => isRelayedAddress(c.remoteAddr.toString()))) {
      await from.libp2p.dial(multiaddr(circuitAddress(relay, to)), { force: true }).catch(() => {})
      return undefined
    }
    await Promise.all(open.filter(c => !isRelayedAddress(c.remoteAddr.toString())).map(async c => { await c.close() }))
    return from.peers().find(p => p.peerId === to.peerId.toString() && p.via === 'relayed' && p.addresses.every(isRelayedAddress))
  }, { timeoutMs: 30_000, message: `${from.name} reaches ${to.name} through the relay only` })
}

describe('a member that relays, for members only', () => {
  it('members reach each other through it, the hive\'s protocols run over the relayed link, and peers says "relayed"', { timeout: 120_000 }, async () => {
    const relay = await node('relay', { relay: true })
    const a = await node('a', { upgradeToDirect: false })
    const b = await node('b', { upgradeToDirect: false })
    await joinHive([relay, a, b])
    // b holds a reservation on the relay once it is connected to it
    await b.libp2p.dial(relay.libp2p.getMultiaddrs())
    await waitFor(() => hasReservation(b, relay), { timeoutMs: 30_000, message: 'b holds a reservation on the relay' })
    assert.ok(b.reach.reservedOn().length === 1)
    assert.ok(b.listenAddresses().some(a => a.includes(`/p2p/${relay.peerId.toString()}/p2p-circuit`)), 'b lists its address through the relay')
    // a drops any direct link to b and reaches it through the relay
    const seen = await relayedOnly(a, b, relay)
    assert.equal(seen.relay?.peerId, relay.peerId.toString())
    assert.equal(seen.relay?.name, 'relay')
    assert.ok(seen.addresses.every(x => x.includes('/p2p-circuit')), 'a is connected to b through the relay only')
    // a context written on b reaches a over the relayed link (the context protocol, gated)
    await (await b.contexts.store.open('relayed')).set('via', 'the relay')
    await waitFor(() => a.contexts.store.get('relayed')?.get('via') === 'the relay', { timeoutMs: 30_000, message: 'a context written on b reaches a through the relay' })
    assert.ok(a.peers().find(p => p.peerId === b.peerId.toString())?.via === 'relayed', 'still through the relay when the context arrived')
  })

  it('a relayed link is upgraded to a direct one where the member\'s direct address answers', { timeout: 180_000 }, async () => {
    const relay = await node('relay2', { relay: true })
    const a = await node('a2', { upgradeIntervalMs: 1_000 })
    const b = await node('b2', { upgradeIntervalMs: 1_000 })
    await joinHive([relay, a, b])
    await b.libp2p.dial(relay.libp2p.getMultiaddrs())
    await waitFor(() => hasReservation(b, relay), { timeoutMs: 30_000, message: 'b holds a reservation on the relay' })
    // the direct link comes back by the upgrade, not by libp2p redialling a keep-alive peer
    await dropKeepAlive(a, b)
    await a.libp2p.hangUp(b.peerId)
    await a.libp2p.dial(multiaddr(circuitAddress(relay, b)))
    // on loopback b's direct address answers: the relayed link gives way to a direct one
    const upgraded = await waitFor(() => a.peers().find(p => p.peerId === b.peerId.toString() && p.via === 'lan' && p.addresses.every(x => !x.includes('/p2p-circuit'))), { timeoutMs: 90_000, message: 'a is connected to b directly, not through the relay' })
    assert.equal(upgraded.relay, undefined)
  })

  it('a relayed link gives way to a direct one the member dialled, as to one this device dialled', { timeout: 120_000 }, async () => {
    const relay = await node('relay6', { relay: true })
    const a = await node('a6', { upgradeIntervalMs: 1_000 })
    const b = await node('b6', { upgradeIntervalMs: 1_000 })
    a.reach.setUpgrades(false)
    b.reach.setUpgrades(false)
    await joinHive([relay, a, b])
    await b.libp2p.dial(relay.libp2p.getMultiaddrs())
    await waitFor(() => hasReservation(b, relay), { timeoutMs: 30_000, message: 'b holds a reservation on the relay' })
    await relayedOnly(a, b, relay)
    // b dials a directly (as libp2p's redial of a peer it keeps alive does, or b's own upgrade
    // racing a's): each now has a direct link beside the relayed one
    await b.libp2p.dial(a.libp2p.getMultiaddrs(), { force: true })
    const both = (n: HiveNode, other: HiveNode): boolean => {
      const open = n.libp2p.getConnections(other.peerId).filter(c => c.status === 'open').map(c => c.remoteAddr.toString())
      return open.some(isRelayedAddress) && open.some(x => !isRelayedAddress(x))
    }
    await waitFor(() => both(a, b) && both(b, a), { message: 'a and b are connected both directly and through the relay' })
    // with upgrades on, the relayed link is closed on both sides though neither is reached only through the relay
    a.reach.setUpgrades(true)
    b.reach.setUpgrades(true)
    const upgraded = await waitFor(() => a.peers().find(p => p.peerId === b.peerId.toString() && p.via === 'lan' && p.addresses.every(x => !isRelayedAddress(x))), { timeoutMs: 30_000, message: 'a is connected to b directly only' })
    assert.equal(upgraded.relay, undefined)
    await waitFor(() => b.libp2p.getConnections(a.peerId).every(c => !isRelayedAddress(c.remoteAddr.toString())), { message: 'b is connected to a directly only' })
  })

  it('a stranger gets no reservation and no relayed connection to a member, and learns nothing', { timeout: 120_000 }, async () => {
    const relay = await node('relay3', { relay: true })
    const member = await node('member3')
    await joinHive([relay, member])
    await member.libp2p.dial(relay.libp2p.getMultiaddrs())
    await waitFor(() => hasReservation(member, relay), { timeoutMs: 30_000, message: 'the member holds a reservation on the relay' })
    const refusals: MembershipRefusal[] = []
    relay.hive.gate.addEventListener('refused', (e) => { refusals.push((e as CustomEvent<MembershipRefusal>).detail) })
    // a device with nothing of the hive: it speaks circuit relay v2 and asks for everything
    const stranger = await startStranger()
    try {
      const id = stranger.peerId.toString()
      // a relayed connection to the member, through the relay
      await assert.rejects(stranger.dial(multiaddr(circuitAddress(relay, member)), { signal: AbortSignal.timeout(20_000) }))
      // a reservation: it must first get a connection to the relay, which it does not
      // (the relay refuses once the stranger's key is proven; the stranger's side may have
      // finished its half of the handshake by then, so its dial may resolve to a connection
      // that is closed under it, on which no stream opens)
      const reached = await stranger.dial(relay.libp2p.getMultiaddrs(), { signal: AbortSignal.timeout(20_000) }).catch(() => undefined)
      if (reached != null) {
        await assert.rejects(reached.newStream(RELAY_V2_HOP_CODEC, { signal: AbortSignal.timeout(10_000) }))
      }
      await waitFor(() => stranger.getConnections().length === 0, { message: 'the stranger holds no connection' })
      assert.ok(refusals.some(r => r.peer === id && r.layer === 'connection'), 'the relay refused the stranger at the connection')
      // nothing learnt: not that the relay relays, not the member, not a single address
      const known = await stranger.peerStore.get(relay.peerId).catch(() => undefined)
      assert.deepEqual(known?.protocols ?? [], [], 'the stranger learns no protocol of the relay')
      const aboutMember = await stranger.peerStore.get(member.peerId).catch(() => undefined)
      assert.deepEqual(aboutMember?.protocols ?? [], [], 'the stranger learns nothing of the member')
      assert.equal(stranger.getConnections().length, 0)
      assert.equal(member.libp2p.getConnections().some(c => c.remotePeer.toString() === id), false)

      // while the relay holds an invite open, a stranger's connection is admitted to pair, and
      // nothing else: a reservation asked on it is refused by the gate's stream check
      const invite = relay.hive.pairing.createInvite()
      try {
        const connection = await stranger.dial(relay.libp2p.getMultiaddrs(), { signal: AbortSignal.timeout(20_000) })
        await assert.rejects(async () => {
          const stream = await connection.newStream(RELAY_V2_HOP_CODEC, { runOnLimitedConnection: true, signal: AbortSignal.timeout(10_000) })
          // a refused stream is reset; reading from it fails or ends at once
          stream.send(new Uint8Array([2, 8, 0]))
          for await (const chunk of stream) assert.fail(`the relay answered a stranger's reservation with ${chunk.byteLength} bytes`)
          throw new Error('the stream ended without an answer')
        })
        assert.ok(refusals.some(r => r.peer === id && r.layer === 'stream' && r.protocol === RELAY_V2_HOP_CODEC), 'the gate refused the hop protocol to a pairing connection')
        assert.equal(relay.libp2p.services.relay == null ? 0 : (relay.libp2p.services.relay as { reservations: Map<unknown, unknown> }).reservations.size, 1, 'the relay holds the member\'s reservation only')
      } finally {
        relay.hive.pairing.cancelInvite(invite.id)
      }
    } finally {
      await stranger.stop()
    }
  })

  it('the relay\'s gate refuses reservations and relayed connections that do not join two members', async () => {
    const relay = await node('relay4', { relay: true })
    const member = await node('member4')
    const stranger = await node('stranger4')
    await joinHive([relay, member])
    const gater = relay.hive.gate.connectionGater
    assert.equal(await gater.denyInboundRelayReservation?.(stranger.peerId), true)
    assert.equal(await gater.denyInboundRelayReservation?.(member.peerId), false)
    assert.equal(await gater.denyOutboundRelayedConnection?.(stranger.peerId, member.peerId), true)
    assert.equal(await gater.denyOutboundRelayedConnection?.(member.peerId, stranger.peerId), true)
    assert.equal(await gater.denyOutboundRelayedConnection?.(member.peerId, relay.peerId), false)
    const memberGater = member.hive.gate.connectionGater
    assert.equal(await memberGater.denyInboundRelayedConnection?.(stranger.peerId, relay.peerId), true, 'only through a member relay')
    assert.equal(await memberGater.denyInboundRelayedConnection?.(relay.peerId, stranger.peerId), true, 'only from a member')
    assert.equal(await memberGater.denyInboundRelayedConnection?.(relay.peerId, relay.peerId), false)
  })

  it('doctor says why a member cannot be reached and what to do, and that the hive has no relay', { timeout: 120_000 }, async () => {
    const a = await node('a5')
    const b = await node('b5')
    await joinHive([a, b])
    await waitFor(() => a.reach.link(b.peerId.toString())?.via === 'lan', { message: 'a reaches b on its network' })
    const linked = await a.reach.report()
    assert.equal(linked.members.find(m => m.peerId === b.peerId.toString())?.problem, undefined, 'nothing wrong while b is reached')
    assert.match(linked.problem ?? '', /no reservation on a relay, and no member it is connected to relays/)
    assert.match(linked.advice ?? '', /hive-node start --relay/)
    // b's last capability report is still fresh on a once b stops: b is a neighbour, not reached
    await waitFor(() => a.capabilities.isLive(b.peerId.toString()), { message: 'a holds b\'s capability report' })
    await b.stop()
    await waitFor(() => a.reach.link(b.peerId.toString()) == null, { message: 'a no longer reaches b' })
    const report = await a.reach.report()
    const about = report.members.find(m => m.peerId === b.peerId.toString())
    assert.equal(about?.via, undefined)
    assert.ok((about?.direct.length ?? 0) > 0, 'a remembers where b was')
    assert.match(about?.problem ?? '', /none of its \d+ known address(es)? answers, and it holds no reservation on a relay/)
    assert.match(about?.advice ?? '', /the hive has no relay: start a member .* with "hive-node start --relay"/)
  })
})

describe('addresses kept per member', () => {
  it('are at most 8, at most 3 of them through a relay, newest first, each at most 256 characters', () => {
    const direct = Array.from({ length: 10 }, (_, i) => `/ip4/10.0.0.${i}/tcp/4190`)
    const relayed = Array.from({ length: 5 }, (_, i) => `/ip4/10.9.9.${i}/tcp/4190/p2p/12D3KooWRelay${i}/p2p-circuit`)
    const kept = boundAddresses([...relayed, ...direct, 'x'.repeat(257), '', direct[0]!])
    assert.equal(kept.length, 8)
    assert.deepEqual(kept.filter(isRelayedAddress), relayed.slice(0, MAX_RELAYED_ADDRS))
    assert.deepEqual(kept.filter(a => !isRelayedAddress(a)), direct.slice(0, 8 - MAX_RELAYED_ADDRS))
    assert.deepEqual(boundAddresses(direct.slice(0, 3)), direct.slice(0, 3), 'the order given is kept')
  })
})
