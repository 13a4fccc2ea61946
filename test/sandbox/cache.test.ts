// The transpile cache: one transpile per digest, across sandboxes sharing a directory and across
// concurrent first runs; a corrupted entry is detected and rebuilt.

import assert from 'node:assert/strict'
import { readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, it } from 'node:test'
import { agentDigest, createSandbox, createTranspileCache } from '../../sandbox/index.ts'
import { ECHO, tempDir, watAgent } from './fixtures.ts'
import type { CacheEvent, Sandbox } from '../../sandbox/index.ts'

describe('transpile cache', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  const started: Sandbox[] = []

  async function sandbox (events?: CacheEvent[]): Promise<Sandbox> {
    const s = createSandbox({ cacheDir: dir.path, warmWorkers: 1, ...(events !== undefined ? { onCacheEvent: (e: CacheEvent) => { events.push(e) } } : {}) })
    await s.start()
    started.push(s)
    return s
  }

  beforeEach(async () => { dir = await tempDir() })
  afterEach(async () => {
    await Promise.all(started.splice(0).map(async s => { await s.stop() }))
    await dir.remove()
  })

  it('transpiles on the first run only; a second sandbox on the same directory reads it from disk', async () => {
    const agent = await watAgent(ECHO)
    const first = await sandbox()
    assert.equal((await first.load(agent)).source, 'transpiled')
    assert.equal((await first.run(agent, { input: 'one' })).output, 'one')
    assert.equal(first.stats().transpiles, 1)
    assert.equal((await first.run(agent, { input: 'two' })).output, 'two')
    assert.equal(first.stats().transpiles, 1, 'no second transpile in the same sandbox')

    const second = await sandbox()
    assert.equal((await second.load(agent)).source, 'disk')
    assert.equal((await second.run(agent, { input: 'three' })).output, 'three')
    assert.deepEqual([second.stats().transpiles, second.stats().cacheHits], [0, 1])
  })

  it('transpiles once for concurrent first runs of one digest', async () => {
    const agent = await watAgent(ECHO)
    const s = await sandbox()
    // Separate copies of the bytes, so nothing is shared but the digest.
    const outputs = await Promise.all(['a', 'b', 'c'].map(async input => (await s.run(agent.slice(), { input })).output))
    assert.deepEqual(outputs, ['a', 'b', 'c'])
    assert.equal(s.stats().transpiles, 1)

    const cache = createTranspileCache({ dir: join(dir.path, 'direct') })
    const digest = agentDigest(agent)
    const results = await Promise.all([1, 2, 3].map(async () => await cache.get(digest, agent)))
    assert.deepEqual(results.map(r => r.outcome), ['transpiled', 'transpiled', 'transpiled'])
    assert.equal(cache.stats().transpiles, 1)
  })

  for (const [what, corrupt] of [
    ['a flipped byte in a core module', async (entry: string) => {
      const file = join(entry, 'component.core.wasm')
      const bytes = await readFile(file)
      bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 0x01
      await writeFile(file, bytes)
    }],
    ['a truncated component.js', async (entry: string) => {
      const file = join(entry, 'component.js')
      const text = await readFile(file, 'utf8')
      await writeFile(file, text.slice(0, text.length / 2))
    }],
    ['an unreadable entry.json', async (entry: string) => { await writeFile(join(entry, 'entry.json'), '{ not json') }]
  ] as const) {
    it(`detects ${what} and rebuilds the entry`, async () => {
      const agent = await watAgent(ECHO)
      const first = await sandbox()
      await first.load(agent)
      const digest = agentDigest(agent)
      assert.ok((await readdir(dir.path)).includes(digest))
      await corrupt(join(dir.path, digest))

      const events: CacheEvent[] = []
      const second = await sandbox(events)
      const loaded = await second.load(agent)
      assert.equal(loaded.source, 'rebuilt')
      assert.deepEqual([second.stats().cacheRebuilds, second.stats().transpiles], [1, 1])
      assert.equal(events.find(e => e.type === 'corrupt')?.digest, digest)
      assert.equal((await second.run(loaded, { input: 'healed' })).output, 'healed')

      const third = await sandbox()
      assert.equal((await third.load(agent)).source, 'disk', 'the rebuilt entry is whole again')
    })
  }
})
