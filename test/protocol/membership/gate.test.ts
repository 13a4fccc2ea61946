// The gate between real libp2p nodes: a non-member is refused at every layer (each layer
// proven on its own, with the ones in front of it lifted), a pairing connection can speak
// pairing and nothing else, and a removed member is shut out everywhere.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { encode as cborEncode } from 'cborg'
import { DHT_PROTOCOL, FramedStream, createRecord, hiveRecordKey } from '../../../protocol/index.ts'
import { MEMBERSHIP_PROTOCOL, NON_MEMBER_GOSSIP_SCORE, toWire } from '../../../protocol/membership/index.ts'
import { PAIRING_PROTOCOL } from '../../../protocol/pairing/index.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import { ECHO_PROTOCOL, connected, devices, memberIds } from '../../helpers/pairing-fixture.ts'
import type { Message } from '@libp2p/gossipsub'
import type { Connection, PeerId } from '@libp2p/interface'
import type { MembershipChange, Refusal } from '../../../protocol/membership/index.ts'
import type { Device } from '../../helpers/pairing-fixture.ts'

const IDENTIFY = '/ipfs/id/1.0.0'
const PING = '/ipfs/ping/1.0.0'
const MESHSUB = '/meshsub/1.2.0'

function peerOf (d: Device): PeerId {
  return d.libp2p.peerId
}

async function refusal (d: Device, match: (r: Refusal) => boolean): Promise<Refusal> {
  const seen = d.refusals.find(match)
  if (seen != null) return seen
  const event = await eventPromise<CustomEvent<Refusal>>(d.gate, 'refused', { filter: e => match(e.detail), timeoutMs: 15_000 })
  return event.detail
}

/** Opens a stream and sends a frame; resolves to whether any answer came back. */
async function answered (connection: Connection, protocol: string, message: unknown): Promise<boolean> {
  let stream
  try {
    stream = await connection.newStream(protocol, { runOnLimitedConnection: true, signal: AbortSignal.timeout(5_000) })
  } catch {
    return false
  }
  const framed = new FramedStream(stream)
  try {
    await framed.write(message)
    const reply = await framed.readFrame({ signal: AbortSignal.timeout(5_000) })
    return reply != null
  } catch {
    return false
  } finally {
    stream.abort(new Error('done'))
  }
}

/**
 * Dials `to` from `from` and asserts nothing usable comes of it. With noise negotiating the
 * muxer inside its handshake, the dialler may see its side of the connection complete just
 * before the refusing side's close arrives; it must then close without carrying a stream.
 */
async function shutOut (from: Device, to: Device): Promise<void> {
  const connection = await from.libp2p.dial(to.libp2p.getMultiaddrs()).catch(() => undefined)
  if (connection != null) {
    await waitFor(() => connection.status !== 'open', { message: `${from.label}'s connection to ${to.label} closed` })
    await assert.rejects(connection.newStream(ECHO_PROTOCOL))
  }
  assert.equal(to.libp2p.getConnections().some(c => c.remotePeer.equals(peerOf(from)) && c.status === 'open'), false)
}

async function pair (inviter: Device, joiner: Device): Promise<void> {
  await joiner.pairing.join(inviter.pairing.createInvite().uri)
  await waitFor(() => connected(inviter, joiner) && connected(joiner, inviter), { message: `${joiner.label} connected to ${inviter.label}` })
}

