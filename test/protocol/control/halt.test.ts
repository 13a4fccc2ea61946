// The kill switch on real nodes on loopback: a halt on one device stops the agents running on
// every connected device and nothing runs anywhere until a resume; a device cut off during the
// halt learns of it as it reconnects and runs nothing; a halt survives a restart; forged and
// malformed entries are refused and their sender dropped while the node keeps running.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { CONTROL_PROTOCOL, createControlEntry } from '../../../protocol/control/index.ts'
import { dialFramed } from '../../../protocol/wire/serve.ts'
import { ENDLESS_LOOP, watAgent } from '../../sandbox/fixtures.ts'
import { connect, startNode } from '../../helpers/mesh.ts'
import { waitFor } from '../../helpers/wait.ts'
import { echoAgent, startHive } from '../placement/fixture.ts'
import type { ControlEvents } from '../../../protocol/control/index.ts'
import type { PlacementEvents } from '../../../protocol/placement/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { TestHive } from '../placement/fixture.ts'
import type { PeerId } from '@libp2p/interface'

const id = (node: HiveNode): string => node.peerId.toString()

async function next<E extends Record<string, unknown>, K extends keyof E & string> (
  target: { on: (type: K, listener: (detail: E[K]) => void) => () => void }, type: K, filter: (detail: E[K]) => boolean, label: string, timeoutMs = 30_000
): Promise<E[K]> {
  const { promise, resolve, reject } = Promise.withResolvers<E[K]>()
  const off = target.on(type, (detail) => { if (filter(detail)) resolve(detail) })
  const timer = setTimeout(() => { reject(new Error(`${label}: no ${type} within ${timeoutMs} ms`)) }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
    off()
  }
}

const runEvent = async <K extends keyof PlacementEvents & string>(node: HiveNode, type: K, filter: (d: PlacementEvents[K]) => boolean): Promise<PlacementEvents[K]> =>
  next<PlacementEvents, K>(node.placement, type, filter, node.name)
const controlEvent = async <K extends keyof ControlEvents & string>(node: HiveNode, type: K, filter: (d: ControlEvents[K]) => boolean): Promise<ControlEvents[K]> =>
  next<ControlEvents, K>(node.control, type, filter, node.name)

/** The ids of the connections between two nodes now. */
const linkIds = (a: HiveNode, b: HiveNode): Set<string> => new Set([...a.libp2p.getConnections(b.peerId), ...b.libp2p.getConnections(a.peerId)].map(c => c.id))

/**
 * Connects two nodes again once both have let go of the connections in `old` (the dialler may
 * have connected them again meanwhile: then that connection serves).
 */
async function reconnect (a: HiveNode, b: HiveNode, old: Set<string>): Promise<void> {
  await waitFor(() => [...linkIds(a, b)].every(id => !old.has(id)), { message: `${a.name} and ${b.name} let go of the old connection` })
  await connect(a, b)
}

/** Keeps `a` from connecting to `b` either way, until the returned function heals it. */
function partition (a: HiveNode, b: HiveNode): () => void {
  const gater = a.hive.gate.connectionGater
  const saved = { ...gater }
  const cut = (peer: PeerId): boolean => peer.equals(b.peerId)
  gater.denyDialPeer = async (peer) => cut(peer) || await saved.denyDialPeer?.(peer) === true
  gater.denyInboundEncryptedConnection = async (peer, conn) => cut(peer) || await saved.denyInboundEncryptedConnection?.(peer, conn) === true
  return () => { Object.assign(gater, saved) }
}

