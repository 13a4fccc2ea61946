// What one member can make a node hold: at most 32 exchanges at once on a hive protocol, counted
// over all the member's connections (a member that opens more connections gets no more), while
// other members are served; the member is served again once its exchanges end.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { LEDGER_PROTOCOL } from '../../ledger/index.ts'
import { DEFAULT_MAX_INBOUND_STREAMS, FramedStream } from '../../protocol/wire/index.ts'
import { startNode } from '../helpers/mesh.ts'
import { startRawClient } from '../helpers/raw-client.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { RawClient } from '../helpers/raw-client.ts'

const CONNECTIONS = 4

/** Sends a ledger heads request on a stream; resolves whether an answer came back. */
async function answered (framed: FramedStream): Promise<boolean> {
  try {
    await framed.write({ type: 'heads' })
    return await framed.readFrame({ signal: AbortSignal.timeout(15_000) }) != null
  } catch {
    return false
  }
}

async function openMany (client: RawClient, node: HiveNode, perConnection: number): Promise<FramedStream[]> {
  const streams: FramedStream[] = []
  for (let c = 0; c < CONNECTIONS; c++) {
    const connection = await client.dial(node.libp2p.getMultiaddrs(), { force: true })
    for (let i = 0; i < perConnection; i++) {
      const stream = await connection.newStream(LEDGER_PROTOCOL, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined)
      if (stream != null) streams.push(new FramedStream(stream))
    }
  }
  return streams
}

describe('streams one member may hold open', () => {
  let node: HiveNode
  let greedy: RawClient
  let other: RawClient

  before(async () => {
    node = await startNode('bounds')
    greedy = await startRawClient()
    other = await startRawClient()
    for (const client of [greedy, other]) await node.hive.membership.add(client.peerId.toString(), { name: 'raw' })
  })
  after(async () => {
    await greedy?.stop()
    await other?.stop()
    await node?.stop()
  })

  it(`are at most ${DEFAULT_MAX_INBOUND_STREAMS} per protocol over ${CONNECTIONS} connections; others are served meanwhile`, async () => {
    // every stream is open before any asks: the node holds each one's exchange meanwhile
    const held = await openMany(greedy, node, DEFAULT_MAX_INBOUND_STREAMS)
    const results = await Promise.all(held.map(answered))
    const served = results.filter(Boolean).length
    process.stdout.write(`# ${held.length} streams opened over ${CONNECTIONS} connections, ${served} served at once\n`)
    assert.ok(served <= DEFAULT_MAX_INBOUND_STREAMS, `${served} exchanges of one member served at once`)
    assert.ok(served > 0, 'the member is served')

    const [otherStream] = await openMany(other, node, 1)
    assert.ok(otherStream != null && await answered(otherStream), 'another member is served')
    for (const framed of held) framed.abort(new Error('done'))
    const [again] = await openMany(greedy, node, 1)
    assert.ok(again != null && await answered(again), 'the member is served again once its exchanges end')
  })
})
