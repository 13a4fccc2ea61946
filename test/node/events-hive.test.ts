// The event stream following the hive on real nodes: a device that joins (membership, its
// connection, its capabilities), a context written here and on the other device, a device
// removed and then gone (membership, disconnection, its capabilities expiring), and the
// heartbeat comment, whose interval a test may shorten.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { API_LIMITS } from '../../node/api/server.ts'
import { joinHive } from '../helpers/hive.ts'
import { connect, makeTempDir, startNode } from '../helpers/mesh.ts'
import { apiToken, followEvents } from '../helpers/sse.ts'
import { waitFor } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { EventClient, ReceivedEvent } from '../helpers/sse.ts'

const HEARTBEAT_MS = 200
const CAPABILITIES = { intervalMs: 1_000, expireMs: 4_000, ollamaUrl: null }

describe('the event stream following the hive', () => {
  const dirs: string[] = []
  let a: HiveNode
  let b: HiveNode | undefined
  let onA: EventClient

  before(async () => {
    dirs.push(await makeTempDir())
    a = await startNode('events-a', { capabilities: CAPABILITIES, apiLimits: { eventHeartbeatMs: HEARTBEAT_MS } }, dirs[0])
    onA = await followEvents(a)
  })

  after(async () => {
    onA.close()
    await b?.stop()
    await a.stop()
    for (const dir of dirs) await rm(dir, { recursive: true, force: true })
  })

  const of = (type: string, peer: string): (e: ReceivedEvent) => boolean => e => e.type === type && e.data.peer === peer

  it('a device that joins: membership.changed, peer.connected and capabilities.changed, with its name', async () => {
    dirs.push(await makeTempDir())
    b = await startNode('events-b', { capabilities: CAPABILITIES }, dirs[1])
    const id = b.peerId.toString()
    await joinHive([a, b])
    await connect(b, a)
    const joined = await onA.next(e => e.type === 'membership.changed' && (e.data.joined as Array<{ peer: string }>).some(j => j.peer === id), 'membership.changed naming the new member', 30_000)
    assert.equal(joined.data.hiveId, a.hive.membership.hiveId)
    assert.deepEqual(joined.data.left, [])
    // its pairing connection is a stranger's; the one it makes as a member says so, with its name
    const connected = await onA.next(e => of('peer.connected', id)(e) && e.data.member === true, 'peer.connected for the new member', 30_000)
    assert.equal(connected.data.peerName, 'events-b')
    const caps = await onA.next(of('capabilities.changed', id), 'its capability report', 30_000)
    assert.equal(caps.data.peerName, 'events-b')
    assert.equal((caps.data.caps as { name: string }).name, 'events-b')
    assert.ok((caps.data.caps as { cores: number }).cores >= 1)
  })

  it('a context written here and on the other device: context.created, context.changed local and remote', async () => {
    const other = b as HiveNode
    const here = await a.contexts.store.open('events-shared')
    await here.set('from', 'a')
    const created = await onA.next(e => e.type === 'context.created' && e.data.context === 'events-shared', 'context.created')
    assert.deepEqual(created.data, { context: 'events-shared' })
    const local = await onA.next(e => e.type === 'context.changed' && e.data.context === 'events-shared' && e.data.origin === 'local', 'the local change')
    assert.ok((local.data.bytes as number) > 0)
    const there = await other.contexts.store.open('events-shared')
    await there.set('from', 'b')
    const remote = await onA.next(e => e.type === 'context.changed' && e.data.context === 'events-shared' && e.data.origin === 'remote', 'the change replicated from the other device', 30_000)
    assert.ok((remote.data.bytes as number) > 0)
    assert.equal(remote.data.peer, other.peerId.toString())
    assert.equal(remote.data.peerName, 'events-b')
  })

  it('a device removed and gone: membership.changed, peer.disconnected, then capabilities.expired', async () => {
    const other = b as HiveNode
    const id = other.peerId.toString()
    await a.hive.membership.remove(id)
    const left = await onA.next(e => e.type === 'membership.changed' && (e.data.left as Array<{ peer: string }>).some(l => l.peer === id), 'membership.changed naming the removed member', 30_000)
    assert.deepEqual(left.data.joined, [])
    await other.stop()
    b = undefined
    const gone = await onA.next(of('peer.disconnected', id), 'peer.disconnected', 30_000)
    assert.equal(gone.data.peer, id)
    // quiet for expireMs: it leaves the capability view
    await onA.next(of('capabilities.expired', id), 'capabilities.expired', 30_000)
  })

  it(`sends a heartbeat comment every eventHeartbeatMs (${API_LIMITS.eventHeartbeatMs} ms unless a test shortens it)`, async () => {
    assert.equal(API_LIMITS.eventHeartbeatMs, 15_000)
    const controller = new AbortController()
    const response = await fetch(`${a.apiUrl}/events`, { headers: { authorization: `Bearer ${await apiToken(a)}` }, signal: controller.signal })
    assert.equal(response.status, 200)
    let text = ''
    try {
      const decoder = new TextDecoder()
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        text += decoder.decode(chunk, { stream: true })
        if (text.split(': heartbeat\n\n').length > 3) break
      }
    } finally {
      controller.abort()
    }
    assert.ok(text.startsWith('retry: 2000\n\nid: 0\nevent: hello\n'), text.slice(0, 80))
    assert.equal(text.split(': heartbeat\n\n').length - 1 >= 3, true, 'three heartbeats on an otherwise quiet stream')
  })
})
