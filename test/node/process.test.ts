import assert from 'node:assert/strict'
import { access, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching } from '../helpers/wait.ts'

const START_ARGS = ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json']

describe('hive-node start as a process', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('becomes ready, answers its API, refuses a second start on the same data directory, and exits 0 on SIGTERM', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const child = spawnCli(['--data', dir, ...START_ARGS])
    const done = exited(child)
    try {
      const ready = JSON.parse(await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'ready line' })) as { peerId: string, apiUrl: string }
      const health = await (await fetch(`${ready.apiUrl}/health`)).json() as { ok: boolean, peerId: string, pid: number }
      assert.equal(health.ok, true)
      assert.equal(health.peerId, ready.peerId)
      assert.equal(health.pid, child.pid)

      const second = await runCli(['--data', dir, ...START_ARGS])
      assert.notEqual(second.code, 0)
      assert.match(second.stderr, new RegExp(`pid ${child.pid}`))
      assert.doesNotMatch(second.stderr, /LEVEL_|LOCK|at .*\.ts:\d+/, 'no storage error or stack trace')

      const status = await runCli(['--data', dir, 'status', '--json'])
      assert.equal(status.code, 0, status.stderr)
      assert.equal((JSON.parse(status.stdout) as { peerId: string }).peerId, ready.peerId)
    } finally {
      child.kill('SIGTERM')
    }
    const result = await done
    assert.equal(result.code, 0, result.stderr)
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace on shutdown')
    // clean shutdown removes the lock and the API file, so the next start needs no cleanup
    await assert.rejects(access(join(dir, 'node.lock')))
    await assert.rejects(access(join(dir, 'api.json')))
  })

  it('stops through "hive-node stop" with exit 0', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const child = spawnCli(['--data', dir, ...START_ARGS.filter(a => a !== '--json')])
    const done = exited(child)
    await lineMatching(child.stdout, line => line.startsWith('Press Ctrl-C'), { message: 'ready line' })
    const stop = await runCli(['--data', dir, 'stop'])
    assert.equal(stop.code, 0, stop.stderr)
    const result = await done
    assert.equal(result.code, 0, result.stderr)
  })
})

describe('hive-node CLI errors', () => {
  it('a bad flag exits 2 with a one-line error and the usage', async () => {
    const result = await runCli(['status', '--bogus'])
    assert.equal(result.code, 2)
    const lines = result.stderr.trim().split('\n')
    assert.match(lines[0]!, /unknown option '--bogus'/)
    assert.match(lines[1]!, /^Usage: hive-node status/)
  })

  it('an unknown command exits 2', async () => {
    const result = await runCli(['frobnicate'])
    assert.equal(result.code, 2)
    assert.match(result.stderr, /unknown command 'frobnicate'/)
  })

  it('status with no node running exits 1 with a clear message', async () => {
    const dir = await makeTempDir()
    try {
      const result = await runCli(['--data', dir, 'status'])
      assert.equal(result.code, 1)
      assert.match(result.stderr, /no hive-node is running with data directory .*; start one with "hive-node start/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  it('a bad --api-port exits 2 and says what it takes', async () => {
    const dir = await makeTempDir()
    try {
      const result = await runCli(['--data', dir, 'start', '--api-port', 'http'])
      assert.equal(result.code, 2)
      assert.match(result.stderr, /--api-port takes a port number/)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
