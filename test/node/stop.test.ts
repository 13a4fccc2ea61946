// A stop always stops: local processes holding an idle keep-alive connection or a half-sent
// request to the API (no token needed for either) cannot keep the node running, whether the
// stop comes from `POST /stop` or SIGTERM. And `status` tells the truth while a node stops.

import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching } from '../helpers/wait.ts'
import type { Socket } from 'node:net'

const START_ARGS = ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json']
/** The stated bound (README: a stop completes within 20 s), plus start-up slack of the loaded machine. */
const EXIT_WAIT_MS = 20_000 + 10_000

async function opened (port: number): Promise<Socket> {
  return await new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => { resolve(socket) })
    socket.once('error', reject)
  })
}

/** One idle keep-alive connection (a full request answered, the socket left open) and one half-sent request. */
async function holdConnections (port: number): Promise<Socket[]> {
  const idle = await opened(port)
  const answered = new Promise<void>(resolve => { idle.once('data', () => { resolve() }) })
  idle.write(`GET /health HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: keep-alive\r\n\r\n`)
  await answered
  const half = await opened(port)
  half.write(`POST /contexts/x/state HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"key":`)
  for (const s of [idle, half]) s.on('error', () => {})
  return [idle, half]
}

async function withExitTimeout<T> (done: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new Error(`${what}: the process did not exit within ${EXIT_WAIT_MS} ms`)) }, EXIT_WAIT_MS)
  })
  try {
    return await Promise.race([done, timeout])
  } finally {
    clearTimeout(timer)
  }
}

describe('a stop always stops', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  for (const how of ['POST /stop', 'SIGTERM'] as const) {
    it(`${how} ends the process while a local client holds an idle and a half-sent API connection`, async () => {
      const dir = await makeTempDir()
      dirs.push(dir)
      const child = spawnCli(['--data', dir, ...START_ARGS])
      const done = exited(child)
      let sockets: Socket[] = []
      try {
        const ready = JSON.parse(await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'ready line' })) as { apiUrl: string }
        const port = Number(new URL(ready.apiUrl).port)
        sockets = await holdConnections(port)
        if (how === 'SIGTERM') {
          child.kill('SIGTERM')
        } else {
          const token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
          const response = await fetch(`${ready.apiUrl}/stop`, { method: 'POST', headers: { authorization: `Bearer ${token}`, connection: 'close' } })
          assert.equal(response.status, 202)
        }
        const result = await withExitTimeout(done, how)
        assert.equal(result.code, 0, result.stderr)
        assert.match(result.stderr, /hive-node stopped/)
      } finally {
        for (const s of sockets) s.destroy()
        child.kill('SIGKILL')
      }
    })
  }

  it('status says a node is stopping while its process holds the data directory and its API is down', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    // the lock as a stopping node leaves it: a live pid (this process) and its state
    await writeFile(join(dir, 'node.lock'), `${process.pid}\nstopping\n`)
    const status = await runCli(['--data', dir, 'status'])
    assert.equal(status.code, 1)
    assert.match(status.stderr, new RegExp(`pid ${process.pid}.* is stopping`))
    assert.doesNotMatch(status.stderr, /no hive-node is running/)
  })
})
