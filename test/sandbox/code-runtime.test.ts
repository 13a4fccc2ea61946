// The code tasks' interpreter cache: keyed on every input of the bytes, built at most once per
// key (the shared test cache usually holds it already), reused by any runtime on that directory.

import assert from 'node:assert/strict'
import { basename } from 'node:path'
import { describe, it } from 'node:test'
import { codeRuntimeKey, createCodeRuntime, inspectAgentBytes } from '../../sandbox/index.ts'
import { TEST_RUNTIMES_DIR } from '../helpers/code-runtime.ts'

describe('code runtime cache', () => {
  it('keys the interpreter file on its inputs and serves every runtime on the directory from it', async () => {
    const key = await codeRuntimeKey()
    assert.match(key, /^[0-9a-f]{16}$/)
    assert.equal(await codeRuntimeKey(), key, 'the key depends on inputs only')
    const first = createCodeRuntime({ cacheDir: TEST_RUNTIMES_DIR })
    assert.equal(basename(await first.path()), `js-code-${key}.wasm`)
    const [x, y] = await Promise.all([first.component(), first.component()])
    assert.equal(x, y, 'asked twice at once, obtained once')
    assert.equal(inspectAgentBytes(x).manifest.name, 'js-code')
    const second = createCodeRuntime({ cacheDir: TEST_RUNTIMES_DIR })
    assert.equal(second.state(), 'not built')
    const states: string[] = []
    const p = second.component()
    states.push(second.state())
    assert.deepEqual(await p, x)
    assert.deepEqual(states, ['not built'], 'read from the cache, not built')
    assert.equal(second.state(), 'ready')
    assert.equal(second.digest(), first.digest())
  })

})
