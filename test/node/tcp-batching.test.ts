// TCP writes batched per tick (node/tcp-batching.ts), on real sockets on loopback: what is
// written in one tick leaves together and in order, the socket is uncorked once the tick is
// over, a graceful end in the same tick still delivers, and libp2p's own connections carry
// streams through it.

import assert from 'node:assert/strict'
import { once } from 'node:events'
import { Socket, createServer, connect } from 'node:net'
import { describe, it } from 'node:test'
import { corkPerTick } from '../../node/tcp-batching.ts'
import { startMesh } from '../helpers/mesh.ts'
import type { Server } from 'node:net'
import type { MultiaddrConnection } from '@libp2p/interface'

interface Pair { server: Server, client: Socket, accepted: Socket }

/** Runs `test` on a connected pair of loopback sockets, and closes both and the server after. */
async function withPair (test: (pair: Pair) => Promise<void>): Promise<void> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  const client = connect(port, '127.0.0.1')
  const [[accepted]] = await Promise.all([once(server, 'connection') as Promise<[Socket]>, once(client, 'connect')])
  try {
    await test({ server, client, accepted: accepted! })
  } finally {
    client.destroy()
    accepted!.destroy()
    server.close()
  }
}

/** A stand-in for libp2p's TCP connection: its sendData writes each buffer, as @libp2p/tcp's does. */
function connection (socket: Socket): { maConn: MultiaddrConnection, send: (...bufs: Uint8Array[]) => void } {
  const maConn = {
    socket,
    sendData (data: Uint8Array[]) {
      let sentBytes = 0
      let canSendMore = true
      for (const buf of data) {
        sentBytes += buf.byteLength
        canSendMore = socket.write(buf)
      }
      return { sentBytes, canSendMore }
    }
  }
  corkPerTick(maConn as unknown as MultiaddrConnection)
  return { maConn: maConn as unknown as MultiaddrConnection, send: (...bufs) => (maConn.sendData as (d: Uint8Array[]) => unknown)(bufs) }
}

async function received (socket: Socket, bytes: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let length = 0
  for await (const chunk of socket) {
    chunks.push(chunk as Buffer)
    length += (chunk as Buffer).byteLength
    if (length >= bytes) break
  }
  return Buffer.concat(chunks)
}

describe('TCP writes batched per tick', () => {
  it('corks at the first write of a tick, uncorks after it, and delivers everything in order', async () => {
    await withPair(async ({ client, accepted }) => {
      const { send } = connection(client)
      const reading = received(accepted, 6)
      send(Buffer.from('ab'))
      assert.equal(client.writableCorked, 1, 'corked during the tick')
      send(Buffer.from('cd'), Buffer.from('ef'))
      assert.equal(client.writableLength, 6, 'held until the tick ends')
      await new Promise(resolve => process.nextTick(resolve))
      assert.equal(client.writableCorked, 0, 'uncorked once the tick is over')
      assert.equal((await reading).toString(), 'abcdef')
    })
  })

  it('a write in a later tick corks again', async () => {
    await withPair(async ({ client, accepted }) => {
      const { send } = connection(client)
      const reading = received(accepted, 4)
      send(Buffer.from('12'))
      await new Promise(resolve => setImmediate(resolve))
      assert.equal(client.writableCorked, 0)
      send(Buffer.from('34'))
      assert.equal(client.writableCorked, 1)
      assert.equal((await reading).toString(), '1234')
    })
  })

  it('a graceful end in the same tick still sends what was written', async () => {
    await withPair(async ({ client, accepted }) => {
      const { send } = connection(client)
      const reading = received(accepted, 5)
      send(Buffer.from('bye'), Buffer.from('!!'))
      client.end()
      assert.equal((await reading).toString(), 'bye!!')
    })
  })

  it('installs once, and leaves a connection with no TCP socket as it is', () => {
    const socketless = { sendData: () => ({ sentBytes: 0, canSendMore: true }) }
    const before = socketless.sendData
    corkPerTick(socketless as unknown as MultiaddrConnection)
    assert.equal(socketless.sendData, before)
  })

  it('a connection corked twice is wrapped once', async () => {
    await withPair(async ({ client, accepted }) => {
      const { maConn } = connection(client)
      const wrapped = (maConn as unknown as { sendData: unknown }).sendData
      corkPerTick(maConn)
      assert.equal((maConn as unknown as { sendData: unknown }).sendData, wrapped)
    })
  })

  it('a hive node\'s connections are batched: two nodes join one hive over them', async () => {
    const cork = Socket.prototype.cork
    let corks = 0
    Socket.prototype.cork = function (this: Socket) {
      corks++
      cork.call(this)
    }
    let mesh: Awaited<ReturnType<typeof startMesh>> | undefined
    try {
      mesh = await startMesh(2, { label: 'batched' })
      assert.ok(corks > 0, 'the sockets were corked')
      assert.equal(mesh.nodes[1]!.hive.membership.members().length, 2)
    } finally {
      Socket.prototype.cork = cork
      await mesh?.stop()
    }
  })
})
