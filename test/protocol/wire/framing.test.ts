import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { z } from 'zod'
import { FrameDecoder, decodeMessage, dialFramed, encodeFrame, encodeMessage, encodeVarint, serveProtocol } from '../../../protocol/index.ts'
import { startMesh } from '../../helpers/mesh.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { ServedProtocol } from '../../../protocol/index.ts'
import type { Connection, PeerId } from '@libp2p/interface'

const Echo = z.object({ type: z.literal('echo'), text: z.string().max(1000) })
const PROTOCOL = '/hive/test-echo/1.0.0'
const MAX = 4096

describe('frame codec', () => {
  it('round-trips messages split at every byte boundary', () => {
    const frames = [encodeFrame({ type: 'echo', text: 'a' }), encodeFrame({ type: 'echo', text: 'b'.repeat(300) })]
    const bytes = Uint8Array.from([...frames[0]!, ...frames[1]!])
    for (let split = 0; split <= bytes.length; split++) {
      const decoder = new FrameDecoder()
      decoder.push(bytes.subarray(0, split))
      const out: unknown[] = []
      for (let f = decoder.next(); f != null; f = decoder.next()) out.push(decodeMessage(f, Echo))
      decoder.push(bytes.subarray(split))
      for (let f = decoder.next(); f != null; f = decoder.next()) out.push(decodeMessage(f, Echo))
      assert.deepEqual(out, [{ type: 'echo', text: 'a' }, { type: 'echo', text: 'b'.repeat(300) }])
      assert.equal(decoder.pending, 0)
    }
  })

  it('refuses an oversized frame from its length prefix alone', () => {
    const decoder = new FrameDecoder(MAX)
    decoder.push(encodeVarint(MAX + 1))
    assert.throws(() => decoder.next(), { name: 'MessageTooLarge' })
    const endless = new FrameDecoder(MAX)
    endless.push(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))
    assert.throws(() => endless.next(), { name: 'MessageTooLarge' })
    assert.throws(() => encodeFrame({ text: 'x'.repeat(MAX) }, MAX), { name: 'MessageTooLarge' })
  })

  it('refuses garbage and messages that fail the schema', () => {
    assert.throws(() => decodeMessage(Uint8Array.from([0xff, 0x00, 0x13]), Echo), { name: 'MalformedMessage' })
    assert.throws(() => decodeMessage(encodeMessage({ type: 'echo', text: 7 }), Echo), { name: 'MalformedMessage', message: /text/ })
    assert.throws(() => decodeMessage(encodeMessage({ type: 'other' }), Echo), { name: 'MalformedMessage' })
  })
})

describe('protocol handler wrapper over real nodes', () => {
  let mesh: Mesh
  let server: HiveNode
  let good: HiveNode
  let bad: HiveNode
  let served: ServedProtocol
  const faults: Array<{ peer: string, name: string }> = []

  before(async () => {
    mesh = await startMesh(3, { label: 'wire' })
    ;[server, good, bad] = mesh.nodes as [HiveNode, HiveNode, HiveNode]
    served = await serveProtocol(server.libp2p, PROTOCOL, async (stream) => {
      for await (const message of stream.messages(Echo)) {
        await stream.write({ type: 'echo', text: message.text.toUpperCase() })
      }
    }, {
      log: server.log,
      maxMessageBytes: MAX,
      onPeerFault: (peer: PeerId, err: Error) => { faults.push({ peer: peer.toString(), name: err.name }) }
    })
  })
  after(async () => {
    await served.stop()
    await mesh.stop()
  })

  async function echo (from: HiveNode, text: string): Promise<string> {
    const stream = await dialFramed(from.libp2p, server.peerId, PROTOCOL, { maxMessageBytes: MAX })
    await stream.write({ type: 'echo', text })
    const reply = await stream.read(Echo, { signal: AbortSignal.timeout(10_000) })
    await stream.close()
    return reply.text
  }

  async function sendRaw (bytes: Uint8Array, options: { close: boolean }): Promise<void> {
    if (bad.libp2p.getConnections(server.peerId).length === 0) await bad.libp2p.dial(server.libp2p.getMultiaddrs())
    const stream = await bad.libp2p.dialProtocol(server.peerId, PROTOCOL)
    stream.send(bytes)
    if (options.close) await stream.close().catch(() => {})
  }

  const cases: Array<[string, Uint8Array, boolean, string]> = [
    ['garbage', Uint8Array.from([0x05, 0xff, 0xfe, 0xfd, 0xfc, 0xfb]), false, 'MalformedMessage'],
    ['oversized', Uint8Array.from([...encodeVarint(MAX * 100), 1, 2, 3]), false, 'MessageTooLarge'],
    ['truncated', Uint8Array.from([...encodeVarint(100), 1, 2, 3, 4, 5]), true, 'TruncatedFrame']
  ]

  for (const [label, bytes, close, code] of cases) {
    it(`drops a peer that sends a ${label} frame and keeps serving others`, async () => {
      assert.equal(await echo(good, 'before'), 'BEFORE')
      const before = faults.length
      // the hang-up is an event: the bad peer, a hive member, may dial back at once after it
      const hungUp = eventPromise<CustomEvent<Connection>>(server.libp2p, 'connection:close', {
        filter: e => e.detail.remotePeer.equals(bad.peerId),
        message: 'bad peer hung up on'
      })
      await sendRaw(bytes, { close })
      await waitFor(() => faults.length > before, { message: `${label} frame noticed` })
      assert.deepEqual(faults.at(-1), { peer: bad.peerId.toString(), name: code })
      await hungUp
      assert.equal(server.running, true)
      assert.equal(await echo(good, `after ${label}`), `AFTER ${label.toUpperCase()}`)
    })
  }
})
