// Fuzzing every hive protocol from a raw libp2p client that holds a member's key: random bytes,
// random CBOR, and valid frames mutated (bytes flipped, cut short, fields given random values,
// length prefixes that lie), for a bounded number of rounds per protocol. Afterwards the node
// still answers another member correctly on that protocol, and what it holds after a garbage
// collection has not grown beyond a bound. Replay a failure with HIVE_FUZZ_SEED=<seed>.

import assert from 'node:assert/strict'
import { randomInt } from 'node:crypto'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import {
  AGENT_FETCH_PROTOCOL, CONTEXT_PROTOCOL, CONTROL_PROTOCOL, FramedStream, LEDGER_PROTOCOL, LLM_PROTOCOL, MEMBERSHIP_PROTOCOL, PAIRING_PROTOCOL, PLACEMENT_PROTOCOL, PLACEMENT_SESSION_PROTOCOL, REGISTRY_PROTOCOL, encodeVarint
} from '../../protocol/wire/index.ts'
import { startNode } from '../helpers/mesh.ts'
import { startRawClient } from '../helpers/raw-client.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { RawClient } from '../helpers/raw-client.ts'
import type { Stream } from '@libp2p/interface'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const ROUNDS = 120
/** Heap still reachable after all the fuzzing, over what it was before: generous, yet far below a leak per round. */
const HEAP_BOUND_BYTES = 24 * 1024 * 1024
const SEED = Number(process.env.HIVE_FUZZ_SEED ?? randomInt(2 ** 31))
process.stdout.write(`# fuzz seed ${SEED} (replay with HIVE_FUZZ_SEED=${SEED})\n`)

/** mulberry32: small, seeded, reproducible. */
function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

class Fuzzer {
  readonly next: () => number
  constructor (seed: number) { this.next = prng(seed) }
  int (n: number): number { return Math.floor(this.next() * n) }
  pick<T> (list: readonly T[]): T { return list[this.int(list.length)] as T }
  bytes (n: number): Uint8Array { return Uint8Array.from({ length: n }, () => this.int(256)) }
  value (depth = 0): unknown {
    const kinds = depth > 3 ? 6 : 8
    switch (this.int(kinds)) {
      case 0: return this.int(2 ** 31) - 2 ** 30
      case 1: return this.next() * 1e12
      case 2: return 'x'.repeat(this.int(300))
      case 3: return this.bytes(this.int(64))
      case 4: return this.pick([null, true, false, -1, 0, Number.MAX_SAFE_INTEGER])
      case 5: return this.pick(['have', 'hello', 'proof', 'heads', 'records', 'chat', 'embed', 'bid', 'claim', 'entries', ''])
      case 6: return Array.from({ length: this.int(5) }, () => this.value(depth + 1))
      default: return Object.fromEntries(Array.from({ length: this.int(5) }, () => [this.pick(['t', 'type', 'v', 'c', 'm', 'hive', 'ids', 'digest', 'task', 'entries', 'more', 'offset', 'x']), this.value(depth + 1)]))
    }
  }

  /** One round's bytes for a protocol whose valid messages are `valid`. */
  payload (valid: readonly unknown[]): Uint8Array {
    const frame = (body: Uint8Array): Uint8Array => Uint8Array.from([...encodeVarint(body.byteLength), ...body])
    const base = cborEncode(this.pick(valid))
    switch (this.int(7)) {
      case 0: return this.bytes(1 + this.int(200))
      case 1: return frame(cborEncode(this.value()))
      case 2: {
        const body = Uint8Array.from(base)
        for (let i = 0; i < 1 + this.int(4); i++) body[this.int(body.length)] = this.int(256)
        return frame(body)
      }
      case 3: return frame(base).subarray(0, 1 + this.int(base.length))
      case 4: {
        const message = { ...(this.pick(valid) as Record<string, unknown>) }
        const keys = Object.keys(message)
        if (keys.length > 0) message[this.pick(keys)] = this.value()
        return frame(cborEncode(message))
      }
      case 5: return Uint8Array.from([...encodeVarint(base.length + 1 + this.int(1 << 20)), ...base])
      default: return Uint8Array.from([...frame(base), ...frame(cborEncode(this.value()))])
    }
  }
}

