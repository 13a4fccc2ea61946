// The manifest section, the component reader's verdicts, memory capping and the narrowed WIT.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parse } from '@bytecodealliance/jco'
import { agentDigest, embedManifest, inspectAgentBytes, readManifest } from '../../sandbox/index.ts'
import { appendCustomSection, capMemory, readComponent, wasmKind } from '../../sandbox/binary.ts'
import { MANIFEST_SECTION } from '../../sandbox/manifest.ts'
import { narrowWit } from '../../sandbox/wit.ts'
import { wasm } from '../../sandbox/wasm.ts'
import type { WasmMemory } from '../../sandbox/wasm.ts'
import { BASE_MANIFEST, CONTEXT_ROUNDTRIP, ECHO, agentWat, watComponent } from './fixtures.ts'

describe('manifest', () => {
  it('travels in a custom section that the digest covers', async () => {
    const component = await watComponent(ECHO)
    const a = embedManifest(component, { ...BASE_MANIFEST, description: 'first' })
    const b = embedManifest(a, { ...BASE_MANIFEST, description: 'second' })
    assert.equal(readManifest(a).description, 'first')
    assert.equal(readManifest(b).description, 'second')
    assert.equal(readComponent(b).customSections.filter(s => s.name === MANIFEST_SECTION).length, 1, 're-embedding replaces')
    assert.notEqual(agentDigest(a), agentDigest(b))
    assert.deepEqual(readManifest(embedManifest(component, { name: 'x', version: '1.0.0' })).limits, { timeoutMs: 10_000, memoryMiB: 64 })
  })

  for (const [what, manifest, path] of [
    ['a bad name', { ...BASE_MANIFEST, name: 'Has Spaces' }, 'name'],
    ['an unknown permission', { ...BASE_MANIFEST, permissions: ['filesystem'] }, 'permissions.0'],
    ['a repeated permission', { ...BASE_MANIFEST, permissions: ['log', 'log'] }, 'permissions'],
    ['an unknown field', { ...BASE_MANIFEST, network: true }, '(top)'],
    ['a zero timeout', { ...BASE_MANIFEST, limits: { timeoutMs: 0, memoryMiB: 1 } }, 'limits.timeoutMs'],
    ['a memory limit that is not whole MiB', { ...BASE_MANIFEST, limits: { timeoutMs: 10, memoryMiB: 1.5 } }, 'limits.memoryMiB']
  ] as const) {
    it(`refuses ${what}, naming the field`, async () => {
      const component = await watComponent(ECHO)
      assert.throws(() => embedManifest(component, manifest as never), (err: Error) => {
        assert.equal(err.name, 'ManifestInvalid')
        assert.ok(err.message.includes(`${path}:`), err.message)
        return true
      })
    })
  }

  it('refuses a manifest section that is not JSON', async () => {
    const component = appendCustomSection(await watComponent(ECHO), MANIFEST_SECTION, new TextEncoder().encode('name = "x"'))
    assert.throws(() => readManifest(component), { name: 'ManifestInvalid' })
  })
})

describe('component reader', () => {
  it('tells modules, components and other files apart', async () => {
    assert.equal(wasmKind(await parse(ECHO)), 'module')
    assert.equal(wasmKind(await watComponent(ECHO)), 'component')
    assert.throws(() => wasmKind(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0])), { name: 'NotWebAssembly' })
  })

  it('lists each imported host function and the permission it needs', async () => {
    const info = inspectAgentBytes(embedManifest(await watComponent(CONTEXT_ROUNDTRIP), BASE_MANIFEST))
    assert.deepEqual(info.imports, [{
      name: 'hive:agent/context@0.1.0',
      functions: ['get', 'set', 'append'],
      permissions: ['context:read', 'context:write'],
      known: true
    }])
    assert.deepEqual(info.exports, ['run'])
  })

  it('refuses a truncated component', async () => {
    const component = await watComponent(ECHO)
    assert.throws(() => readComponent(component.subarray(0, component.byteLength - 7)), { name: 'UnsupportedComponent' })
  })
})

describe('memory cap', () => {
  it('writes a maximum into the memory section that WebAssembly then enforces', async () => {
    const capped = capMemory(await parse(agentWat('unreachable', { pages: 2 })), 5)
    assert.deepEqual(capped.memories, [{ min: 2, max: 5 }])
    const instance = await wasm.instantiate(await wasm.compile(capped.bytes))
    const memory = instance.exports.memory as WasmMemory
    assert.equal(memory.grow(3), 2)
    assert.throws(() => memory.grow(1), RangeError)
  })

  it('keeps a lower maximum the module already declares', async () => {
    const wat = agentWat('unreachable').replace('(memory (export "memory") 1)', '(memory (export "memory") 1 3)')
    assert.deepEqual(capMemory(await parse(wat), 100).memories, [{ min: 1, max: 3 }])
  })

  it('refuses a module whose initial memory exceeds the cap', async () => {
    const module = await parse(agentWat('unreachable', { pages: 20 }))
    assert.throws(() => capMemory(module, 16), (err: Error) => {
      assert.equal(err.name, 'MemoryLimitTooLow')
      assert.match(err.message, /1\.3 MiB.*1 MiB/)
      return true
    })
  })
})

describe('narrowed WIT', () => {
  it('keeps only granted functions and imports only interfaces with some', () => {
    const wit = narrowWit(['context:read'])
    assert.match(wit, /get: func/)
    assert.doesNotMatch(wit, /set: func|append: func|log: func/)
    assert.match(wit, /^\s*import context;$/m)
    assert.doesNotMatch(wit, /^\s*import log;$/m)
    assert.doesNotMatch(narrowWit([]), /^\s*import /m)
  })

  it('keeps, when given, only the functions a source imports; llm:cloud alone imports nothing', () => {
    const wit = narrowWit(['llm', 'context:read', 'context:write'], new Map([['llm', new Set(['chat'])], ['context', new Set(['conversation'])]]))
    assert.match(wit, /chat: func/)
    assert.match(wit, /conversation: func/)
    assert.doesNotMatch(wit, /embed: func|get: func|set: func|append: func/)
    assert.match(wit, /^\s*import llm;$/m)
    assert.doesNotMatch(narrowWit(['log', 'llm'], new Map([['log', 'all']])), /^\s*import llm;$/m)
    assert.match(narrowWit(['llm'], new Map([['llm', 'all']])), /embed: func/)
    assert.doesNotMatch(narrowWit(['llm:cloud']), /^\s*import /m)
  })
})
