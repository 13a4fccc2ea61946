// Agents' http on a real hive: a task pinned to the other device reaches a granted loopback
// origin from there, and a device whose policy refuses what a task needs neither bids nor is
// waited for, with the reason in the task's explanation. A run's requests per origin go in its
// ledger record, which every member holds and audits.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { dataPaths } from '../../node/config.ts'
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
  // a second granted origin, which the first one redirects to
  let other: Server
  let otherOrigin: string
  const seen: string[] = []

  before(async () => {
    other = createServer((req, res) => { res.end(`other ${req.url ?? ''}`) })
    await new Promise<void>(resolve => other.listen(0, '127.0.0.1', resolve))
    otherOrigin = `http://127.0.0.1:${(other.address() as { port: number }).port}`
    server = createServer((req, res) => {
      seen.push(req.url ?? '')
      // /start -> /to-other -> the other origin's /page: three requests, two of them to this origin
      if (req.url === '/start') { res.writeHead(302, { location: '/to-other' }); res.end(); return }
      if (req.url === '/to-other') { res.writeHead(302, { location: `${otherOrigin}/page` }); res.end(); return }
      res.end(`page ${req.url ?? ''}`)
    })
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
    for (const s of [server, other]) {
      s?.closeAllConnections()
      await new Promise<void>(resolve => s?.close(() => { resolve() }) ?? resolve())
    }
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

  it('a run making 9 requests to 2 granted origins leaves those counts in its record on the executor\'s chain; the audit passes on both devices, and explain and POST /agents/run say them', async () => {
    const [a, b] = mesh.nodes as [NonNullable<Mesh['nodes'][0]>, NonNullable<Mesh['nodes'][1]>]
    const permissions = [`net:${origin}`, `net:${otherOrigin}`]
    // each call follows two redirects: 2 requests to the first origin, 1 to the other
    const agent = await watAgent(httpWat({ calls: 3 }), { permissions })
    const task = await a.placement.submit({
      agent,
      input: `${origin}/start`,
      permissions,
      requirements: { runtime: 'wasm-component', models: [], peer: b.peerId.toString() }
    })
    const done = await a.placement.wait(task.id, { signal: AbortSignal.timeout(30_000) })
    assert.equal(done.status, 'done', JSON.stringify(done.error ?? done.result))
    assert.equal(done.result?.output, '200|other /page')
    const seq = done.result?.ledger?.seq
    assert.equal(typeof seq, 'number', JSON.stringify(done.result?.ledger))
    const expected = {
      requests: 9,
      origins: [{ origin, requests: 6 }, { origin: otherOrigin, requests: 3 }].sort((x, y) => x.origin < y.origin ? -1 : 1)
    }
    const executor = b.peerId.toString()
    const own = (await b.ledger.list()).find(r => r.seq === seq)?.record
    assert.deepEqual([own?.task, own?.status, own?.bytes[0], own?.net], [task.id, 'ok', 3, expected])
    // the submitter holds the executor's chain, record included, and its audit passes
    await waitFor(async () => (await a.ledger.chains()).some(c => c.signer === executor && c.end >= (seq as number)), { message: 'the submitter holds the executor\'s record' })
    const copy = (await a.ledger.list({ signer: executor })).find(r => r.seq === seq)?.record
    assert.deepEqual(copy?.net, expected)
    for (const node of [a, b]) {
      const report = await node.ledger.verify()
      assert.equal(report.ok, true, JSON.stringify(report.chains.map(c => c.firstBad)))
    }
    const explained = await (await fetch(`${a.apiUrl ?? ''}/task/${task.id}/explain`)).json() as { text: string, net?: unknown }
    assert.deepEqual(explained.net, expected)
    assert.match(explained.text, new RegExp(`^Requests: 9 http requests: ${expected.origins.map(o => `${o.origin.replace(/\./g, '\\.')} ×${o.requests}`).join(', ')}$`, 'm'))

    // the same agent through POST /agents/run on this device
    const token = (await readFile(dataPaths(b.dataDir).token, 'utf8')).trim()
    const response = await fetch(`${b.apiUrl ?? ''}/agents/run`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: Buffer.from(agent).toString('base64'), input: `${origin}/start` })
    })
    const body = await response.json() as { output: string, record: { seq: number } }
    assert.equal(response.status, 200, JSON.stringify(body))
    const local = (await b.ledger.list()).find(r => r.seq === body.record.seq)?.record
    assert.deepEqual([local?.placement, local?.net], ['run on this device only (POST /agents/run)', expected])
    assert.equal((await b.ledger.verify({ signer: executor })).ok, true)
  })
})
