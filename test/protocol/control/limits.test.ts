// The bounds of the control protocol, against a real node from a raw client holding a member's
// key: at most 256 entries held (the least dropped, never the greatest of a kind, so the halt
// state, the policy and the budgets stay), a body of at most 2,048 bytes for a halt and 8,192
// for a setting with a reason of at most 500 characters, frames of at most 640 KiB, exchanges
// of at most 10 s, and at most 8 exchanges of one peer at once.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { z } from 'zod'
import {
  CONTROL_PROTOCOL, EMPTY_POLICY, MAX_CONTROL_BODY_BYTES, MAX_CONTROL_ENTRIES, MAX_CONTROL_MESSAGE_BYTES, MAX_CONTROL_STREAMS, MAX_REASON_CHARS, MAX_SETTING_BODY_BYTES,
  changePolicy, createControlEntry
} from '../../../protocol/control/index.ts'
import { FramedStream } from '../../../protocol/wire/index.ts'
import { startNode } from '../../helpers/mesh.ts'
import { startRawClient } from '../../helpers/raw-client.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { ControlEntry } from '../../../protocol/control/index.ts'
import type { Signer } from '../../../protocol/wire/signing.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { RawClient } from '../../helpers/raw-client.ts'

describe('control protocol bounds', () => {
  let node: HiveNode
  let client: RawClient
  let signer: Signer

  before(async () => {
    node = await startNode('control-limits')
    const key = await generateKeyPair('Ed25519')
    client = await startRawClient({ privateKey: key })
    signer = { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
    await node.hive.membership.add(signer.peerId, { name: 'raw' })
  })
  after(async () => {
    await client?.stop()
    await node?.stop()
  })

  async function open (): Promise<FramedStream> {
    // a fresh connection: the node hangs up on this client in some of the tests
    const connection = await client.dial(node.libp2p.getMultiaddrs(), { force: true })
    return new FramedStream(await connection.newStream(CONTROL_PROTOCOL, { signal: AbortSignal.timeout(10_000) }), { maxMessageBytes: 2 * MAX_CONTROL_MESSAGE_BYTES })
  }

  /** Sends entries in one exchange; resolves to the entries the node answered with (null: no answer). */
  async function exchange (entries: ControlEntry[]): Promise<unknown[] | null> {
    const framed = await open()
    try {
      await framed.write({ t: 'entries', hive: node.hive.membership.hiveId, entries: entries.map(e => ({ b: e.bytes, s: e.sig })) })
      const answer = await framed.read(z.object({ entries: z.array(z.unknown()) }).loose(), { signal: AbortSignal.timeout(30_000) })
      return answer.entries
    } catch {
      return null
    } finally {
      framed.abort(new Error('done'))
    }
  }

  it(`holds at most ${MAX_CONTROL_ENTRIES} entries, dropping the least, never the state`, async () => {
    const hive = node.hive.membership.hiveId
    const policy = await createControlEntry({ type: 'policy', hive, at: Date.now(), n: 1, policy: changePolicy(EMPTY_POLICY, '*', { maxTasks: 3 }) }, signer)
    assert.notEqual(await exchange([policy]), null)
    await waitFor(() => node.control.policy().id === policy.id, { message: 'the policy is held' })
    // 300 halts and resumes after it, in two exchanges: the last one (n = 301) is a resume
    const made: ControlEntry[] = []
    for (let n = 2; n <= 301; n++) made.push(await createControlEntry({ type: n % 2 === 0 ? 'halt' : 'resume', hive, at: Date.now(), n }, signer))
    assert.notEqual(await exchange(made.slice(0, 150)), null)
    assert.notEqual(await exchange(made.slice(150)), null)
    await waitFor(() => node.control.state().n === 301, { message: 'the node merged every exchange' })
    assert.equal(node.control.entries().length, MAX_CONTROL_ENTRIES, 'the node trimmed to 256')
    assert.equal((await exchange([]))?.length, MAX_CONTROL_ENTRIES, 'and sends at most 256')
    assert.equal(node.control.state().halted, false, 'the greatest entry, a resume, decides')
    assert.equal(node.control.state().n, 301)
    assert.equal(node.control.policy().id, policy.id, 'the policy, the least by counter, is kept: it is the greatest of its kind')
    assert.ok(node.control.entries().every(e => e.body.n === 1 || e.body.n > 301 - MAX_CONTROL_ENTRIES), 'the least halts and resumes went')
  })

  it(`refuses a reason over ${MAX_REASON_CHARS} characters and a body over ${MAX_SETTING_BODY_BYTES} bytes; a halt body stays within ${MAX_CONTROL_BODY_BYTES}`, async () => {
    const hive = node.hive.membership.hiveId
    await assert.rejects(createControlEntry({ type: 'halt', hive, at: 1, n: 1, reason: 'x'.repeat(MAX_REASON_CHARS + 1) }, signer), { name: 'InvalidControlEntry', message: /reason/ })
    // the longest reason in 3-byte characters still fits a halt's body
    const longest = await createControlEntry({ type: 'halt', hive, at: 2 ** 48, n: 2 ** 40, reason: '€'.repeat(MAX_REASON_CHARS) }, signer)
    assert.ok(longest.bytes.byteLength <= MAX_CONTROL_BODY_BYTES, `${longest.bytes.byteLength} bytes`)
    // a body over the bound on the wire: the message is refused and its sender hung up on
    const refused = new Promise<string>((resolve) => { const off = node.control.on('refused', (e) => { off(); resolve(e.error) }) })
    const framed = await open()
    await framed.write({ t: 'entries', hive, entries: [{ b: new Uint8Array(MAX_SETTING_BODY_BYTES + 1), s: new Uint8Array(64) }] })
    assert.match(await refused, /at most 8192 bytes/)
    framed.abort(new Error('done'))
    await waitFor(() => node.libp2p.getConnections(client.peerId).length === 0, { message: 'the sender is hung up on' })
  })

  it(`refuses a frame over ${MAX_CONTROL_MESSAGE_BYTES / 1024} KiB and hangs up`, async () => {
    const hive = node.hive.membership.hiveId
    const refused = new Promise<string>((resolve) => { const off = node.control.on('refused', (e) => { off(); resolve(e.error) }) })
    const framed = await open()
    const entries = Array.from({ length: 100 }, () => ({ b: new Uint8Array(MAX_SETTING_BODY_BYTES), s: new Uint8Array(64) }))
    await framed.write({ t: 'entries', hive, entries }).catch(() => {})
    assert.match(await refused, /MessageTooLarge/)
    framed.abort(new Error('done'))
    await waitFor(() => node.libp2p.getConnections(client.peerId).length === 0, { message: 'the sender is hung up on' })
    assert.equal(node.running, true)
  })

  it(`serves at most ${MAX_CONTROL_STREAMS} exchanges of one peer at once, and ends one that says nothing within its 10 s`, async () => {
    const held: FramedStream[] = []
    for (let i = 0; i < MAX_CONTROL_STREAMS + 4; i++) held.push(await open())
    // every stream is open before any speaks: the node holds each one's exchange meanwhile
    const answered = await Promise.all(held.map(async (framed) => {
      try {
        await framed.write({ t: 'entries', hive: node.hive.membership.hiveId, entries: [] })
        return await framed.readFrame({ signal: AbortSignal.timeout(30_000) }) != null
      } catch {
        return false
      }
    }))
    const served = answered.filter(Boolean).length
    assert.ok(served <= MAX_CONTROL_STREAMS && served > 0, `${served} exchanges served at once`)
    for (const framed of held) framed.abort(new Error('done'))

    // one that opens and says nothing is ended by the node, not left open
    const silent = await open()
    const ended = await silent.readFrame({ signal: AbortSignal.timeout(60_000) }).then(() => 'ended', (err: Error) => err.name === 'TimeoutError' || err.name === 'AbortError' ? 'still open' : 'ended')
    assert.equal(ended, 'ended')
  })
})
