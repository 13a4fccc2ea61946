import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { BIN, exited } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching } from '../helpers/wait.ts'

/** A Node on this machine older than the project needs (the system one on a fresh machine), if any. */
function oldNode (): string | undefined {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    try {
      const version = execFileSync(candidate, ['--version'], { encoding: 'utf8' }).trim().replace(/^v/, '')
      const [major = 0, minor = 0] = version.split('.').map(Number)
      if (major < 22 || (major === 22 && minor < 18)) return candidate
    } catch {}
  }
  return undefined
}

const OLD = oldNode()

describe('hive-node on PATH with an older system Node', { skip: OLD === undefined ? 'no Node older than 22.18 on this machine' : false }, () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('runs through a symlink from another directory, re-executed under the project\'s own Node', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const link = join(dir, 'hive-node')
    await symlink(BIN, link)
    const child = spawn(OLD as string, [link, '--data', join(dir, 'data'), 'status', '--json'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    const result = await exited(child as never)
    // No node runs there: the command itself ran (on the new Node) and said so in its own words.
    assert.equal(result.code, 1, result.stderr)
    assert.match(result.stderr, /no hive-node is running/)
    assert.doesNotMatch(result.stderr, /needs Node\.js/)
  })

  it('passes SIGTERM on to the node it started, which stops cleanly', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const child = spawn(OLD as string, [BIN, '--data', dir, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HIVE_LOG_LEVEL: 'warn' }
    })
    const done = exited(child as never)
    const ready = JSON.parse(await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'ready line' })) as { pid?: number, apiUrl: string }
    const health = await (await fetch(`${ready.apiUrl}/health`)).json() as { pid: number }
    assert.notEqual(health.pid, child.pid, 'the node runs in a child of the wrapper')
    child.kill('SIGTERM')
    const result = await done
    assert.equal(result.code, 0, result.stderr)
    assert.throws(() => process.kill(health.pid, 0), 'the node itself is gone')
  })
})
