// Components by digest from any member that holds them: a holder serves an agent in chunks of at
// most AGENT_CHUNK_BYTES, from any offset; a fetcher passes over members that do not hold it, goes
// on from the byte it reached when one fails mid-way, and checks the whole against the digest,
// starting again from another holder when the bytes it got are not the agent.

import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { streamPair } from '@libp2p/utils'
import { z } from 'zod'
import { AGENT_CHUNK_BYTES, AgentFetchHeader, AgentFetchRequest, fetchAgentFromAny, serveAgentFetch } from '../../../protocol/agents/index.ts'
import { FramedStream } from '../../../protocol/wire/index.ts'
import type { ProtocolHost } from '../../../protocol/wire/index.ts'
import type { PeerId, StreamHandler } from '@libp2p/interface'

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')
const AGENT = Uint8Array.from({ length: 3 * AGENT_CHUNK_BYTES + 1000 }, (_, i) => (i * 7) % 251)
const DIGEST = sha256(AGENT)
const SILENT = { debug: () => {}, warn: () => {} }

type Holder = (stream: FramedStream, request: z.infer<typeof AgentFetchRequest>) => Promise<void>

/** A host whose peers answer agent-fetch as `holders` says; records each request. */
async function hostOf (holders: Map<string, Holder>, asked: Array<{ peer: string, offset?: number }>): Promise<ProtocolHost> {
  return {
    handle: async () => {},
    unhandle: async () => {},
    hangUp: async () => {},
    dialProtocol: async (peer) => {
      const holder = holders.get((peer as PeerId).toString())
      if (holder == null) throw new Error('unreachable')
      const [local, remote] = await streamPair()
      void (async () => {
        const framed = new FramedStream(remote, { maxMessageBytes: AGENT_CHUNK_BYTES + 1024 })
        const request = await framed.read(AgentFetchRequest)
        asked.push({ peer: (peer as PeerId).toString(), ...(request.offset != null ? { offset: request.offset } : {}) })
        await holder(framed, request).catch(() => {})
      })()
      return local
    }
  }
}

/** A holder that serves `bytes` honestly from the offset asked, in chunks; stops after `chunks` chunks when given. */
const serving = (bytes: Uint8Array, chunks = Infinity): Holder => async (s, { offset = 0 }) => {
  await s.write({ ok: true, size: bytes.byteLength })
  let sent = 0
  for (let at = offset; at < bytes.byteLength; at += AGENT_CHUNK_BYTES) {
    if (sent++ >= chunks) { s.abort(new Error('gone')); return }
    await s.write({ data: bytes.subarray(at, at + AGENT_CHUNK_BYTES) })
  }
  await s.close()
}
const notHolding: Holder = async (s) => { await s.write({ ok: false, reason: 'NotFound', message: 'not here' }); await s.close() }

async function peers (n: number): Promise<PeerId[]> {
  return Promise.all(Array.from({ length: n }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'))))
}

describe('components by digest from any holder', () => {
  it(`a holder serves chunks of at most ${AGENT_CHUNK_BYTES} bytes, from the offset asked`, async () => {
    let handler: StreamHandler | undefined
    const host: ProtocolHost = { handle: async (_p, h) => { handler = h }, unhandle: async () => {}, hangUp: async () => {}, dialProtocol: async () => { throw new Error('unused') } }
    await serveAgentFetch<string>(host, { get: () => undefined, load: async (d) => d === DIGEST ? AGENT : undefined }, { log: SILENT })
    const [peer] = await peers(1)
    for (const offset of [0, AGENT_CHUNK_BYTES + 5]) {
      const [local, remote] = await streamPair()
      void handler?.(remote, { remotePeer: peer, limits: undefined } as never)
      const framed = new FramedStream(local, { maxMessageBytes: AGENT_CHUNK_BYTES + 1024 })
      await framed.write({ digest: DIGEST, ...(offset > 0 ? { offset } : {}) })
      const header = await framed.read(AgentFetchHeader)
      assert.deepEqual(header, { ok: true, size: AGENT.byteLength })
      const sizes: number[] = []
      let got = 0
      while (offset + got < AGENT.byteLength) {
        const { data } = await framed.read(z.object({ data: z.instanceof(Uint8Array) }))
        assert.deepEqual(data, AGENT.subarray(offset + got, offset + got + data.byteLength))
        sizes.push(data.byteLength)
        got += data.byteLength
      }
      assert.ok(sizes.every(s => s <= AGENT_CHUNK_BYTES), `chunks of ${sizes.join(', ')} bytes`)
      assert.equal(sizes.length, Math.ceil((AGENT.byteLength - offset) / AGENT_CHUNK_BYTES))
    }
  })

  it('passes over a member that does not hold it, and goes on from where a holder that failed mid-way stopped', async () => {
    const [empty, dropper, honest] = await peers(3) as [PeerId, PeerId, PeerId]
    const asked: Array<{ peer: string, offset?: number }> = []
    const host = await hostOf(new Map([[empty.toString(), notHolding], [dropper.toString(), serving(AGENT, 2)], [honest.toString(), serving(AGENT)]]), asked)
    const { bytes, from } = await fetchAgentFromAny(host, [empty, dropper, honest], DIGEST, { maxBytes: 1 << 24 })
    assert.deepEqual(bytes, AGENT)
    assert.deepEqual(from.map(p => p.toString()), [dropper.toString(), honest.toString()])
    assert.deepEqual(asked, [{ peer: empty.toString() }, { peer: dropper.toString() }, { peer: honest.toString(), offset: 2 * AGENT_CHUNK_BYTES }])
  })

  it('checks the whole against the digest: bytes that are not the agent are thrown away and the next holder starts again', async () => {
    const [liar, honest] = await peers(2) as [PeerId, PeerId]
    const other = Uint8Array.from(AGENT, (x, i) => i === 10 ? x ^ 1 : x)
    const asked: Array<{ peer: string, offset?: number }> = []
    const host = await hostOf(new Map([[liar.toString(), serving(other)], [honest.toString(), serving(AGENT)]]), asked)
    const { bytes, from } = await fetchAgentFromAny(host, [liar, honest], DIGEST, { maxBytes: 1 << 24 })
    assert.equal(sha256(bytes), DIGEST)
    assert.deepEqual(from.map(p => p.toString()), [honest.toString()])
    assert.deepEqual(asked.map(a => a.offset ?? 0), [0, 0])

    await assert.rejects(fetchAgentFromAny(host, [liar], DIGEST, { maxBytes: 1 << 24 }), { name: 'AgentDigestMismatch', message: /no member sent agent .* intact/ })
    await assert.rejects(fetchAgentFromAny(host, [], DIGEST, { maxBytes: 1 << 24 }), { name: 'AgentFetch', message: /none is connected/ })
    const [gone] = await peers(1) as [PeerId]
    await assert.rejects(fetchAgentFromAny(host, [gone], DIGEST, { maxBytes: 1 << 24 }), { name: 'AgentFetch', message: /could not reach/ })
    await assert.rejects(fetchAgentFromAny(host, [honest], DIGEST, { maxBytes: 1024 }), { name: 'AgentFetch', message: /more than the 1024 accepted/ })
  })
})
