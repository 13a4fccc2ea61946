// Tiny hand-written components for sandbox tests: core modules in WAT, embedded in the
// hive:agent world (or another one) and wrapped as components with jco's wasm-tools, so a test
// gets a real component in well under a second instead of a 15 s JS build.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { WIT_SOURCE, embedManifest } from '../../sandbox/index.ts'
import type { ManifestInput } from '../../sandbox/index.ts'

/** A core module implementing `run` with a bump allocator; `body` leaves the return pointer. */
export function agentWat (body: string, options: { imports?: string, pages?: number, data?: string } = {}): string {
  return `(module
  ${options.imports ?? ''}
  (memory (export "memory") ${options.pages ?? 1})
  (global $bump (mut i32) (i32.const 4096))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  ${options.data ?? ''}
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    ${body})
)`
}

/** Returns `ok(input)`. */
export const ECHO_BODY = `
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (local.get $ptr))
    (i32.store (i32.const 24) (local.get $len))
    (i32.const 16)`

/** Returns `err("no thanks")`. */
export const AGENT_ERROR = agentWat(`
    (i32.store8 (i32.const 16) (i32.const 1))
    (i32.store (i32.const 20) (i32.const 512))
    (i32.store (i32.const 24) (i32.const 9))
    (i32.const 16)`, { data: '(data (i32.const 512) "no thanks")' })

export const ECHO = agentWat(ECHO_BODY)
export const TRAP = agentWat('unreachable')
export const ENDLESS_LOOP = agentWat('(loop $forever (br $forever)) unreachable')
/** Grows one page at a time until refused, then traps like an allocator out of memory. */
export const MEMORY_BOMB = agentWat(`
    (loop $more (br_if $more (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
    unreachable`)

/** Logs its input at level info, then echoes it. */
export const LOGGER = agentWat(`
    (call $log (i32.const 1) (local.get $ptr) (local.get $len))
    ${ECHO_BODY}`, { imports: '(import "hive:agent/log@0.1.0" "log" (func $log (param i32 i32 i32)))' })

/** Logs its input, then loops forever: the log line says it is running. */
export const LOG_THEN_LOOP = agentWat(`
    (call $log (i32.const 1) (local.get $ptr) (local.get $len))
    (loop $forever (br $forever)) unreachable`, { imports: '(import "hive:agent/log@0.1.0" "log" (func $log (param i32 i32 i32)))' })

/**
 * Stores its input under key "k", appends it to the conversation, reads "k" back and returns
 * what it read; a failing host call comes back as the agent's error.
 */
export const CONTEXT_ROUNDTRIP = agentWat(`
    ;; set("k", input) -> result<_, string> at 64
    (call $set (i32.const 512) (i32.const 1) (local.get $ptr) (local.get $len) (i32.const 64))
    (if (i32.load8_u (i32.const 64)) (then (return (i32.const 64))))
    ;; append(input) -> result<_, string> at 64
    (call $append (local.get $ptr) (local.get $len) (i32.const 64))
    (if (i32.load8_u (i32.const 64)) (then (return (i32.const 64))))
    ;; get("k") -> result<option<string>, string> at 96: tag, then option tag at +4, ptr +8, len +12
    (call $get (i32.const 512) (i32.const 1) (i32.const 96))
    (if (i32.load8_u (i32.const 96)) (then (return (i32.const 96))))
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.load (i32.const 104)))
    (i32.store (i32.const 24) (i32.load (i32.const 108)))
    (i32.const 16)`, {
  imports: `(import "hive:agent/context@0.1.0" "get" (func $get (param i32 i32 i32)))
  (import "hive:agent/context@0.1.0" "set" (func $set (param i32 i32 i32 i32 i32)))
  (import "hive:agent/context@0.1.0" "append" (func $append (param i32 i32 i32)))`,
  data: '(data (i32.const 512) "k")'
})

/** Reads key "k" only. */
export const CONTEXT_READER = agentWat(`
    (call $get (i32.const 512) (i32.const 1) (i32.const 96))
    (if (i32.load8_u (i32.const 96)) (then (return (i32.const 96))))
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (i32.load (i32.const 104)))
    (i32.store (i32.const 24) (i32.load (i32.const 108)))
    (i32.const 16)`, {
  imports: '(import "hive:agent/context@0.1.0" "get" (func $get (param i32 i32 i32)))',
  data: '(data (i32.const 512) "k")'
})

/** Builds a component for the hive:agent world (or `wit`/`world`) from a core module in WAT. */
export async function watComponent (wat: string, options: { wit?: string, world?: string } = {}): Promise<Uint8Array> {
  const core = await parse(wat)
  const embedded = await componentEmbed({ binary: core, witSource: options.wit ?? WIT_SOURCE, world: options.world ?? 'agent', stringEncoding: 'utf8' })
  return await componentNew(embedded)
}

export const BASE_MANIFEST = { name: 'test-agent', version: '0.1.0', permissions: [], limits: { timeoutMs: 5000, memoryMiB: 1 } } satisfies ManifestInput

/** A component from WAT with a manifest embedded. */
export async function watAgent (wat: string, manifest: Partial<ManifestInput> = {}, options: { wit?: string, world?: string } = {}): Promise<Uint8Array> {
  return embedManifest(await watComponent(wat, options), { ...BASE_MANIFEST, ...manifest })
}

/** A WIT world importing WASI interfaces an agent must never get: files, environment, sockets. */
export const WASI_PROBE_WIT = `package hive:probe;

world probe {
  import wasi:filesystem/preopens@0.2.0;
  import wasi:cli/environment@0.2.0;
  import wasi:sockets/tcp-create-socket@0.2.0;
  export run: func(input: string) -> result<string, string>;
}

package wasi:filesystem@0.2.0 {
  interface preopens {
    get-directories: func() -> list<string>;
  }
}

package wasi:cli@0.2.0 {
  interface environment {
    get-environment: func() -> list<tuple<string, string>>;
  }
}

package wasi:sockets@0.2.0 {
  interface tcp-create-socket {
    create-tcp-socket: func(family: u8) -> result<u32, u8>;
  }
}
`

/** A world that is not hive:agent: `run` takes and returns numbers. */
export const OTHER_WORLD_WIT = `package other:thing;

world counter {
  export run: func(n: u32) -> u32;
}
`

export const OTHER_WORLD_WAT = `(module
  (memory (export "memory") 1)
  (func (export "run") (param i32) (result i32) (i32.add (local.get 0) (i32.const 1))))`

export async function tempDir (prefix = 'hive-sandbox-'): Promise<{ path: string, remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, remove: async () => { await rm(path, { recursive: true, force: true }) } }
}