function heapAfterGc (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** A stream on an open connection, dialling a new one when the node has hung up on the last. */
async function openStream (client: RawClient, node: HiveNode, protocol: string): Promise<Stream> {
  const open = client.getConnections().find(c => c.status === 'open')
  if (open != null) {
    try {
      return await open.newStream(protocol, { signal: AbortSignal.timeout(10_000) })
    } catch {
      // hung up on: the connection may not know yet
      open.abort(new Error('hung up on'))
    }
  }
  const connection = await client.dial(node.libp2p.getMultiaddrs(), { force: true, signal: AbortSignal.timeout(10_000) })
  return connection.newStream(protocol, { signal: AbortSignal.timeout(10_000) })
}

/** Opens a stream, sends the bytes, gives the node a moment to answer, and drops the stream. */
async function round (client: RawClient, node: HiveNode, protocol: string, bytes: Uint8Array): Promise<boolean> {
  const stream = await openStream(client, node, protocol).catch(() => undefined)
  if (stream == null) return false
  const framed = new FramedStream(stream, { maxMessageBytes: 16 * 1024 * 1024 })
  try {
    await framed.writeRaw(bytes, { signal: AbortSignal.timeout(5_000) })
    await stream.close({ signal: AbortSignal.timeout(2_000) })
  } catch {
    // reset, hung up on or timed out: all fine for a fuzzer
  } finally {
    stream.abort(new Error('round over'))
  }
  return true
}

/** A member's well-formed request and a check of the node's first answer. */
interface Probe {
  protocol: string
  valid: (node: HiveNode) => unknown[]
  request: (node: HiveNode) => unknown
  answer: (frame: Record<string, unknown>) => boolean
}

const HEX32 = '0'.repeat(32)
const HEX64 = '0'.repeat(64)

const PROBES: Record<string, Probe> = {
  ledger: {
    protocol: LEDGER_PROTOCOL,
    valid: (node) => [{ type: 'heads' }, { type: 'records', signer: node.peerId.toString(), from: 0 }, { type: 'records', signer: node.peerId.toString(), from: 5, to: 1 }],
    request: () => ({ type: 'heads' }),
    answer: (f) => f.type === 'heads' && Array.isArray(f.heads)
  },
  membership: {
    protocol: MEMBERSHIP_PROTOCOL,
    valid: (node) => [{ t: 'have', hive: node.hive.membership.hiveId, ids: node.hive.membership.entryIds() }, { t: 'have', hive: node.hive.membership.hiveId, ids: [] }],
    request: (node) => ({ t: 'have', hive: node.hive.membership.hiveId, ids: [] }),
    answer: (f) => f.t === 'entries' && Array.isArray(f.entries) && f.entries.length > 0
  },
  pairing: {
    protocol: PAIRING_PROTOCOL,
    valid: (node) => [{ t: 'hello', v: 1, hive: node.hive.membership.hiveId, invite: '0'.repeat(16), nonce: new Uint8Array(32), name: 'fuzz', addrs: [] }, { t: 'proof', mac: new Uint8Array(32) }],
    request: (node) => ({ t: 'hello', v: 1, hive: node.hive.membership.hiveId, invite: '0'.repeat(16), nonce: new Uint8Array(32), name: 'witness', addrs: [] }),
    // a member naming no invite the node holds
    answer: (f) => f.t === 'refused' && f.code === 'InviteUnknown'
  },
  'agent-fetch': {
    protocol: AGENT_FETCH_PROTOCOL,
    valid: () => [{ digest: HEX64 }, { digest: 'f'.repeat(64) }, { digest: HEX64, offset: 262144 }],
    request: () => ({ digest: HEX64 }),
    answer: (f) => f.ok === false && typeof f.reason === 'string'
  },
  placement: {
    protocol: PLACEMENT_PROTOCOL,
    valid: (node) => [
      { t: 'claim', task: HEX32, round: 1 }, { t: 'renew', task: HEX32, round: 2 }, { t: 'abandon', task: HEX32, round: 1, reason: 'fuzz' },
      { t: 'bid', task: HEX32, bidder: node.peerId.toString(), record: new Uint8Array(40) },
      { t: 'cancel', task: HEX32, round: 1, reason: 'fuzz' },
      { t: 'decline', task: HEX32, reason: 'policy rule battery: fuzz' }
    ],
    request: () => ({ t: 'claim', task: HEX32, round: 1 }),
    answer: (f) => f.ok === false && typeof f.reason === 'string'
  },
  'placement-session': {
    protocol: PLACEMENT_SESSION_PROTOCOL,
    valid: (node) => [
      { id: 1, request: { t: 'claim', task: HEX32, round: 1 } },
      { id: 2, request: { t: 'bid', task: HEX32, bidder: node.peerId.toString(), record: new Uint8Array(40) } },
      { id: 3, request: { t: 'result', task: HEX32, round: 1, ok: true, output: 'fuzz', logs: [{ level: 'info', message: 'fuzz' }], durationMs: 1 } },
      { id: 4, request: { t: 'recorded', task: HEX32, round: 1, seq: 3, hash: HEX64 } }
    ],
    // a confirmation of a result the node never answered: refused, under the request's id
    request: () => ({ id: 7, request: { t: 'recorded', task: HEX32, round: 1, seq: 1 } }),
    answer: (f) => f.id === 7 && (f.answer as { ok?: unknown, reason?: unknown } | undefined)?.ok === false && (f.answer as { reason?: unknown }).reason === 'UnknownTask'
  },
  llm: {
    protocol: LLM_PROTOCOL,
    valid: () => [{ t: 'embed', model: 'none', texts: ['a'] }, { t: 'chat', request: { models: ['none'], messages: [{ role: 'user', content: 'hi' }], maxTokens: 4 } }, { t: 'cancel' }],
    request: () => ({ t: 'embed', model: 'no-such-model', texts: ['a'] }),
    answer: (f) => f.t === 'error' && typeof f.code === 'string'
  },
  control: {
    protocol: CONTROL_PROTOCOL,
    valid: (node) => [
      { t: 'entries', hive: node.hive.membership.hiveId, entries: [] },
      { t: 'entries', hive: node.hive.membership.hiveId, entries: [{ b: new Uint8Array(40), s: new Uint8Array(64) }] },
      // policy and budget bodies (unsigned): their fields are mutated as any other
      { t: 'entries', hive: node.hive.membership.hiveId, entries: [{ b: cborEncode({ v: 1, type: 'policy', hive: node.hive.membership.hiveId, by: node.peerId.toString(), at: 1, n: 1, policy: { devices: { '*': { minBattery: 20, quietHours: { from: '22:00', to: '07:00' }, maxTasks: 2, tags: ['gpu'] } } } }), s: new Uint8Array(64) }] },
      { t: 'entries', hive: node.hive.membership.hiveId, entries: [{ b: cborEncode({ v: 1, type: 'budget', hive: node.hive.membership.hiveId, by: node.peerId.toString(), at: 1, n: 1, budgets: { agents: { fuzz: { runs: 3, cpuSeconds: 9 } }, contexts: { notes: { tokens: 100 } } } }), s: new Uint8Array(64) }] }
    ],
    request: (node) => ({ t: 'entries', hive: node.hive.membership.hiveId, entries: [] }),
    answer: (f) => f.t === 'entries' && Array.isArray(f.entries)
  },
  registry: {
    protocol: REGISTRY_PROTOCOL,
    valid: (node) => [
      { t: 'have', hive: node.hive.membership.hiveId, ids: [] },
      { t: 'have', hive: node.hive.membership.hiveId, ids: [HEX64] },
      { t: 'entries', entries: [{ b: new Uint8Array(40), s: new Uint8Array(64) }], more: false },
      { t: 'entries', entries: [], more: true }
    ],
    request: (node) => ({ t: 'have', hive: node.hive.membership.hiveId, ids: [] }),
    // the responder answers with what it holds, then the entries the asker lacks
    answer: (f) => f.t === 'have' && Array.isArray(f.ids)
  },
  context: {
    protocol: CONTEXT_PROTOCOL,
    valid: () => [{ t: 0, c: 'fuzz', m: Uint8Array.from([0, 0]) }, { t: 1, m: Uint8Array.from([0]) }, { t: 2, c: 'fuzz', code: 'X', reason: 'fuzz' }],
    // a sync step 1 with an empty state vector for a context the node holds: it answers with step 2
    request: () => ({ t: 0, c: 'fuzz-witness', m: Uint8Array.from([0, 1, 0]) }),
    answer: (f) => [0, 1, 2].includes(f.t as number)
  }
}

async function ask (client: RawClient, node: HiveNode, probe: Probe): Promise<Record<string, unknown>> {
  const stream = await openStream(client, node, probe.protocol)
  const framed = new FramedStream(stream, { maxMessageBytes: 16 * 1024 * 1024 })
  try {
    await framed.write(probe.request(node), { signal: AbortSignal.timeout(10_000) })
    const frame = await framed.readFrame({ signal: AbortSignal.timeout(15_000) })
    assert.ok(frame != null, `${probe.protocol}: the node answered`)
    return cborDecode(frame, { useMaps: false }) as Record<string, unknown>
  } finally {
    stream.abort(new Error('probe over'))
  }
}

describe(`fuzzing hive protocols (seed ${SEED})`, () => {
  let node: HiveNode
  let fuzzer: RawClient
  let witness: RawClient

  before(async () => {
    node = await startNode('fuzz')
    fuzzer = await startRawClient()
    witness = await startRawClient()
    for (const client of [fuzzer, witness]) await node.hive.membership.add(client.peerId.toString(), { name: 'raw' })
  })
  after(async () => {
    await fuzzer?.stop()
    await witness?.stop()
    await node?.stop()
  })

  let start = 0
  it('serves every protocol to a member before fuzzing', async () => {
    assert.deepEqual(Object.values(PROBES).map(p => p.protocol).filter(p => !node.libp2p.getProtocols().includes(p)), [], 'every hive protocol is served')
    for (const [name, probe] of Object.entries(PROBES)) { const answer = await ask(witness, node, probe); assert.ok(probe.answer(answer), `${name}: a correct answer, not ${JSON.stringify(answer).slice(0, 200)}`) }
    start = heapAfterGc()
  })

  let index = 0
  for (const [name, probe] of Object.entries(PROBES)) {
    const seed = SEED + index++
    it(`${name}: ${ROUNDS} rounds of random and mutated frames, then another member is still answered correctly`, async () => {
      const f = new Fuzzer(seed)
      const valid = probe.valid(node)
      let delivered = 0
      for (let i = 0; i < ROUNDS; i++) if (await round(fuzzer, node, probe.protocol, f.payload(valid))) delivered++
      assert.ok(delivered >= ROUNDS / 2, `${name}: only ${delivered} of ${ROUNDS} rounds reached the node`)
      const answer = await ask(witness, node, probe)
      assert.ok(probe.answer(answer), `${name}: the witness got ${JSON.stringify(answer).slice(0, 200)}`)
    })
  }

  it(`holds at most ${HEAP_BOUND_BYTES / 2 ** 20} MiB more after all the fuzzing`, async () => {
    const end = heapAfterGc()
    process.stdout.write(`# heap after gc: ${(start / 1e6).toFixed(1)} -> ${(end / 1e6).toFixed(1)} MB\n`)
    assert.ok(end - start < HEAP_BOUND_BYTES, `grew ${((end - start) / 1e6).toFixed(1)} MB`)
    assert.equal(node.hive.membership.isMember(fuzzer.peerId.toString()), true, 'fuzzing removes no one')
  })
})
