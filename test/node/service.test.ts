import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { access, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, describe, it } from 'node:test'
import { exited, runCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching } from '../helpers/wait.ts'

/** Splits an ExecStart value into words the way systemd does for the quoting unitText uses. */
function execWords (line: string): string[] {
  const words: string[] = []
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g
  for (let m = re.exec(line); m !== null; m = re.exec(line)) {
    words.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1').replace(/%%/g, '%') : m[2] as string)
  }
  return words
}

describe('hive-node service', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('install writes a user unit whose ExecStart runs the node directly, and it stops on SIGTERM with exit 0', async () => {
    const home = await makeTempDir()
    dirs.push(home)
    const data = join(home, 'data dir "quoted"')
    const result = await runCli(['--data', data, 'service', 'install', '--name', 'desk 1', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--json'], { XDG_CONFIG_HOME: home })
    assert.equal(result.code, 0, result.stderr)
    const out = JSON.parse(result.stdout) as { path: string, written: boolean, unit: string }
    assert.equal(out.path, join(home, 'systemd', 'user', 'hive-node.service'))
    const text = await readFile(out.path, 'utf8')
    assert.equal(text, out.unit)
    assert.match(text, /^\[Install\]\nWantedBy=default\.target$/m)
    const exec = /^ExecStart=(.*)$/m.exec(text)?.[1]
    assert.ok(exec !== undefined)
    const words = execWords(exec)
    assert.doesNotMatch(words[0] as string, /npx/, 'runs the node directly, not through npx')
    assert.deepEqual(words.slice(2, 5), ['--data', data, 'start'])

    // The unit's own command line starts a real node (mDNS off so it meets no other test node).
    const child = spawn(words[0] as string, [...words.slice(1), '--no-mdns', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HIVE_LOG_LEVEL: 'warn' } })
    const done = exited(child as never)
    const line = await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'ready line' }).catch(async (err: Error) => {
      child.kill('SIGKILL')
      throw new Error(`${err.message}; the node said: ${(await done).stderr}`)
    })
    const ready = JSON.parse(line) as { name: string }
    assert.equal(ready.name, 'desk 1')
    child.kill('SIGTERM')
    assert.equal((await done).code, 0)
  })

  it('systemd accepts the unit', async (t) => {
    const verify = await promisify(execFile)('systemd-analyze', ['--version']).then(() => true, () => false)
    if (!verify) { t.skip('systemd-analyze is not installed'); return }
    const home = await makeTempDir()
    dirs.push(home)
    const result = await runCli(['--data', join(home, 'd'), 'service', 'install'], { XDG_CONFIG_HOME: home })
    assert.equal(result.code, 0, result.stderr)
    const check = await promisify(execFile)('systemd-analyze', ['verify', join(home, 'systemd', 'user', 'hive-node.service')]).then(r => ({ code: 0, stderr: r.stderr }), (e: { code: number, stderr: string }) => ({ code: e.code, stderr: e.stderr }))
    assert.equal(check.code, 0, check.stderr)
  })

  it('--dry-run writes nothing; a bad --api-port is a usage error; remove deletes the unit', async () => {
    const home = await makeTempDir()
    dirs.push(home)
    const dry = await runCli(['service', 'install', '--dry-run'], { XDG_CONFIG_HOME: home })
    assert.equal(dry.code, 0, dry.stderr)
    assert.match(dry.stdout, /^Would write /)
    await assert.rejects(access(join(home, 'systemd', 'user', 'hive-node.service')))
    const bad = await runCli(['service', 'install', '--api-port', 'eighty'], { XDG_CONFIG_HOME: home })
    assert.equal(bad.code, 2)
    assert.match(bad.stderr, /--api-port must be a port number/)
    assert.equal((await runCli(['service', 'install'], { XDG_CONFIG_HOME: home })).code, 0)
    const removed = await runCli(['service', 'remove'], { XDG_CONFIG_HOME: home })
    assert.equal(removed.code, 0, removed.stderr)
    await assert.rejects(access(join(home, 'systemd', 'user', 'hive-node.service')))
  })
})
