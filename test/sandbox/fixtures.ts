// Tiny hand-written components for sandbox tests: core modules in WAT, embedded in the
// hive:agent world (or another one) and wrapped as components with jco's wasm-tools, so a test
// gets a real component in well under a second instead of a 15 s JS build.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { WIT_SOURCE, embedManifest } from '../../sandbox/index.ts'
import type { ManifestInput } from '../../sandbox/index.ts'

/**
 * A core module implementing `run` with a bump allocator from `heap` (default 4096) that grows
 * memory as needed; `body` leaves the return pointer.
 */
export function agentWat (body: string, options: { imports?: string, pages?: number, data?: string, heap?: number } = {}): string {
  return `(module
  ${options.imports ?? ''}
  (memory (export "memory") ${options.pages ?? 1})
  (global $bump (mut i32) (i32.const ${options.heap ?? 4096}))
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1))) (i32.sub (i32.const 0) (local.get 2))))
    (local.set $end (i32.add (local.get $p) (local.get 3)))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then (if (i32.eq (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 16))) (i32.const -1))
        (then unreachable))))
    (global.set $bump (local.get $end))
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

/**
 * Helpers for agents that build a string output after their host calls: `$emit` appends bytes,
 * `$char` one byte, `$num` a number in decimal, `$out` returns `ok(output)` (or `err(output)`
 * with tag 1). The output takes contiguous space from the allocator, so nothing may be allocated
 * between the first emit and `$out`.
 */
const EMITTER = `
  (global $start (mut i32) (i32.const -1))
  (func $take (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (local.get $n)))
    (if (i32.eq (global.get $start) (i32.const -1)) (then (global.set $start (local.get $p))))
    (local.get $p))
  (func $emit (param $p i32) (param $n i32)
    (memory.copy (call $take (local.get $n)) (local.get $p) (local.get $n)))
  (func $char (param $c i32)
    (i32.store8 (call $take (i32.const 1)) (local.get $c)))
  (func $num (param $n i32)
    (local $div i32)
    (local.set $div (i32.const 1))
    (block $done (loop $up
      (br_if $done (i32.lt_u (i32.div_u (local.get $n) (local.get $div)) (i32.const 10)))
      (local.set $div (i32.mul (local.get $div) (i32.const 10)))
      (br $up)))
    (block $end (loop $digits
      (call $char (i32.add (i32.const 48) (i32.rem_u (i32.div_u (local.get $n) (local.get $div)) (i32.const 10))))
      (br_if $end (i32.eq (local.get $div) (i32.const 1)))
      (local.set $div (i32.div_u (local.get $div) (i32.const 10)))
      (br $digits))))
  (func $out (param $tag i32) (result i32)
    (if (i32.eq (global.get $start) (i32.const -1)) (then (global.set $start (global.get $bump))))
    (i32.store8 (i32.const 16) (local.get $tag))
    (i32.store (i32.const 20) (global.get $start))
    (i32.store (i32.const 24) (i32.sub (global.get $bump) (global.get $start)))
    (i32.const 16))`

/** Strings laid out from `at` as data, and a list<string> of them at `listAt`. */
function stringList (strings: readonly string[], listAt: number, at: number): string {
  const parts: string[] = []
  let p = at
  strings.forEach((s, i) => {
    const bytes = Buffer.from(s)
    parts.push(`(data (i32.const ${p}) "${[...bytes].map(b => '\\' + b.toString(16).padStart(2, '0')).join('')}")`)
    parts.push(`(data (i32.const ${listAt + 8 * i}) "${le32(p)}${le32(bytes.length)}")`)
    p += bytes.length
  })
  return parts.join('\n  ')
}

function le32 (n: number): string {
  const b = Buffer.alloc(4)
  b.writeUInt32LE(n)
  return [...b].map(x => '\\' + x.toString(16).padStart(2, '0')).join('')
}

/** The `error` variant's cases in WIT order: an llm agent below reports a failure by its index. */
export const LLM_ERROR_CASES = ['model-not-found', 'budget-exceeded', 'not-permitted', 'unavailable', 'too-large', 'invalid-input'] as const

/** Splits an llm fixture's `err` output `"<case index>|<message>"` into the case and message. */
export function llmError (agentError: string): { case: string, message: string } {
  const [index = '', ...rest] = agentError.split('|')
  return { case: LLM_ERROR_CASES[Number(index)] ?? `unknown ${index}`, message: rest.join('|') }
}

const LLM_ERROR_OUT = `
    ;; err: "<case index>|<message>"
    (call $num (i32.load8_u (i32.add (global.get $ret) (i32.const 4))))
    (call $char (i32.const 124))
    (call $emit (i32.load (i32.add (global.get $ret) (i32.const 8))) (i32.load (i32.add (global.get $ret) (i32.const 12))))
    (return (call $out (i32.const 1)))`

/**
 * Calls `llm.chat` once with its input as the one user message, `models` and `maxTokens`, and
 * returns `ok("text|model|tokens-in|tokens-out|finish|route-case|route-name")` (finish and route
 * case as their index in WIT order), or `err("<error case index>|<message>")`.
 */
export function llmChatWat (options: { models?: string[], maxTokens?: number, calls?: number, seed?: number } = {}): string {
  const models = options.models ?? []
  return agentWat(`
    (local $i i32)
    ;; messages: one { role: user, content: input } at 1024
    (i32.store8 (i32.const 1024) (i32.const 1))
    (i32.store (i32.const 1028) (local.get $ptr))
    (i32.store (i32.const 1032) (local.get $len))
    (loop $again
      (call $chat
        (i32.const 1100) (i32.const ${models.length})
        (i32.const 1024) (i32.const 1)
        (i32.const ${options.maxTokens ?? 16})
        (i32.const 0) (f32.const 0)
        (i32.const ${options.seed != null ? 1 : 0}) (i32.const ${options.seed ?? 0})
        (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (global.get $ret))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.load8_u (global.get $ret)) (then ${LLM_ERROR_OUT}))
      (br_if $again (i32.lt_u (local.get $i) (i32.const ${options.calls ?? 1}))))
    ;; ok: chat-result at ret+4
    (call $emit (i32.load (i32.add (global.get $ret) (i32.const 4))) (i32.load (i32.add (global.get $ret) (i32.const 8))))
    (call $char (i32.const 124))
    (call $emit (i32.load (i32.add (global.get $ret) (i32.const 12))) (i32.load (i32.add (global.get $ret) (i32.const 16))))
    (call $char (i32.const 124))
    (call $num (i32.load (i32.add (global.get $ret) (i32.const 20))))
    (call $char (i32.const 124))
    (call $num (i32.load (i32.add (global.get $ret) (i32.const 24))))
    (call $char (i32.const 124))
    (call $num (i32.load8_u (i32.add (global.get $ret) (i32.const 28))))
    (call $char (i32.const 124))
    (call $num (i32.load8_u (i32.add (global.get $ret) (i32.const 32))))
    (call $char (i32.const 124))
    (if (i32.load8_u (i32.add (global.get $ret) (i32.const 32)))
      (then (call $emit (i32.load (i32.add (global.get $ret) (i32.const 36))) (i32.load (i32.add (global.get $ret) (i32.const 40))))))
    (call $out (i32.const 0))`, {
    heap: 16384,
    imports: `(import "hive:agent/llm@0.1.0" "chat" (func $chat (param i32 i32 i32 i32 i32 i32 f32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (global $ret i32 (i32.const 4096))
  ${EMITTER}`,
    data: stringList(models, 1100, 1300)
  })
}

/**
 * Calls `llm.embed(model, [input, input])` and returns
 * `ok("model|vectors|first vector's length|first value × 1000|tokens-in|route-case|route-name")`,
 * or `err("<error case index>|<message>")`.
 */
export function llmEmbedWat (model: string): string {
  return agentWat(`
    ;; texts: [input, input] at 1024
    (i32.store (i32.const 1024) (local.get $ptr))
    (i32.store (i32.const 1028) (local.get $len))
    (i32.store (i32.const 1032) (local.get $ptr))
    (i32.store (i32.const 1036) (local.get $len))
    (call $embed (i32.load (i32.const 1100)) (i32.load (i32.const 1104)) (i32.const 1024) (i32.const 2) (global.get $ret))
    (if (i32.load8_u (global.get $ret)) (then ${LLM_ERROR_OUT}))
    ;; ok: embed-result at ret+4: model +4, vectors +12, tokens-in +20, route +24
    (call $emit (i32.load (i32.add (global.get $ret) (i32.const 4))) (i32.load (i32.add (global.get $ret) (i32.const 8))))
    (call $char (i32.const 124))
    (call $num (i32.load (i32.add (global.get $ret) (i32.const 16))))
    (call $char (i32.const 124))
    (call $num (i32.load (i32.add (i32.load (i32.add (global.get $ret) (i32.const 12))) (i32.const 4))))
    (call $char (i32.const 124))
    (call $num (i32.trunc_f32_u (f32.mul (f32.const 1000) (f32.load (i32.load (i32.load (i32.add (global.get $ret) (i32.const 12))))))))
    (call $char (i32.const 124))
    (call $num (i32.load (i32.add (global.get $ret) (i32.const 20))))
    (call $char (i32.const 124))
    (call $num (i32.load8_u (i32.add (global.get $ret) (i32.const 24))))
    (call $char (i32.const 124))
    (if (i32.load8_u (i32.add (global.get $ret) (i32.const 24)))
      (then (call $emit (i32.load (i32.add (global.get $ret) (i32.const 28))) (i32.load (i32.add (global.get $ret) (i32.const 32))))))
    (call $out (i32.const 0))`, {
    heap: 16384,
    imports: `(import "hive:agent/llm@0.1.0" "embed" (func $embed (param i32 i32 i32 i32 i32)))
  (global $ret i32 (i32.const 4096))
  ${EMITTER}`,
    data: stringList([model], 1100, 1300)
  })
}

/** Reads the last `n` conversation entries (n is its input's length) and returns `ok("count|role:text|…")`. */
export const CONVERSATION_READER = agentWat(`
    (local $i i32) (local $e i32)
    (call $conversation (local.get $len) (global.get $ret))
    (if (i32.load8_u (global.get $ret)) (then
      (call $emit (i32.load (i32.add (global.get $ret) (i32.const 4))) (i32.load (i32.add (global.get $ret) (i32.const 8))))
      (return (call $out (i32.const 1)))))
    (call $num (i32.load (i32.add (global.get $ret) (i32.const 8))))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.add (global.get $ret) (i32.const 8)))))
      (local.set $e (i32.add (i32.load (i32.add (global.get $ret) (i32.const 4))) (i32.mul (local.get $i) (i32.const 16))))
      (call $char (i32.const 124))
      (call $emit (i32.load (local.get $e)) (i32.load (i32.add (local.get $e) (i32.const 4))))
      (call $char (i32.const 58))
      (call $emit (i32.load (i32.add (local.get $e) (i32.const 8))) (i32.load (i32.add (local.get $e) (i32.const 12))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each)))
    (call $out (i32.const 0))`, {
  heap: 16384,
  imports: `(import "hive:agent/context@0.1.0" "conversation" (func $conversation (param i32 i32)))
  (global $ret i32 (i32.const 4096))
  ${EMITTER}`
})

const KV_ERR_OUT = `
    (call $emit (i32.load (i32.add (global.get $ret) (i32.const 4))) (i32.load (i32.add (global.get $ret) (i32.const 8))))
    (return (call $out (i32.const 1)))`

/** The http `error` variant's cases in WIT order. */
export const HTTP_ERROR_CASES = ['not-permitted', 'host-not-granted', 'timeout', 'too-large', 'connection-failed', 'invalid-input'] as const

/** Splits an http fixture's `err` output into the case and message. */
export function httpError (agentError: string): { case: string, message: string } {
  const [index = '', ...rest] = agentError.split('|')
  return { case: HTTP_ERROR_CASES[Number(index)] ?? `unknown ${index}`, message: rest.join('|') }
}

/**
 * Calls `http.request(method, input as the URL, [], [], options)` `calls` times (stopping at the
 * first failure) and returns `ok("status|body")` of the last, or `err("<error case index>|<message>")`.
 */
export function httpWat (options: { method?: string, calls?: number, timeoutMs?: number, maxBytes?: number } = {}): string {
  const method = options.method ?? 'GET'
  const opt = (v: number | undefined): string => v === undefined ? '(i32.const 0) (i32.const 0)' : `(i32.const 1) (i32.const ${v})`
  return agentWat(`
    (local $i i32)
    (loop $again
      (call $request
        (i32.const 1100) (i32.const ${Buffer.byteLength(method)})
        (local.get $ptr) (local.get $len)
        (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0)
        ${opt(options.timeoutMs)} ${opt(options.maxBytes)}
        (global.get $ret))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (i32.load8_u (global.get $ret)) (then ${LLM_ERROR_OUT}))
      (br_if $again (i32.lt_u (local.get $i) (i32.const ${options.calls ?? 1}))))
    ;; ok: response at ret+4: status u16 +4, headers +8/+12, body +16/+20
    (call $num (i32.load16_u (i32.add (global.get $ret) (i32.const 4))))
    (call $char (i32.const 124))
    (call $emit (i32.load (i32.add (global.get $ret) (i32.const 16))) (i32.load (i32.add (global.get $ret) (i32.const 20))))
    (call $out (i32.const 0))`, {
    heap: 16384,
    imports: `(import "hive:agent/http@0.1.0" "request" (func $request (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (global $ret i32 (i32.const 4096))
  ${EMITTER}`,
    data: `(data (i32.const 1100) "${method}")`
  })
}

/**
 * kv calls by input: `set k v`, `get k`, `del k`, `list prefix limit` (one per line is too much
 * WAT; one op per run). Returns `ok(...)`: nothing for set, the value or `<none>` for get,
 * `1`/`0` for del, the keys joined by `,` for list; or `err(message)`.
 */
export const KV_AGENT = agentWat(`
    (local $op i32) (local $k i32) (local $klen i32) (local $v i32) (local $vlen i32) (local $i i32) (local $n i32) (local $e i32)
    ;; input: one letter op, a space, key, [a space, value]
    (local.set $op (i32.load8_u (local.get $ptr)))
    (local.set $k (i32.add (local.get $ptr) (i32.const 2)))
    (local.set $klen (i32.sub (local.get $len) (i32.const 2)))
    (local.set $i (i32.const 0))
    (block $found (loop $scan
      (br_if $found (i32.ge_u (local.get $i) (local.get $klen)))
      (if (i32.eq (i32.load8_u (i32.add (local.get $k) (local.get $i))) (i32.const 32)) (then
        (local.set $v (i32.add (local.get $k) (i32.add (local.get $i) (i32.const 1))))
        (local.set $vlen (i32.sub (local.get $klen) (i32.add (local.get $i) (i32.const 1))))
        (local.set $klen (local.get $i))
        (br $found)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $scan)))
    ;; s: set
    (if (i32.eq (local.get $op) (i32.const 115)) (then
      (call $set (local.get $k) (local.get $klen) (local.get $v) (local.get $vlen) (global.get $ret))
      (if (i32.load8_u (global.get $ret)) (then ${KV_ERR_OUT}))
      (return (call $out (i32.const 0)))))
    ;; g: get
    (if (i32.eq (local.get $op) (i32.const 103)) (then
      (call $get (local.get $k) (local.get $klen) (global.get $ret))
      (if (i32.load8_u (global.get $ret)) (then ${KV_ERR_OUT}))
      (if (i32.load8_u (i32.add (global.get $ret) (i32.const 4)))
        (then (call $emit (i32.load (i32.add (global.get $ret) (i32.const 8))) (i32.load (i32.add (global.get $ret) (i32.const 12)))))
        (else (call $emit (i32.const 1200) (i32.const 6))))
      (return (call $out (i32.const 0)))))
    ;; d: delete
    (if (i32.eq (local.get $op) (i32.const 100)) (then
      (call $delete (local.get $k) (local.get $klen) (global.get $ret))
      (if (i32.load8_u (global.get $ret)) (then ${KV_ERR_OUT}))
      (call $num (i32.load8_u (i32.add (global.get $ret) (i32.const 4))))
      (return (call $out (i32.const 0)))))
    ;; l: list prefix, limit = the value's length
    (call $list (local.get $k) (local.get $klen) (local.get $vlen) (global.get $ret))
    (if (i32.load8_u (global.get $ret)) (then ${KV_ERR_OUT}))
    (local.set $n (i32.load (i32.add (global.get $ret) (i32.const 8))))
    (local.set $i (i32.const 0))
    (block $done (loop $each
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (if (local.get $i) (then (call $char (i32.const 44))))
      (local.set $e (i32.add (i32.load (i32.add (global.get $ret) (i32.const 4))) (i32.mul (local.get $i) (i32.const 8))))
      (call $emit (i32.load (local.get $e)) (i32.load (i32.add (local.get $e) (i32.const 4))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $each)))
    (call $out (i32.const 0))`, {
  heap: 16384,
  imports: `(import "hive:agent/kv@0.1.0" "get" (func $get (param i32 i32 i32)))
  (import "hive:agent/kv@0.1.0" "set" (func $set (param i32 i32 i32 i32 i32)))
  (import "hive:agent/kv@0.1.0" "delete" (func $delete (param i32 i32 i32)))
  (import "hive:agent/kv@0.1.0" "list" (func $list (param i32 i32 i32 i32)))
  (global $ret i32 (i32.const 4096))
  ${EMITTER}`,
  data: '(data (i32.const 1200) "<none>")'
})