describe('membership gate', () => {
  it('refuses the connection of a non-member that knows a member\'s address, both ways', async (t) => {
    // the stranger runs without a gate of its own, as a hostile device would
    const [a, stranger] = await devices(t, ['a', 'stranger'], (label) => label === 'stranger' ? { layers: { gater: false } } : {}) as [Device, Device]
    await shutOut(stranger, a)
    const refused = await refusal(a, r => r.peer === stranger.peerId && r.layer === 'connection')
    assert.equal(refused.reason, 'not a member')
    await assert.rejects(a.libp2p.dial(stranger.libp2p.getMultiaddrs()))
    await refusal(a, r => r.peer === stranger.peerId && r.layer === 'connection' && r.reason.startsWith('dial'))
    assert.equal(a.libp2p.getConnections().length, 0)
  })

  it('lets members through every layer: DHT records and gossip flow over guarded protocols, stream after stream', async (t) => {
    const [a, b] = await devices(t, ['a', 'b']) as [Device, Device]
    await pair(a, b)
    // (identify over the pairing connection, before b was a member, was refused: that is expected)
    const refusedBefore = a.refusals.length
    b.libp2p.services.pubsub.subscribe(a.topic)
    await waitFor(() => b.libp2p.services.pubsub.getSubscribers(a.topic).some(p => p.equals(peerOf(a))), { message: 'b sees a subscribed' })
    const delivered: string[] = []
    a.libp2p.services.pubsub.addEventListener('message', (event) => { delivered.push(new TextDecoder().decode(event.detail.data)) })
    // several rounds, so each guarded protocol carries several inbound and outbound streams
    for (let round = 0; round < 3; round++) {
      const key = hiveRecordKey('test', `b-${round}`)
      const value = await createRecord(key, cborEncode({ round }), b.signer)
      for await (const _ of b.libp2p.services.dht.put(key, value, { signal: AbortSignal.timeout(10_000) })) { /* drain */ }
      let found = false
      for await (const event of a.libp2p.services.dht.get(key, { signal: AbortSignal.timeout(10_000) })) {
        if (event.name === 'VALUE') found = true
      }
      assert.equal(found, true, `round ${round}: a reads b's record`)
      await b.libp2p.services.pubsub.publish(a.topic, new TextEncoder().encode(`round ${round}`))
      await waitFor(() => delivered.includes(`round ${round}`), { message: `round ${round}: gossip delivered` })
      await a.libp2p.services.ping.ping(peerOf(b))
    }
    assert.deepEqual(a.refusals.slice(refusedBefore).filter(r => r.peer === b.peerId), [])
  })

  it('with the connection gate lifted, every protocol stream of a non-member is still refused', async (t) => {
    const [a, stranger] = await devices(t, ['a', 'stranger'], { layers: { gater: false } }) as [Device, Device]
    const connection = await stranger.libp2p.dial(a.libp2p.getMultiaddrs())
    // libp2p's own protocols: refused by the gate's stream middleware
    for (const protocol of [IDENTIFY, PING, DHT_PROTOCOL, MESHSUB]) {
      assert.equal(await answered(connection, protocol, { hello: 1 }), false, `${protocol} answered a non-member`)
      await refusal(a, r => r.peer === stranger.peerId && r.layer === 'stream' && r.protocol === protocol)
    }
    // the hive's own protocols: refused by the gate in their handlers
    assert.equal(await answered(connection, ECHO_PROTOCOL, { hello: 1 }), false, 'echo answered a non-member')
    assert.equal(await answered(connection, MEMBERSHIP_PROTOCOL, { t: 'have', hive: a.membership.hiveId, ids: [] }), false, 'membership answered a non-member')
    // and outbound: the member's own services may not open streams to it
    const back = a.libp2p.getConnections().find(c => c.remotePeer.equals(peerOf(stranger)))
    assert.ok(back != null)
    await assert.rejects(back.newStream(DHT_PROTOCOL), { name: 'PeerNotAllowed' })
    assert.equal(a.libp2p.services.pubsub.getPeers().some(p => p.equals(peerOf(stranger))), false)
  })

  it('with the connection and stream gates lifted, a non-member\'s DHT put and gossip are refused while a member\'s are accepted', async (t) => {
    const lifted = { layers: { gater: false, streams: false, gossip: 'validator' as const } }
    const [a, b, stranger] = await devices(t, ['a', 'b', 'stranger'], lifted) as [Device, Device, Device]
    // b becomes a member without pairing, so a holds no open invite that would admit the stranger
    await a.membership.add(b.peerId, { name: 'b' })
    await b.membership.adopt(a.membership.hiveId, a.membership.entries().map(toWire))
    await b.libp2p.dial(a.libp2p.getMultiaddrs())
    await stranger.libp2p.dial(a.libp2p.getMultiaddrs())
    stranger.libp2p.services.pubsub.subscribe(a.topic)
    b.libp2p.services.pubsub.subscribe(a.topic)
    await waitFor(() => stranger.libp2p.services.pubsub.getSubscribers(a.topic).some(p => p.equals(peerOf(a))), { message: 'stranger sees a subscribed' })
    await waitFor(() => b.libp2p.services.pubsub.getSubscribers(a.topic).some(p => p.equals(peerOf(a))), { message: 'b sees a subscribed' })

    const delivered: string[] = []
    a.libp2p.services.pubsub.addEventListener('message', (event) => { delivered.push(new TextDecoder().decode(event.detail.data)) })

    // gossip: the stranger's message reaches a and is rejected by the topic validator
    await stranger.libp2p.services.pubsub.publish(a.topic, new TextEncoder().encode('from the stranger'))
    const gossip = await refusal(a, r => r.layer === 'gossip' && r.peer === stranger.peerId)
    assert.match(gossip.reason, /non-member/)
    // a member's message on the same topic is delivered, so the check is not refusing everyone
    await b.libp2p.services.pubsub.publish(a.topic, new TextEncoder().encode('from b'))
    await waitFor(() => delivered.includes('from b'), { message: 'b\'s gossip delivered to a' })
    assert.deepEqual(delivered, ['from b'])

    // DHT: the stranger's put reaches a, whose validator refuses the record
    const key = hiveRecordKey('test', 'stranger-record')
    const value = await createRecord(key, cborEncode({ note: 'hello' }), stranger.signer)
    for await (const _ of stranger.libp2p.services.dht.put(key, value, { signal: AbortSignal.timeout(10_000) })) { /* drain */ }
    await refusal(a, r => r.layer === 'record' && r.peer === stranger.peerId)
    await assert.rejects(a.records.open(key, value), { name: 'PeerNotAllowed' })
    // a member's record is accepted and read back
    const memberKey = hiveRecordKey('test', 'b-record')
    const memberValue = await createRecord(memberKey, cborEncode({ note: 'from b' }), b.signer)
    for await (const _ of b.libp2p.services.dht.put(memberKey, memberValue, { signal: AbortSignal.timeout(10_000) })) { /* drain */ }
    let found = false
    for await (const event of a.libp2p.services.dht.get(memberKey, { signal: AbortSignal.timeout(10_000) })) {
      if (event.name === 'VALUE') found = true
    }
    assert.equal(found, true, 'a member\'s record is stored and read')

    // the graylisting score a fully gated node uses for non-members
    assert.ok(a.gate.gossipScoreParams().appSpecificScore(stranger.peerId) === NON_MEMBER_GOSSIP_SCORE)
    assert.ok(a.gate.gossipScoreParams().appSpecificScore(b.peerId) === 0)
  })

  it('a pairing connection may speak the pairing protocol and nothing else (but ping)', async (t) => {
    const [a, joiner] = await devices(t, ['a', 'joiner']) as [Device, Device]
    a.pairing.createInvite()
    const release = joiner.gate.expectPairing(a.peerId)
    t.after(release)
    const connection = await joiner.libp2p.dial(a.libp2p.getMultiaddrs())
    assert.ok(connection.limits != null, 'the joiner\'s side is marked limited')
    await waitFor(() => a.libp2p.getConnections().find(c => c.remotePeer.equals(peerOf(joiner)))?.limits != null, { message: 'inviter side limited' })
    for (const protocol of [IDENTIFY, DHT_PROTOCOL, MESHSUB, ECHO_PROTOCOL, MEMBERSHIP_PROTOCOL]) {
      assert.equal(await answered(connection, protocol, { hello: 1 }), false, `${protocol} answered on a pairing connection`)
    }
    // ping (echoed random bytes) is allowed: libp2p's connection monitor needs it
    const ping = await connection.newStream(PING, { runOnLimitedConnection: true, signal: AbortSignal.timeout(5_000) })
    const payload = crypto.getRandomValues(new Uint8Array(32))
    ping.send(payload)
    let echoed = new Uint8Array(0)
    for await (const chunk of ping) {
      echoed = Uint8Array.from([...echoed, ...chunk.subarray()])
      if (echoed.byteLength >= 32) break
    }
    assert.deepEqual(echoed, payload)
    // the pairing protocol answers (here: no such invite)
    assert.equal(await answered(connection, PAIRING_PROTOCOL, { t: 'hello', v: 1, hive: a.membership.hiveId, invite: '0'.repeat(16), nonce: new Uint8Array(32), name: 'joiner', addrs: [] }), true)
    assert.equal(a.libp2p.services.pubsub.getPeers().some(p => p.equals(peerOf(joiner))), false, 'gossipsub never learned of the joiner')
    assert.equal(a.membership.isMember(joiner.peerId), false)
  })

  it('a removed member is refused everywhere within one exchange and cannot come back with its old credentials', async (t) => {
    // c, once removed, ignores its own gate as a hostile device would
    const [a, b, c] = await devices(t, ['a', 'b', 'c'], (label) => label === 'c' ? { layers: { gater: false } } : {}) as [Device, Device, Device]
    await pair(a, b)
    const inviteFromB = b.pairing.createInvite().uri
    await c.pairing.join(inviteFromB)
    await waitFor(() => connected(a, c) && connected(b, c), { message: 'c connected to a and b' })
    const oldAddOfC = c.membership.entries().find(e => e.body.type === 'add' && e.body.peer === c.peerId)
    assert.ok(oldAddOfC != null)

    const heard = eventPromise<CustomEvent<MembershipChange>>(b.membership, 'change', { filter: e => e.detail.left.includes(c.peerId) })
    await a.membership.remove(c.peerId)
    await heard
    assert.deepEqual(memberIds(a), [a.peerId, b.peerId].sort())
    assert.deepEqual(memberIds(b), [a.peerId, b.peerId].sort())
    // (c's own view does not matter: it may keep dialling, and is refused each time)
    await waitFor(() => !connected(a, c) && !connected(b, c), { message: 'a and b dropped their connections to c' })

    // old credentials: its used invite (heard as such while b holds another live invite, which
    // lets strangers connect to pair), and its old signed entry
    b.pairing.createInvite()
    await assert.rejects(c.pairing.join(inviteFromB, { force: true }), { name: 'InviteUsed' })
    assert.deepEqual(await b.membership.merge([toWire(oldAddOfC)]), [])
    assert.equal(b.membership.isMember(c.peerId), false)
    // while b still holds an invite, c, like any non-member, gets at most a pairing connection
    const pairingOnly = b.libp2p.getConnections().filter(conn => conn.remotePeer.equals(peerOf(c)) && conn.status === 'open')
    assert.ok(pairingOnly.every(conn => conn.limits != null), 'a connection from c to b is limited to pairing')

    // with no invite held, its connections are refused by both
    for (const member of [a, b]) for (const invite of member.pairing.invites()) member.pairing.cancelInvite(invite.id)
    for (const member of [a, b]) {
      await shutOut(c, member)
      await refusal(member, r => r.peer === c.peerId && r.layer === 'connection')
    }
    // records and gossip from c: refused by both
    const key = hiveRecordKey('test', 'c-record')
    const value = await createRecord(key, cborEncode({ note: 'from c' }), c.signer)
    for (const member of [a, b]) {
      await assert.rejects(member.records.open(key, value), { name: 'PeerNotAllowed' })
      const fromC = { type: 'signed', from: peerOf(c), topic: member.topic } as unknown as Message
      assert.equal(member.gate.gossipValidator(peerOf(a.label === member.label ? b : a), fromC), 'reject')
      assert.equal(member.gate.allows(c.peerId, ECHO_PROTOCOL), false)
    }

    // a new invite brings it back, and everyone agrees
    await c.pairing.join(a.pairing.createInvite().uri, { force: true })
    await waitFor(() => b.membership.isMember(c.peerId), { message: 'b learns c is back' })
    const all = [a.peerId, b.peerId, c.peerId].sort()
    await waitFor(() => [a, b, c].every(d => memberIds(d).join() === all.join()), { message: 'all three list all three again' })
  })
})
