// Slow clients and many clients at the local API's door: a client sending its headers a byte at
// a time, hundreds of connections left idle or half-sent, a crowd of long polls, more
// connections than the API takes. The node keeps answering, what it holds stays bounded, every
// such connection is closed by a stated limit, and a stop still completes.

import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { ECHO, watAgent } from '../sandbox/fixtures.ts'
import type { Socket } from 'node:net'
import type { HiveNode } from '../../node/hive-node.ts'

/** Limits short enough for a test; the defaults (API_LIMITS) are stated in the README. */
const LIMITS = { headersTimeoutMs: 1_000, keepAliveTimeoutMs: 1_000, timeoutCheckMs: 100 }

interface Client {
  socket: Socket
  /** Everything the server sent. */
  received: () => string
  closed: Promise<void>
  isClosed: () => boolean
}

async function open (port: number): Promise<Client> {
  return await new Promise((resolve, reject) => {
    let data = ''
    let closed = false
    const socket = netConnect(port, '127.0.0.1')
    const done = new Promise<void>(resolve => { socket.once('close', () => { closed = true; resolve() }) })
    socket.on('data', (chunk) => { data += chunk.toString() })
    socket.once('connect', () => {
      socket.on('error', () => {})
      resolve({ socket, received: () => data, closed: done, isClosed: () => closed })
    })
    socket.once('error', reject)
  })
}

async function health (node: HiveNode): Promise<number> {
  const response = await fetch(`${node.apiUrl}/health`)
  await response.arrayBuffer()
  return response.status
}

function port (node: HiveNode): number {
  return Number(new URL(node.apiUrl as string).port)
}

describe('slow and many clients of the local API', () => {
  let dir: string
  let node: HiveNode

  before(async () => {
    dir = await makeTempDir()
    node = await startNode('api-clients', { apiLimits: LIMITS, placement: { bidWindowMs: 120_000 } }, dir)
  })

  after(async () => {
    await node.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('a client sending its headers a byte at a time is cut with 408 at the header timeout; the node answers others meanwhile', async () => {
    const slow = await open(port(node))
    const header = `GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port(node)}\r\nX-Slow: `
    let i = 0
    // one byte every 20 ms, never ending the headers
    const drip = setInterval(() => { if (!slow.isClosed()) slow.socket.write(i < header.length ? header[i++] as string : 'a') }, 20)
    try {
      for (let n = 0; n < 5; n++) assert.equal(await health(node), 200)
      await waitFor(() => slow.isClosed(), { message: 'the slow client is cut at the header timeout', timeoutMs: 15_000 })
      assert.match(slow.received(), /^HTTP\/1\.1 408 /)
      assert.match(slow.received(), /"code":"RequestTimeout"/)
    } finally {
      clearInterval(drip)
      slow.socket.destroy()
    }
  })

  it('240 connections at once (the limit is 256), idle after an answer or half-sent: the node keeps answering, holds little, and closes every one', async () => {
    const before = process.memoryUsage().heapUsed
    const clients: Client[] = []
    for (let n = 0; n < 240; n++) {
      const client = await open(port(node))
      clients.push(client)
      if (n % 2 === 0) client.socket.write(`GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port(node)}\r\nConnection: keep-alive\r\n\r\n`)
      else client.socket.write(`POST /contexts/x/state HTTP/1.1\r\nHost: 127.0.0.1:${port(node)}\r\nContent-Type: application/json\r\n`)
    }
    try {
      await waitFor(() => clients.filter((c, n) => n % 2 === 0 && c.received().startsWith('HTTP/1.1 200')).length === 120, { message: 'every complete request is answered' })
      for (let n = 0; n < 10; n++) assert.equal(await health(node), 200)
      const grown = process.memoryUsage().heapUsed - before
      // both ends of every connection are in this process; still far below a megabyte each
      assert.ok(grown < 64 * 1024 * 1024, `heap grew ${Math.round(grown / 1e6)} MB for 240 connections`)
      // idle ones by the keep-alive timeout, half-sent ones by the header timeout
      await waitFor(() => clients.every(c => c.isClosed()), { message: 'the API closes every idle and half-sent connection', timeoutMs: 15_000 })
      assert.equal(clients.filter((c, n) => n % 2 === 1 && /^HTTP\/1\.1 408 /.test(c.received())).length, 120)
    } finally {
      for (const c of clients) c.socket.destroy()
    }
  })

  it('a crowd of long polls: the node answers others meanwhile, and a stop cuts them and completes', async () => {
    const token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
    // no member can run it: the task stays in bidding for the whole bid window
    const submitted = await fetch(`${node.apiUrl}/task`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: Buffer.from(await watAgent(ECHO)).toString('base64'), input: 'x', requirements: { runtime: 'none-such', models: [] } })
    })
    assert.equal(submitted.status, 202, await submitted.clone().text())
    const { task } = await submitted.json() as { task: { id: string } }
    const polls = Array.from({ length: 200 }, async () => {
      const response = await fetch(`${node.apiUrl}/task/${task.id}?waitMs=60000`)
      await response.arrayBuffer()
      return response.status
    }).map(async p => p.catch(() => 'cut' as const))
    for (let n = 0; n < 10; n++) assert.equal(await health(node), 200)
    const stopped = node.stop()
    await waitFor(async () => { await stopped; return true }, { message: 'the stop completes with 200 long polls open', timeoutMs: 20_000 })
    const outcomes = await Promise.all(polls)
    assert.equal(outcomes.length, 200)
  })
})

describe('more connections than the API takes', () => {
  const MAX = 24
  let dir: string
  let node: HiveNode

  before(async () => {
    dir = await makeTempDir()
    node = await startNode('api-crowd', { apiLimits: { maxConnections: MAX } }, dir)
  })

  after(async () => {
    await node.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it(`past ${MAX} connections new ones are closed as they arrive, and served again once a slot frees`, async () => {
    const clients: Client[] = []
    try {
      for (let n = 0; n < MAX * 2; n++) clients.push(await open(port(node)))
      // the excess is closed by the server without an answer; the first MAX stay open
      await waitFor(() => clients.filter(c => c.isClosed()).length >= MAX, { message: `${MAX} connections refused` })
      assert.equal(clients.filter(c => c.isClosed() && c.received() !== '').length, 0)
      // a slot frees: a new client is served
      for (const c of clients.splice(0, 4)) c.socket.destroy()
      await waitFor(async () => await health(node).catch(() => 0) === 200, { message: 'served once a slot frees' })
    } finally {
      for (const c of clients) c.socket.destroy()
    }
  })
})