describe('the kill switch', () => {
  let hive: TestHive
  let nodes: [HiveNode, HiveNode, HiveNode]
  let endless: Uint8Array

  before(async () => {
    hive = await startHive(3)
    nodes = hive.nodes as [HiveNode, HiveNode, HiveNode]
    endless = await watAgent(ENDLESS_LOOP, { name: 'endless', limits: { timeoutMs: 600_000, memoryMiB: 1 } })
  })

  after(async () => { await hive.stop() })

  it('refuses forged and malformed entries: the sender is dropped, the node keeps running and stays as it was', async () => {
    const [a, b] = nodes
    const hiveId = a.hive.membership.hiveId
    const send = async (entries: unknown[]): Promise<void> => {
      const stream = await dialFramed(b.libp2p, peerIdFromString(id(a)), CONTROL_PROTOCOL, { maxMessageBytes: 1 << 20 })
      await stream.write({ t: 'entries', hive: hiveId, entries })
      await stream.read((await import('zod')).z.unknown()).catch(() => {})
      stream.abort(new Error('done'))
    }

    // a halt signed by B with one bit of its signature flipped
    const real = await createControlEntry({ type: 'halt', hive: hiveId, at: Date.now(), n: 1, reason: 'forged' }, b.signer)
    const sig = new Uint8Array(real.sig)
    sig[10] = (sig[10] ?? 0) ^ 1
    const refusedForged = controlEvent(a, 'refused', (e) => e.peer === id(b))
    let old = linkIds(a, b)
    await send([{ b: real.bytes, s: sig }])
    assert.match((await refusedForged).error, /InvalidControlEntry: .*does not verify/)

    // bytes that are not an entry at all
    await reconnect(b, a, old)
    const refusedGarbage = controlEvent(a, 'refused', (e) => e.peer === id(b))
    old = linkIds(a, b)
    await send([{ b: new Uint8Array([1, 2, 3]), s: new Uint8Array(64) }])
    assert.match((await refusedGarbage).error, /InvalidControlEntry: control entry body is not CBOR|invalid/)

    // a well-signed halt by a device that is not a member is not counted
    await reconnect(b, a, old)
    const stranger = await generateKeyPair('Ed25519')
    const strangerId = peerIdFromPrivateKey(stranger).toString()
    const outsider = await createControlEntry({ type: 'halt', hive: hiveId, at: Date.now(), n: 5, reason: 'not a member' }, {
      peerId: strangerId, sign: async (bytes) => stranger.sign(bytes)
    })
    old = linkIds(a, b)
    await send([{ b: outsider.bytes, s: outsider.sig }])
    for (const node of nodes) {
      assert.equal(node.running, true)
      assert.equal(node.control.state().halted, false, `${node.name} is not halted`)
    }
    assert.deepEqual([...linkIds(a, b)].filter(c => old.has(c)).length > 0, true, 'a well-formed entry of a non-member does not cost its sender the connection')
    // the hive still places and runs tasks
    const done = await a.placement.wait((await a.placement.submit({ agent: await echoAgent('after-forgery'), input: 'still here' })).id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(done.status, 'done')
  })

  it('a halt on one device stops the agents running on every connected device, and nothing runs until a resume', async () => {
    const [a, b, c] = nodes
    // endless agents on B and on C, submitted from A and from B
    const startedB = runEvent(b, 'run-start', () => true)
    const startedC = runEvent(c, 'run-start', () => true)
    const onB = await a.placement.submit({ agent: endless, input: 'b', requirements: { peer: id(b) } })
    const onC = await b.placement.submit({ agent: endless, input: 'c', requirements: { peer: id(c) } })
    await Promise.all([startedB, startedC])

    const stoppedB = runEvent(b, 'run-end', (e) => e.task === onB.id)
    const stoppedC = runEvent(c, 'run-end', (e) => e.task === onC.id)
    const state = await a.control.halt('a runaway agent')
    assert.equal(state.halted, true)
    for (const end of await Promise.all([stoppedB, stoppedC])) {
      assert.equal(end.cancelled, true)
      // heard from the halt itself, or first from the submitter that ended its task for it
      assert.match(end.reason ?? '', /the hive is halted: .* \("a runaway agent"\)|the submitter closed the task as cancelled/)
    }
    assert.equal(b.placement.running(), 0)
    assert.equal(c.placement.running(), 0)
    const records = (await c.ledger.list()).filter(l => l.record?.task === onC.id)
    assert.deepEqual(records.map(r => r.record?.status), ['cancelled'])
    assert.equal(a.placement.get(onB.id)?.status, 'cancelled')
    assert.equal(a.placement.get(onB.id)?.error?.code, 'Halted')

    // every device refuses new tasks, naming who halted it and how to resume
    await waitFor(() => nodes.every(n => n.control.state().halted), { message: 'every device holds the halt' })
    for (const node of nodes) {
      await assert.rejects(node.placement.submit({ agent: endless, input: 'x' }), (err: Error) => {
        assert.equal(err.name, 'Halted')
        assert.match(err.message, new RegExp(`${a.name} \\(${id(a)}\\) halted it at .*"a runaway agent".*hive-node resume`))
        return true
      })
    }

    const resumed = Promise.all(nodes.map(async n => controlEvent(n, 'change', (s) => !s.halted)))
    await b.control.resume()
    await resumed
    const done = await c.placement.wait((await c.placement.submit({ agent: await echoAgent('after-resume'), input: 'again' })).id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(done.status, 'done')
    assert.equal(done.result?.output, 'again')
  })

  it('a device cut off during a halt learns of it as it reconnects and runs nothing; the halt survives its restart', async () => {
    const [a, b, c] = nodes
    const heal = [partition(c, a), partition(c, b)]
    await Promise.all([c.libp2p.hangUp(a.peerId), c.libp2p.hangUp(b.peerId)])
    await waitFor(() => c.libp2p.getConnections().length === 0, { message: 'C is cut off' })

    const heardB = controlEvent(b, 'change', (s) => s.halted)
    await a.control.halt('while C was away')
    await heardB
    assert.equal(c.control.state().halted, false, 'C has not heard yet')

    const heardC = controlEvent(c, 'change', (s) => s.halted)
    for (const h of heal.reverse()) h()
    await connect(c, a)
    await heardC
    await assert.rejects(c.placement.submit({ agent: endless, input: 'x' }), { name: 'Halted' })
    assert.equal(c.placement.running(), 0)
    assert.equal(c.placement.list().filter(t => t.status === 'running').length, 0)

    // restarted with nobody to ask, it is still halted
    const dir = hive.mesh.dirs[2] as string
    await hive.kill(c)
    const again = await startNode('hive-2', {}, dir)
    try {
      assert.equal(again.control.state().halted, true)
      await assert.rejects(again.placement.submit({ agent: endless, input: 'x' }), { name: 'Halted' })
      assert.match(again.control.refusal()?.message ?? '', /"while C was away"/)
    } finally {
      await again.stop()
    }
    await a.control.resume()
    assert.equal(a.control.state().halted, false)
  })
})
