// The event stream (`GET /events`) on real nodes: a task placed across a 2-node hive shows on
// both ends in order with device names; no token, no stream; a client that stops reading is cut
// off while the node keeps serving the others; the subscribers are bounded; a stop completes
// with subscribers attached.

import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { apiToken, followEvents } from '../helpers/sse.ts'
import { waitFor } from '../helpers/wait.ts'
import { ECHO_BODY, LOGGER, agentWat, watAgent } from '../sandbox/fixtures.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import type { Socket } from 'node:net'
import type { HiveNode } from '../../node/hive-node.ts'
import type { EventClient, ReceivedEvent } from '../helpers/sse.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'

/** Logs its input 400 times, then echoes it. */
const FLOOD = agentWat(`
    (local $i i32)
    (loop $more
      (call $log (i32.const 1) (local.get $ptr) (local.get $len))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $more (i32.lt_u (local.get $i) (i32.const 400))))
    ${ECHO_BODY}`, { imports: '(import "hive:agent/log@0.1.0" "log" (func $log (param i32 i32 i32)))' })

async function submit (node: HiveNode, agent: Uint8Array, input: string, where: { on?: string, local?: boolean }): Promise<string> {
  const response = await fetch(`${node.apiUrl}/task`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await apiToken(node)}`, 'content-type': 'application/json' },
    body: JSON.stringify({ agent: Buffer.from(agent).toString('base64'), input, ...where })
  })
  const body = await response.json() as { task: { id: string } }
  assert.equal(response.status, 202, JSON.stringify(body))
  return body.task.id
}

/** The types of a task's events, in the order they arrived. */
function steps (client: EventClient, task: string): string[] {
  return client.events.filter(e => e.data.task === task).map(e => e.type)
}

function ofTask (task: string, type: string): (e: ReceivedEvent) => boolean {
  return e => e.data.task === task && e.type === type
}

describe('the event stream on a 2-node hive', () => {
  let hive: TestHive

  before(async () => {
    hive = await startHive(2)
  })

  after(async () => {
    await hive.stop()
  })

  it('needs the token: 401 without it or with a wrong one, in the API\'s error shape', async () => {
    const [a] = hive.nodes as [HiveNode]
    for (const headers of [{}, { authorization: 'Bearer nope' }] as Array<Record<string, string>>) {
      const response = await fetch(`${a.apiUrl}/events`, { headers })
      assert.equal(response.status, 401)
      assert.equal((await response.json() as { error: { code: string } }).error.code, 'Unauthorized')
    }
    // the Origin rule holds here too, token or not
    const foreign = await fetch(`${a.apiUrl}/events`, { headers: { authorization: `Bearer ${await apiToken(a)}`, origin: 'http://evil.example' } })
    assert.equal(foreign.status, 403)
  })

  it('a task submitted on one device and run on the other: announced, bid, awarded, running, log, done, in order, with device names', async () => {
    const [a, b] = hive.nodes as [HiveNode, HiveNode]
    const onA = await followEvents(a)
    const onB = await followEvents(b)
    try {
      const agent = await watAgent(LOGGER, { name: 'events-logger', permissions: ['log'] })
      const task = await submit(a, agent, 'hello events', { on: b.peerId.toString() })
      await onA.next(ofTask(task, 'task.done'), 'task.done on the submitter')
      await onB.next(ofTask(task, 'task.done'), 'task.done on the executor')

      // the submitter: every step of the task, in order
      const seen = steps(onA, task)
      const order = ['task.announced', 'task.bid', 'task.awarded', 'task.running', 'task.log', 'task.done']
      const firsts = order.map(t => seen.indexOf(t))
      assert.ok(firsts.every(i => i >= 0), `every step arrives on the submitter: ${seen.join(', ')}`)
      assert.deepEqual([...firsts].sort((x, y) => x - y), firsts, `in order: ${seen.join(', ')}`)
      const find = (client: EventClient, type: string): ReceivedEvent => client.events.find(ofTask(task, type)) as ReceivedEvent
      assert.equal(find(onA, 'task.announced').data.submitterName, a.name)
      assert.equal(onA.events.find(e => e.data.task === task && e.type === 'task.bid' && e.data.bidder === b.peerId.toString())?.data.bidderName, b.name)
      assert.equal(find(onA, 'task.awarded').data.winnerName, b.name)
      assert.equal(find(onA, 'task.running').data.executorName, b.name)
      // the line of a run on another device, streamed by that device
      assert.deepEqual({ ...find(onA, 'task.log').data }, { task, n: 1, level: 'info', message: 'hello events', executor: b.peerId.toString(), executorName: b.name })
      assert.equal(find(onA, 'task.done').data.executorName, b.name)

      // the executor: its run, the line as it was logged, the run's end and the task's
      const there = steps(onB, task)
      const order2 = ['task.running', 'task.log', 'task.run-ended', 'task.done']
      const firsts2 = order2.map(t => there.indexOf(t))
      assert.ok(firsts2.every(i => i >= 0), `every step arrives on the executor: ${there.join(', ')}`)
      assert.deepEqual([...firsts2].sort((x, y) => x - y), firsts2, `in order: ${there.join(', ')}`)
      assert.equal(find(onB, 'task.run-ended').data.outcome, 'accepted')
      // the run left a record on the executor's chain, and both devices hear of it
      await onB.next(e => e.type === 'ledger.appended' && e.data.signer === b.peerId.toString() && e.data.signerName === b.name, 'the executor appends its record')
      // event ids count up on each node
      for (const client of [onA, onB]) {
        const ids = client.events.slice(1).map(e => e.id)
        assert.deepEqual([...ids].sort((x, y) => x - y), ids)
      }
    } finally {
      onA.close()
      onB.close()
    }
  })
})

interface RawClient { socket: Socket, closed: Promise<void> }

/** A client that asks for the stream with the token and then never reads a byte. */
async function nonReader (node: HiveNode): Promise<RawClient> {
  const port = Number(new URL(node.apiUrl as string).port)
  const token = await apiToken(node)
  return await new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => {
      socket.pause()
      socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\n\r\n`)
      resolve({ socket, closed })
    })
    const closed = new Promise<void>(resolve => { socket.once('close', () => { resolve() }) })
    socket.on('error', () => {})
    socket.once('error', reject)
  })
}

