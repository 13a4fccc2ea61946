// Reproducible builds: the snapshot patch on the real JS engine (fast), and two real builds of
// one agent from two different directories, compared byte for byte (~15 s each, in parallel).

import assert from 'node:assert/strict'
import { cp, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { buildAgent } from '../../sandbox/build.ts'
import { sections } from '../../sandbox/binary.ts'
import { patchForSnapshot, restoreAfterSnapshot } from '../../sandbox/snapshot.ts'
import { wasm } from '../../sandbox/wasm.ts'
import { tempDir } from './fixtures.ts'

/** The JS engine componentize-js snapshots (its module is `src/componentize.js`). */
const ENGINE = new URL('../lib/starlingmonkey_embedding.wasm', import.meta.resolve('@bytecodealliance/componentize-js'))
const ECHO = new URL('../../sandbox/agents/echo', import.meta.url).pathname

function section (bytes: Uint8Array, id: number): Uint8Array {
  const s = [...sections(bytes)].find(x => x.id === id)
  assert.ok(s !== undefined, `section ${id}`)
  return bytes.subarray(s.start, s.end)
}

describe('reproducible builds', () => {
  it('sends every call of the engine\'s random, clock and file status to fixed answers, and puts the code back after', async () => {
    const engine = new Uint8Array(await readFile(ENGINE))
    const patch = patchForSnapshot(engine, 0x0123456789abcdefn)
    assert.ok(patch.redirected.random > 0 && patch.redirected.clock > 0 && patch.redirected.stat > 0, JSON.stringify(patch.redirected))
    // the patched engine is valid WebAssembly: every body was read to its end and re-encoded
    await wasm.compile(patch.bytes)
    assert.notDeepEqual(section(patch.bytes, 10), section(engine, 10))
    // wizer leaves code alone; standing in for its output, the patched module itself
    const restored = restoreAfterSnapshot(patch.bytes, patch)
    assert.deepEqual(section(restored, 10), section(engine, 10))
    assert.deepEqual(section(restored, 3), section(engine, 3))
  })

  it('refuses to put the code back into a snapshot whose code changed', async () => {
    const engine = new Uint8Array(await readFile(ENGINE))
    const patch = patchForSnapshot(engine, 1n)
    const changed = patch.bytes.slice()
    const code = [...sections(changed)].find(x => x.id === 10) as { bodyStart: number }
    changed[code.bodyStart + 40] = (changed[code.bodyStart + 40] as number) ^ 0xff
    assert.throws(() => restoreAfterSnapshot(changed, patch), { name: 'SnapshotPatch' })
  })

  it('builds one source in two directories into the same bytes', async () => {
    const dir = await tempDir('hive-repro-')
    try {
      const a = join(dir.path, 'first', 'echo')
      const b = join(dir.path, 'second-with-a-longer-name', 'deeper', 'echo')
      await cp(ECHO, a, { recursive: true })
      await cp(ECHO, b, { recursive: true })
      const [ra, rb] = await Promise.all([buildAgent(a, join(a, 'out.wasm')), buildAgent(b, join(dir.path, 'elsewhere.wasm'))])
      assert.equal(ra.digest, rb.digest)
      assert.deepEqual(await readFile(ra.out), await readFile(rb.out))
    } finally {
      await dir.remove()
    }
  })
})
