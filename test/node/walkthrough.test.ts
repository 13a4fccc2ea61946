// The README's walk-through, run as written: every command between the walkthrough markers, in
// order, through a `hive-node` on PATH (a symlink to node/bin.js, started by whatever Node the
// system has) from a directory outside the clone. Only the ports are swapped for free ones and
// HOME for a temporary one, so the run touches nothing of the machine's.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, readFile, rm, symlink } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { BIN, exited } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching, waitFor } from '../helpers/wait.ts'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** The shell lines of the README's walk-through, in order. */
async function walkthroughLines (): Promise<string[]> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const section = /<!-- walkthrough -->([\s\S]*?)<!-- \/walkthrough -->/.exec(readme)?.[1]
  assert.ok(section !== undefined, 'the README marks its walk-through')
  const lines: string[] = []
  for (const block of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of (block[1] as string).split('\n')) {
      const command = line.replace(/\s+#.*$/, '').trim()
      if (command !== '' && !command.startsWith('#')) lines.push(command)
    }
  }
  return lines
}

async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise(resolve => server.close(resolve))
  return port
}

describe('the README walk-through, as written', () => {
  const children: ChildProcessWithoutNullStreams[] = []
  let home: string | undefined
  after(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
    if (home !== undefined) await rm(home, { recursive: true, force: true })
  })

  it('starts two devices, pairs them, runs an agent on the other one, reads its context on both, verifies, stops', async () => {
    home = await makeTempDir()
    const bin = join(home, 'bin')
    const work = join(home, 'work')
    await mkdir(bin)
    // a directory outside the clone, with nothing of the clone in it
    await mkdir(work)
    await symlink(BIN, join(bin, 'hive-node'))
    const ports = new Map<string, string>()
    for (const p of ['4190', '4191', '8765', '8766']) ports.set(p, String(await freePort()))
    const env = {
      HOME: home,
      PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`,
      HIVE_LOG_LEVEL: 'warn',
      NODE_COMPILE_CACHE: join(home, 'compile-cache')
    }
    const sh = (line: string): ChildProcessWithoutNullStreams => {
      const command = line.replace(/\b(4190|4191|8765|8766)\b/g, p => ports.get(p) as string)
      return spawn('/bin/sh', ['-c', command], { cwd: work, env, stdio: ['pipe', 'pipe', 'pipe'] })
    }
    const run = async (line: string): Promise<{ code: number | null, stdout: string, stderr: string }> => {
      const child = sh(line)
      child.stdin.end()
      return exited(child)
    }

    const lines = await walkthroughLines()
    assert.ok(lines.length >= 10, `the walk-through has its steps: ${lines.join(' | ')}`)
    const nodes: Array<Promise<{ code: number | null, stderr: string }>> = []
    for (const line of lines) {
      if (/ start( |$)/.test(line)) {
        const child = sh(line)
        children.push(child)
        nodes.push(exited(child))
        await lineMatching(child.stdout, l => l.startsWith('Press Ctrl-C'), { message: `"${line}" becomes ready`, timeoutMs: 60_000 })
        continue
      }
      // Reads that depend on replication are retried as a person would, until they show the result.
      const expect = / peers$/.test(line) ? /desktop/ : / context get /.test(line) ? /buy milk/ : undefined
      const result = expect === undefined
        ? await run(line)
        : await waitFor(async () => { const r = await run(line); return r.code === 0 && expect.test(r.stdout) ? r : undefined }, { message: `"${line}" shows ${String(expect)}`, timeoutMs: 30_000, intervalMs: 500 })
      assert.equal(result.code, 0, `"${line}" failed:\n${result.stderr}`)
      assert.doesNotMatch(result.stderr, /^error:/m, `"${line}" printed an error`)
      if (/ run notes\.wasm /.test(line)) {
        assert.match(result.stdout, /note 1 saved/)
        assert.match(result.stderr, /^ran on desktop: task /m)
      }
      if (/ verify$/.test(line)) {
        assert.match(result.stdout, /\bclean\b/)
        assert.match(result.stdout, /ok +desktop \(12D3Koo\w+\)\n/, 'chains are shown by device name')
      }
    }
    for (const done of await Promise.all(nodes)) assert.equal(done.code, 0, done.stderr)
  })
})
