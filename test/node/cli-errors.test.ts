import assert from 'node:assert/strict'
import { access, mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { lineMatching } from '../helpers/wait.ts'
import { makeTempDir } from '../helpers/mesh.ts'

// Errors a user can cause on the command line: each says what was wrong and what to do, in the
// CLI's own words, never the system's (ENOENT, EEXIST) or a stack trace.
const RAW = /ENOENT|EEXIST|EISDIR|\n\s+at /

describe('CLI errors a user can cause', () => {
  let dir: string
  before(async () => { dir = await makeTempDir() })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('--data naming a file: start and status say it is a file, create nothing and exit 2', async () => {
    const file = join(dir, 'a-file')
    await writeFile(file, 'x')
    for (const args of [['start', '--api-port', '0', '--listen', '0', '--no-mdns'], ['status']]) {
      const result = await runCli(['--data', file, ...args])
      assert.equal(result.code, 2, result.stderr)
      assert.match(result.stderr, /is a file, not a folder: give --data a folder/)
      assert.doesNotMatch(result.stderr, RAW)
      assert.doesNotMatch(result.stderr, /hive-node start --data/, 'does not suggest starting on the same file')
    }
  })

  it('run with a missing agent file or a folder names the path and what it should be', async () => {
    const missing = await runCli(['--data', join(dir, 'data'), 'run', 'nope.wasm', '--input', 'x'])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /^error: no file nope\.wasm \(looked for .*nope\.wasm\): give the path of an agent component/)
    assert.doesNotMatch(missing.stderr, RAW)
    await mkdir(join(dir, 'folder'), { recursive: true })
    const folder = await runCli(['--data', join(dir, 'data'), 'run', join(dir, 'folder'), '--input', 'x'])
    assert.equal(folder.code, 2)
    assert.match(folder.stderr, /is a folder: give the path of an agent component/)
    const input = await runCli(['--data', join(dir, 'data'), 'run', 'nope.wasm', '--input-file', join(dir, 'no-input.txt')])
    assert.equal(input.code, 2)
    assert.match(input.stderr, /no file .*no-input\.txt: give the path of the input file/)
  })

  it('join with a missing file, or a file that holds no invite, says which', async () => {
    const missing = await runCli(['--data', join(dir, 'data'), 'join', join(dir, 'missing.png')])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /no file .*missing\.png: give the path of a PNG of the invite's QR code/)
    const text = join(dir, 'random.txt')
    await writeFile(text, 'hello\n')
    const junk = await runCli(['--data', join(dir, 'data'), 'join', text])
    assert.equal(junk.code, 2)
    assert.match(junk.stderr, /random\.txt holds no hive invite/)
    for (const r of [missing, junk]) assert.doesNotMatch(r.stderr, RAW)
  })

  it('stop with no node running says there is nothing to stop, not to start one', async () => {
    const result = await runCli(['--data', join(dir, 'idle'), 'stop'])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /no hive-node is running with data directory .*; nothing to stop/)
    assert.doesNotMatch(result.stderr, /start one/)
  })

  it('a port in use names the port and the flag that changes it, and the failed start leaves nothing behind', async () => {
    const first = spawnCli(['--data', join(dir, 'first'), 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json'])
    const done = exited(first)
    try {
      const ready = JSON.parse(await lineMatching(first.stdout, line => line.startsWith('{'), { message: 'ready line' })) as { addresses: string[], apiUrl: string }
      const p2pPort = /\/tcp\/(\d+)/.exec(ready.addresses[0] as string)?.[1] as string
      const apiPort = new URL(ready.apiUrl).port

      const fresh = join(dir, 'second')
      const listen = await runCli(['--data', fresh, 'start', '--listen', `/ip4/127.0.0.1/tcp/${p2pPort}`, '--api-port', '0', '--no-mdns'])
      assert.equal(listen.code, 1)
      assert.match(listen.stderr, new RegExp(`/ip4/127\\.0\\.0\\.1/tcp/${p2pPort} is in use .*--listen`))
      assert.doesNotMatch(listen.stderr, /faultTolerance|\n\s+at /)
      await assert.rejects(access(fresh), 'the data directory it made is gone')

      const kept = join(dir, 'kept')
      await mkdir(kept)
      await writeFile(join(kept, 'mine.txt'), 'x')
      const api = await runCli(['--data', kept, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', apiPort, '--no-mdns'])
      assert.equal(api.code, 1)
      assert.match(api.stderr, new RegExp(`the API port ${apiPort} is in use .*--api-port`))
      assert.deepEqual(await readdir(kept), ['mine.txt'], 'what was there stays, what the start made is gone')
    } finally {
      first.kill('SIGTERM')
      await done
    }
  })

  it('a usage error found by a command itself prints that command\'s usage line too, exit 2', async () => {
    const result = await runCli(['--data', join(dir, 'data'), 'run', 'agent.wasm'])
    assert.equal(result.code, 2)
    assert.equal(result.stderr, 'error: give exactly one of --input TEXT or --input-file FILE\nUsage: hive-node run [options] <agent>  (see hive-node run --help)\n')
  })
})

describe('agent new --example', () => {
  let dir: string
  before(async () => { dir = await makeTempDir() })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('copies a shipped example from any directory, and names the examples when asked for one that does not exist', async () => {
    const made = await runCli(['agent', 'new', join(dir, 'notes'), '--example', 'notes'])
    assert.equal(made.code, 0, made.stderr)
    assert.deepEqual((await readdir(join(dir, 'notes'))).sort(), ['agent.ts', 'hive-agent.d.ts', 'manifest.json'])
    const { readFile } = await import('node:fs/promises')
    assert.equal((JSON.parse(await readFile(join(dir, 'notes', 'manifest.json'), 'utf8')) as { name: string }).name, 'notes')
    const missing = await runCli(['agent', 'new', join(dir, 'other'), '--example', 'nope'])
    assert.equal(missing.code, 2)
    assert.match(missing.stderr, /--example: there is no example agent "nope"; the examples are echo, notes, page-watch, summarize, word-count/)
  })
})
