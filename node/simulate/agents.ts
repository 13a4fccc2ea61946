// The agents a simulated workload runs when it names no component of its own: real WebAssembly
// components (built here from a few lines of WAT with jco's tools, in well under a second), so a
// task runs in the sandbox and lands in the ledger like any other.

import { componentEmbed, componentNew, parse } from '@bytecodealliance/jco'
import { WIT_SOURCE, WORLD_NAME, embedManifest } from '../../sandbox/index.ts'

/** Loop turns the `work` agent spins per byte of its input. */
export const TURNS_PER_UNIT = 100_000

function moduleWat (body: string, data = ''): string {
  return `(module
  (memory (export "memory") 1)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1))) (i32.sub (i32.const 0) (local.get 2))))
    (if (i32.gt_u (i32.add (local.get $p) (local.get 3)) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))) (i32.const -1)) (then unreachable))))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  ${data}
  (func (export "run") (param $ptr i32) (param $len i32) (result i32)
    (local $i i32)
    ${body}))`
}

/** Spins TURNS_PER_UNIT turns per byte of input, then answers ok(input): the input sets the work. */
const WORK = moduleWat(`
    (local.set $i (i32.mul (local.get $len) (i32.const ${TURNS_PER_UNIT})))
    (block $done (loop $spin
      (br_if $done (i32.eqz (local.get $i)))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $spin)))
    (i32.store8 (i32.const 16) (i32.const 0))
    (i32.store (i32.const 20) (local.get $ptr))
    (i32.store (i32.const 24) (local.get $len))
    (i32.const 16)`)

/** Answers err("simulated failure") at once. */
const FAIL = moduleWat(`
    (i32.store8 (i32.const 16) (i32.const 1))
    (i32.store (i32.const 20) (i32.const 512))
    (i32.store (i32.const 24) (i32.const 17))
    (i32.const 16)`, '(data (i32.const 512) "simulated failure")')

async function build (wat: string, name: string): Promise<Uint8Array> {
  const core = await parse(wat)
  const embedded = await componentEmbed({ binary: core, witSource: WIT_SOURCE, world: WORLD_NAME, stringEncoding: 'utf8' })
  return embedManifest(await componentNew(embedded), { name, version: '0.1.0', permissions: [], limits: { timeoutMs: 120_000, memoryMiB: 4 } })
}

export type BuiltinAgent = 'work' | 'fail'

export async function builtinAgent (agent: BuiltinAgent): Promise<Uint8Array> {
  return agent === 'work' ? build(WORK, 'simulate-work') : build(FAIL, 'simulate-fail')
}