describe('the event stream\'s bounds', () => {
  const MAX = 8
  /** Larger than one run's events (400 lines of 1 KB): the reading client, which takes each run whole before the next, is never near it. */
  const QUEUE_BYTES = 1024 * 1024
  let dir: string
  let node: HiveNode
  const clients: EventClient[] = []
  const raws: RawClient[] = []

  before(async () => {
    dir = await makeTempDir()
    node = await startNode('events-bounds', { apiLimits: { maxEventSubscribers: MAX, eventQueueBytes: QUEUE_BYTES } }, dir)
  })

  after(async () => {
    for (const c of clients) c.close()
    for (const r of raws) r.socket.destroy()
    await node.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('a client that never reads is cut off once its unread events pass the bound; the node keeps serving the others', async () => {
    const reader = await followEvents(node)
    clients.push(reader)
    const slow = await nonReader(node)
    raws.push(slow)
    await waitFor(() => node.events.subscriberCount === 2, { message: 'both subscribed' })
    const agent = await watAgent(FLOOD, { name: 'events-flood', permissions: ['log'] })
    const input = 'x'.repeat(1000)
    let runs = 0
    // each run logs 400 lines of 1 KB: the socket's buffers fill, then the queue passes its bound
    while (node.events.subscriberCount > 1) {
      assert.ok(runs++ < 60, 'the non-reading client is cut within 60 runs (24 MB of events)')
      const task = await submit(node, agent, input, { local: true })
      await reader.next(ofTask(task, 'task.done'), 'the reading client gets the whole run', 60_000).catch((err: Error) => {
        throw new Error(`${err.message}; it got ${reader.events.filter(e => e.type !== 'task.log').map(e => e.type).join(', ')} and ${reader.events.filter(ofTask(task, 'task.log')).length} lines; ended: ${String(reader.isEnded())}`)
      })
      // every line reached the reader while the other did not read
      assert.equal(reader.events.filter(ofTask(task, 'task.log')).length, 400)
    }
    assert.equal(reader.isEnded(), false, 'the reading client is still followed')
    assert.equal((await fetch(`${node.apiUrl}/health`)).status, 200)
    // what the cut client finds once it reads: some events, then the end
    slow.socket.resume()
    await waitFor(async () => { await slow.closed; return true }, { message: 'the cut client\'s connection is closed' })
  })

  it(`at most ${MAX} subscribers: one more gets 503 TooManySubscribers, the API answers others, and a freed slot is taken again`, async () => {
    while (clients.filter(c => !c.isEnded()).length < MAX) clients.push(await followEvents(node))
    const refused = await fetch(`${node.apiUrl}/events`, { headers: { authorization: `Bearer ${await apiToken(node)}` } })
    assert.equal(refused.status, 503)
    assert.equal((await refused.json() as { error: { code: string } }).error.code, 'TooManySubscribers')
    assert.equal((await fetch(`${node.apiUrl}/health`)).status, 200)
    const gone = clients.find(c => !c.isEnded()) as EventClient
    gone.close()
    await gone.ended
    clients.push(await waitFor(async () => followEvents(node), { message: 'a freed slot is taken again' }))
  })

  it('a stop completes with subscribers attached, reading or not, and ends their streams', async () => {
    const live = clients.filter(c => !c.isEnded())
    // room for one that never reads
    live[0]?.close()
    await live[0]?.ended
    const slow = await nonReader(node)
    raws.push(slow)
    await waitFor(() => node.events.subscriberCount === MAX, { message: `${MAX} subscribers` })
    let stopped = false
    const stopping = node.stop().then(() => { stopped = true })
    await waitFor(() => stopped, { message: 'the stop completes with subscribers attached', timeoutMs: 30_000 })
    await stopping
    await waitFor(() => live.slice(1).every(c => c.isEnded()), { message: 'every stream ended' })
  })
})
