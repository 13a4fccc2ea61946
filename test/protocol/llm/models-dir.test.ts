// Adding a model file to a device: the GGUF header is checked before anything is copied, a name
// is never taken twice, and the folder never shows a half-copied model.

import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { addModelFile, createEmbeddedBackend, listModelFiles } from '../../../protocol/llm/index.ts'
import { tinyGguf, tinyModelsDir } from '../../helpers/gguf.ts'
import type { TinyModelsDir } from '../../helpers/gguf.ts'

describe('models folder', () => {
  let src: TinyModelsDir
  let dest: TinyModelsDir
  before(async () => {
    src = await tinyModelsDir(['source'])
    dest = await tinyModelsDir([])
  })
  after(async () => {
    await src.remove()
    await dest.remove()
  })

  it('copies a GGUF file in under its file name and lists it', async () => {
    const added = await addModelFile(dest.modelsDir, join(src.modelsDir, 'source.gguf'))
    assert.equal(added.name, 'source')
    assert.deepEqual(await readFile(join(dest.modelsDir, 'source.gguf')), await readFile(join(src.modelsDir, 'source.gguf')))
    assert.deepEqual((await listModelFiles(dest.modelsDir)).map(m => m.name), ['source'])
    const renamed = await addModelFile(dest.modelsDir, join(src.modelsDir, 'source.gguf'), { name: 'second' })
    assert.equal(renamed.sizeBytes, added.sizeBytes)
    assert.deepEqual((await readdir(dest.modelsDir)).sort(), ['second.gguf', 'source.gguf'], 'no partial copy left behind')
  })

  it('refuses a name that is taken, a missing file, a file that is not GGUF, and an unknown version', async () => {
    await assert.rejects(addModelFile(dest.modelsDir, join(src.modelsDir, 'source.gguf')), { name: 'ModelExists' })
    await assert.rejects(addModelFile(dest.modelsDir, join(src.dataDir, 'nothing.gguf')), { name: 'ModelFileMissing' })
    const text = join(src.dataDir, 'notes.gguf')
    await writeFile(text, 'this is not a model, only some words that are long enough')
    await assert.rejects(addModelFile(dest.modelsDir, text), { name: 'ModelFileInvalid' })
    const future = tinyGguf({ seed: 4 })
    new DataView(future.buffer).setUint32(4, 99, true)
    await writeFile(join(src.dataDir, 'future.gguf'), future)
    await assert.rejects(addModelFile(dest.modelsDir, join(src.dataDir, 'future.gguf')), { name: 'ModelFileInvalid' })
    await assert.rejects(addModelFile(dest.modelsDir, join(src.modelsDir, 'source.gguf'), { name: '../escape' }), { name: 'ModelNameInvalid' })
    assert.deepEqual((await readdir(dest.modelsDir)).sort(), ['second.gguf', 'source.gguf'], 'nothing was copied')
  })

  it('two adds of one name at once: exactly one wins', async () => {
    const results = await Promise.allSettled([1, 2, 3].map(async () => await addModelFile(dest.modelsDir, join(src.modelsDir, 'source.gguf'), { name: 'race' })))
    assert.equal(results.filter(r => r.status === 'fulfilled').length, 1)
    assert.ok(results.filter(r => r.status === 'rejected').every(r => (r.reason as Error).name === 'ModelExists'))
  })

  it('a new model shows up in the engine\'s list without a restart', async () => {
    const engine = createEmbeddedBackend({ modelsDir: dest.modelsDir })
    const before = (await engine.models()).length
    await addModelFile(dest.modelsDir, join(src.modelsDir, 'source.gguf'), { name: 'late' })
    assert.equal((await engine.models()).length, before + 1)
    assert.equal(engine.status().engineLoaded, false)
    await engine.close()
  })

  it('importing the LLM part does not load the native engine', async () => {
    // A child process records every module it resolves while importing protocol/llm.
    const index = fileURLToPath(new URL('../../../protocol/llm/index.ts', import.meta.url))
    const script = `
      import { registerHooks } from 'node:module'
      const seen = []
      registerHooks({ resolve (specifier, context, next) { seen.push(specifier); return next(specifier, context) } })
      const llm = await import(${JSON.stringify(index)})
      llm.createEmbeddedBackend({ modelsDir: '/nonexistent' })
      console.log(JSON.stringify(seen))`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    const code = await new Promise<number | null>(resolve => child.on('close', resolve))
    assert.equal(code, 0)
    const seen = JSON.parse(out) as string[]
    assert.ok(seen.some(s => s.endsWith('engines/embedded.ts')), 'the hook saw the engine module')
    assert.ok(!seen.some(s => s.includes('node-llama-cpp')), 'node-llama-cpp was not imported')
  })
})
