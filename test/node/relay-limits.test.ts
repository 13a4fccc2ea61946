// What a relay spends and what a device asks of relays, on loopback: reservations past the
// relay's limit are refused, a relay runs with RELAY_LIMITS, relayed connections between members
// carry no time or data limit, and a device holds reservations on at most MAX_RELAYS relays.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, describe, it } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import { RELAY_LIMITS, runtimeListener } from '../../node/libp2p.ts'
import { MAX_RELAYS } from '../../node/reach.ts'
import { joinHive } from '../helpers/hive.ts'
import { dropKeepAlive, makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'

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

interface RelayService {
  hopTimeout: number
  maxInboundHopStreams?: number
  maxOutboundStopStreams: number
  reservations: Map<unknown, unknown>
  reservationStore: { maxReservations: number, reservationTtl: number, applyDefaultLimit: boolean }
}

const relayService = (n: HiveNode): RelayService => n.libp2p.services.relay as RelayService
const reserved = (relay: HiveNode): string[] => [...relayService(relay).reservations.keys()].map(String)
/** A node's direct listen address, without its PeerId. */
const directAddress = (n: HiveNode): string => multiaddr(n.libp2p.getMultiaddrs().find(ma => !ma.toString().includes('/p2p-circuit'))!.getComponents().filter(c => c.name !== 'p2p')).toString()

describe('a relay\'s limits', () => {
  it('a relay runs with RELAY_LIMITS: reservations, their lifetime, hop exchanges and their time, relayed connections being opened, no default limit on a connection', async () => {
    const relay = await node('relay-defaults', { relay: true })
    const service = relayService(relay)
    assert.equal(service.reservationStore.maxReservations, RELAY_LIMITS.maxReservations)
    assert.equal(service.reservationStore.reservationTtl, RELAY_LIMITS.reservationTtlMs)
    assert.equal(service.reservationStore.applyDefaultLimit, false)
    assert.equal(service.hopTimeout, RELAY_LIMITS.hopTimeoutMs)
    assert.equal(service.maxInboundHopStreams, RELAY_LIMITS.maxInboundHopStreams)
    assert.equal(service.maxOutboundStopStreams, RELAY_LIMITS.maxOutboundStopStreams)
  })

  it('past maxReservations a member\'s reservation is refused; the relay keeps the ones it holds', { timeout: 120_000 }, async () => {
    const relay = await node('relay-full', { relay: true, relayLimits: { maxReservations: 1 } })
    const a = await node('a-full')
    const b = await node('b-full')
    await joinHive([relay, a, b])
    await a.libp2p.dial(relay.libp2p.getMultiaddrs())
    await waitFor(() => a.reach.reservedOn().includes(relay.peerId.toString()), { timeoutMs: 30_000, message: 'a holds the relay\'s one reservation' })
    await b.libp2p.dial(relay.libp2p.getMultiaddrs())
    // asked directly, as Reach asks: the relay answers RESERVATION_REFUSED
    await assert.rejects(runtimeListener(b.libp2p)([multiaddr(`${directAddress(relay)}/p2p/${relay.peerId.toString()}/p2p-circuit`)]), /RESERVATION_REFUSED/)
    assert.deepEqual(reserved(relay), [a.peerId.toString()], 'the relay holds a\'s reservation only')
    assert.deepEqual(b.reach.reservedOn(), [])
  })

  it('a relayed connection between members carries more than libp2p\'s default data limit, with no limit set on either end', { timeout: 120_000 }, async () => {
    const relay = await node('relay-data', { relay: true })
    const a = await node('a-data', { upgradeToDirect: false })
    const b = await node('b-data', { upgradeToDirect: false })
    await joinHive([relay, a, b])
    await b.libp2p.dial(relay.libp2p.getMultiaddrs())
    await waitFor(() => b.reach.reservedOn().includes(relay.peerId.toString()), { timeoutMs: 30_000, message: 'b holds a reservation on the relay' })
    await dropKeepAlive(a, b)
    // the relayed connection is opened beside the direct one, which then closes: a holds a
    // connection to b all along, so nothing dials b directly meanwhile (a node dials a member it
    // hears of, from the DHT say, whenever it has no connection to it)
    const relayed = await a.libp2p.dial(multiaddr(`${directAddress(relay)}/p2p/${relay.peerId.toString()}/p2p-circuit/p2p/${b.peerId.toString()}`), { force: true })
    assert.ok(relayed.remoteAddr.toString().includes('/p2p-circuit'))
    await Promise.all(a.libp2p.getConnections(b.peerId).filter(c => !c.remoteAddr.toString().includes('/p2p-circuit')).map(async c => { await c.close() }))
    assert.equal(relayed.limits, undefined, 'no limit on a\'s end')
    const onB = await waitFor(() => b.libp2p.getConnections(a.peerId).find(c => c.remoteAddr.toString().includes('/p2p-circuit')), { message: 'b sees the relayed connection' })
    assert.equal(onB.limits, undefined, 'no limit on b\'s end')
    // libp2p's default limit is 128 KiB a connection; 1 MiB crosses this one
    const big = 'x'.repeat(1024 * 1024)
    await (await b.contexts.store.open('big')).set('value', big)
    await waitFor(() => a.contexts.store.get('big')?.get('value') === big, { timeoutMs: 60_000, message: '1 MiB written on b reaches a through the relay' })
    assert.equal(relayed.status, 'open', 'the relayed connection is still open')
    assert.ok(a.libp2p.getConnections(b.peerId).every(c => c.remoteAddr.toString().includes('/p2p-circuit')), 'still through the relay only')
  })
})

describe('relays a device uses', () => {
  it(`holds reservations on at most MAX_RELAYS (${MAX_RELAYS}) relays, and takes another when one goes`, { timeout: 180_000 }, async () => {
    const member = await node('m', { upgradeIntervalMs: 1_000 })
    const relays = [await node('r1', { relay: true }), await node('r2', { relay: true }), await node('r3', { relay: true })]
    // the relays join the member's hive, so each is connected to it, and it identifies each
    await joinHive([member, ...relays])
    const ids = relays.map(r => r.peerId.toString())
    await waitFor(async () => ids.every(id => member.libp2p.getConnections().some(c => c.remotePeer.toString() === id)) && (await member.reach.relays()).length === relays.length, { timeoutMs: 30_000, message: 'the member is connected to all three relays and knows they relay' })
    await waitFor(() => member.reach.reservedOn().length === MAX_RELAYS, { timeoutMs: 30_000, message: `the member holds ${MAX_RELAYS} reservations` })
    const held = member.reach.reservedOn()
    const spare = relays.find(r => !held.includes(r.peerId.toString()))!
    assert.equal(held.length, MAX_RELAYS)
    assert.equal(reserved(spare).includes(member.peerId.toString()), false, 'the third relay holds no reservation for it')
    // one reserved relay goes: the member takes the third instead, so the bound was what held it back
    const gone = relays.find(r => r.peerId.toString() === held[0])!
    await gone.stop()
    await waitFor(() => member.reach.reservedOn().includes(spare.peerId.toString()), { timeoutMs: 60_000, message: 'the member reserves on the third relay once one of its relays is gone' })
    assert.ok(member.reach.reservedOn().length <= MAX_RELAYS)
    assert.ok(reserved(spare).includes(member.peerId.toString()))
  })
})
