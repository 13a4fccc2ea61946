// Agents' http on a real hive: a task pinned to the other device reaches a granted loopback
// origin from there, and a device whose policy refuses what a task needs neither bids nor is
// waited for, with the reason in the task's explanation.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { explainText } from '../../protocol/placement/explain-text.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { ECHO, httpWat, watAgent } from '../sandbox/fixtures.ts'
import type { Server } from 'node:http'
import type { Mesh } from '../helpers/mesh.ts'

describe('agents on the network, across a hive', () => {
  let mesh: Mesh
  let server: Server
  let origin: string
  const seen: string[] = []

  before(async () => {
    server = createServer((req, res) => { seen.push(req.url ?? ''); res.end(`page ${req.url ?? ''}`) })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    // node-0 keeps agents off the network; node-1 refuses nothing
    mesh = await startMesh(2, { label: 'net', init: (i) => i === 0 ? { net: { refuse: ['*'] } } : {} })
    const [a, b] = mesh.nodes
    if (a == null || b == null) throw new Error('two nodes')
    await waitFor(() => a.capabilities.get(b.peerId.toString()) != null && b.capabilities.get(a.peerId.toString())?.caps.netRefuse?.[0] === '*', { message: 'each node has the other\'s capabilities' })
  })

  after(async () => {
    await mesh?.stop()
    server?.closeAllConnections()
    await new Promise<void>(resolve => server?.close(() => { resolve() }))
  })

  it('a task pinned to the other device fetches a granted origin from there, end to end', async () => {
    const [a, b] = mesh.nodes as [NonNullable<Mesh['nodes'][0]>, NonNullable<Mesh['nodes'][1]>]
    const agent = await watAgent(httpWat(), { permissions: [`net:${origin}`] })
    // submitted on the refusing device, pinned to the other
    const task = await a.placement.submit({
      agent,
      input: `${origin}/news`,
      permissions: [`net:${origin}`],
      requirements: { runtime: 'wasm-component', models: [], peer: b.peerId.toString() }
    })
    const done = await a.placement.wait(task.id, { signal: AbortSignal.timeout(30_000) })
    assert.equal(done.status, 'done', JSON.stringify(done.error ?? done.result))
    assert.equal(done.result?.executor, b.peerId.toString())
    assert.equal(done.result?.output, '200|page /news')
    assert.deepEqual(seen, ['/news'])
    assert.ok(done.result?.logs?.some(l => l.message === `http ${origin}: 1 request`), 'the run\'s requests per origin travel back with its logs')
  })

  it('a device whose policy forbids the network does not bid, and explain says why', async () => {
    const [a, b] = mesh.nodes as [NonNullable<Mesh['nodes'][0]>, NonNullable<Mesh['nodes'][1]>]
    const agent = await watAgent(httpWat(), { permissions: [`net:${origin}`] })
    const task = await a.placement.submit({ agent, input: `${origin}/placed`, permissions: [`net:${origin}`] })
    const done = await a.placement.wait(task.id, { signal: AbortSignal.timeout(30_000) })
    assert.equal(done.status, 'done', JSON.stringify(done.error ?? done.result))
    assert.equal(done.result?.executor, b.peerId.toString())
    const explained = await a.placement.explain(task.id)
    assert.deepEqual(explained.bids.map(bid => bid.bidder), [b.peerId.toString()])
    assert.deepEqual(explained.expected, [b.peerId.toString()], 'the refusing device is not waited for')
    const declined = explained.history.find(h => h.type === 'bid-declined')
    assert.equal(declined?.peer, a.peerId.toString())
    assert.match(declined?.detail ?? '', /policy keeps agents off the network, and the task needs http:\/\/127\.0\.0\.1:\d+/)
    assert.equal(explained.rounds[0]?.winner, b.peerId.toString())
    assert.match(explainText(explained, peer => mesh.nodes.find(n => n.peerId.toString() === peer)?.name), /^Declined: net-0 \(…\w+\) will not bid: this device's policy keeps agents off the network/m)
  })

  it('a task that needs no network is still placed on the refusing device', async () => {
    const [a] = mesh.nodes as [NonNullable<Mesh['nodes'][0]>]
    const task = await a.placement.submit({ agent: await watAgent(ECHO), input: 'offline', requirements: { runtime: 'wasm-component', models: [], peer: a.peerId.toString() } })
    const done = await a.placement.wait(task.id, { signal: AbortSignal.timeout(30_000) })
    assert.equal(done.status, 'done')
    assert.equal(done.result?.executor, a.peerId.toString())
    assert.equal(done.result?.output, 'offline')
  })
})
