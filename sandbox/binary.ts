// Reading and patching WebAssembly binaries without running them.
//
// Two jobs need the bytes themselves rather than a toolchain's summary: telling what a file is
// (core module, component, neither), and seeing exactly which host functions a component imports
// and which type its `run` export has, so a component is judged before any of its code runs.
// The reader follows the component-model binary format (design/mvp/Binary.md) for the top-level
// sections that shape the import and export index spaces, and skips everything else by size.
// Anything it does not understand is refused: for a permission check, failing closed is right.
//
// The same file also patches core modules: a memory cap is written into the memory section as a
// maximum before compiling, which is the only limit WebAssembly itself enforces on growth.

import { MemoryLimitTooLowError, NotAComponentError, NotWebAssemblyError, UnsupportedComponentError } from './errors.ts'

const MAGIC = [0x00, 0x61, 0x73, 0x6d]
/** Bytes of one WebAssembly page. */
export const PAGE_BYTES = 65536

export type WasmKind = 'module' | 'component'

/** Says whether `bytes` is a core module or a component; anything else is NotWebAssembly. */
export function wasmKind (bytes: Uint8Array): WasmKind {
  if (bytes.byteLength < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new NotWebAssemblyError('the file is not WebAssembly (it does not start with the \\0asm magic); pass a .wasm component built with `hive-node agent build`')
  }
  // Core modules carry version 1 and layer 0; components a pre-standard version and layer 1.
  if (bytes[6] === 0x00 && bytes[7] === 0x00) return 'module'
  if (bytes[6] === 0x01 && bytes[7] === 0x00) return 'component'
  throw new NotWebAssemblyError(`unknown WebAssembly layer ${bytes[6]}.${bytes[7]}; expected a component`)
}

class Reader {
  readonly bytes: Uint8Array
  pos: number
  readonly end: number

  constructor (bytes: Uint8Array, pos: number, end: number) {
    this.bytes = bytes
    this.pos = pos
    this.end = end
  }

  get done (): boolean { return this.pos >= this.end }

  u8 (): number {
    if (this.pos >= this.end) throw new UnsupportedComponentError('unexpected end of section')
    return this.bytes[this.pos++] as number
  }

  peek (): number {
    if (this.pos >= this.end) throw new UnsupportedComponentError('unexpected end of section')
    return this.bytes[this.pos] as number
  }

  /** Unsigned LEB128 of at most 32 bits. */
  u32 (): number {
    let result = 0
    let shift = 0
    for (let i = 0; i < 5; i++) {
      const b = this.u8()
      result += (b & 0x7f) * 2 ** shift
      if ((b & 0x80) === 0) {
        if (result > 0xffffffff) break
        return result
      }
      shift += 7
    }
    throw new UnsupportedComponentError('malformed LEB128 integer')
  }

  /** Signed LEB128 of at most 33 bits (value types: negative = primitive opcode). */
  s33 (): number {
    let result = 0
    let shift = 0
    for (let i = 0; i < 5; i++) {
      const b = this.u8()
      result += (b & 0x7f) * 2 ** shift
      shift += 7
      if ((b & 0x80) === 0) {
        if ((b & 0x40) !== 0) result -= 2 ** shift
        return result
      }
    }
    throw new UnsupportedComponentError('malformed LEB128 integer')
  }

  take (n: number): Uint8Array {
    if (n > this.end - this.pos) throw new UnsupportedComponentError('length runs past the end of its section')
    const out = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  name (): string {
    return UTF8.decode(this.take(this.u32()))
  }

  vec<T> (each: () => T): T[] {
    const n = this.u32()
    if (n > this.end - this.pos) throw new UnsupportedComponentError('vector longer than its section')
    const out: T[] = []
    for (let i = 0; i < n; i++) out.push(each())
    return out
  }
}

const UTF8 = new TextDecoder('utf-8', { fatal: true })

// ---- component model types (only as much as the checks need) ----

export type ValType = { prim: string } | { ref: number }

export type DefType =
  | { kind: 'result', ok?: ValType, err?: ValType }
  | { kind: 'value', what: string }
  | { kind: 'func', params: Array<[string, ValType]>, result?: ValType, async: boolean }
  | { kind: 'instance', exports: Array<{ name: string, sort: Sort }> }
  | { kind: 'component' }
  | { kind: 'resource' }
  | { kind: 'unknown' }

export type Sort = 'core' | 'func' | 'value' | 'type' | 'component' | 'instance' | 'module'

const PRIMS: Record<number, string> = {
  0x7f: 'bool', 0x7e: 's8', 0x7d: 'u8', 0x7c: 's16', 0x7b: 'u16', 0x7a: 's32', 0x79: 'u32',
  0x78: 's64', 0x77: 'u64', 0x76: 'f32', 0x75: 'f64', 0x74: 'char', 0x73: 'string', 0x64: 'error-context'
}

function valType (r: Reader): ValType {
  const v = r.s33()
  if (v >= 0) return { ref: v }
  const prim = PRIMS[v + 0x80]
  if (prim === undefined) throw new UnsupportedComponentError(`unknown value type 0x${(v + 0x80).toString(16)}`)
  return { prim }
}

function optional<T> (r: Reader, read: () => T): T | undefined {
  const tag = r.u8()
  if (tag === 0x00) return undefined
  if (tag === 0x01) return read()
  throw new UnsupportedComponentError(`bad optional tag 0x${tag.toString(16)}`)
}

function sort (r: Reader): Sort {
  const s = r.u8()
  switch (s) {
    case 0x00: r.u8(); return 'core'
    case 0x01: return 'func'
    case 0x02: return 'value'
    case 0x03: return 'type'
    case 0x04: return 'component'
    case 0x05: return 'instance'
    default: throw new UnsupportedComponentError(`unknown sort 0x${s.toString(16)}`)
  }
}

/** An import or export name: the plain name plus attributes we only need to skip. */
function externName (r: Reader): string {
  const tag = r.u8()
  const name = r.name()
  if (tag === 0x00 || tag === 0x01) return name
  if (tag === 0x02) {
    r.vec(() => { r.u8(); r.name() })
    return name
  }
  throw new UnsupportedComponentError(`unknown name encoding 0x${tag.toString(16)}`)
}

interface ExternType { sort: Sort, typeIdx?: number }

function externType (r: Reader): ExternType {
  const tag = r.u8()
  switch (tag) {
    case 0x00:
      if (r.u8() !== 0x11) throw new UnsupportedComponentError('bad core module extern type')
      r.u32()
      return { sort: 'module' }
    case 0x01: return { sort: 'func', typeIdx: r.u32() }
    case 0x02: {
      const b = r.u8()
      if (b === 0x00) r.u32()
      else if (b === 0x01) valType(r)
      else throw new UnsupportedComponentError('bad value bound')
      return { sort: 'value' }
    }
    case 0x03: {
      const b = r.u8()
      if (b === 0x00) return { sort: 'type', typeIdx: r.u32() }
      if (b === 0x01) return { sort: 'type' }
      throw new UnsupportedComponentError('bad type bound')
    }
    case 0x04: return { sort: 'component', typeIdx: r.u32() }
    case 0x05: return { sort: 'instance', typeIdx: r.u32() }
    default: throw new UnsupportedComponentError(`unknown extern type 0x${tag.toString(16)}`)
  }
}

function skipAlias (r: Reader): Sort {
  const s = sort(r)
  const target = r.u8()
  if (target === 0x00 || target === 0x01) { r.u32(); r.name() } else if (target === 0x02) { r.u32(); r.u32() } else {
    throw new UnsupportedComponentError(`unknown alias target 0x${target.toString(16)}`)
  }
  return s
}

function labelled (r: Reader): [string, ValType] {
  return [r.name(), valType(r)]
}

function defType (r: Reader): DefType {
  const op = r.u8()
  if (PRIMS[op] !== undefined) return { kind: 'value', what: PRIMS[op] }
  switch (op) {
    case 0x72: r.vec(() => labelled(r)); return { kind: 'value', what: 'record' }
    case 0x71: r.vec(() => { r.name(); optional(r, () => valType(r)); if (r.u8() !== 0x00) throw new UnsupportedComponentError('refining variant cases are not supported') }); return { kind: 'value', what: 'variant' }
    case 0x70: valType(r); return { kind: 'value', what: 'list' }
    case 0x67: valType(r); r.u32(); return { kind: 'value', what: 'list' }
    case 0x6f: r.vec(() => valType(r)); return { kind: 'value', what: 'tuple' }
    case 0x6e: r.vec(() => r.name()); return { kind: 'value', what: 'flags' }
    case 0x6d: r.vec(() => r.name()); return { kind: 'value', what: 'enum' }
    case 0x6b: valType(r); return { kind: 'value', what: 'option' }
    case 0x6a: {
      const ok = optional(r, () => valType(r))
      const err = optional(r, () => valType(r))
      return { kind: 'result', ...(ok !== undefined ? { ok } : {}), ...(err !== undefined ? { err } : {}) }
    }
    case 0x69: r.u32(); return { kind: 'value', what: 'own' }
    case 0x68: r.u32(); return { kind: 'value', what: 'borrow' }
    case 0x66: optional(r, () => valType(r)); return { kind: 'value', what: 'stream' }
    case 0x65: optional(r, () => valType(r)); return { kind: 'value', what: 'future' }
    case 0x63: valType(r); valType(r); return { kind: 'value', what: 'map' }
    case 0x40:
    case 0x43: {
      const params = r.vec(() => labelled(r))
      const tag = r.u8()
      let result: ValType | undefined
      if (tag === 0x00) result = valType(r)
      else if (tag === 0x01) {
        if (r.u8() !== 0x00) throw new UnsupportedComponentError('named results are not supported')
      } else throw new UnsupportedComponentError('bad result list')
      return { kind: 'func', params, ...(result !== undefined ? { result } : {}), async: op === 0x43 }
    }
    case 0x41:
      r.vec(() => {
        const d = r.peek()
        if (d === 0x03) { r.u8(); externName(r); externType(r) } else instanceDecl(r)
      })
      return { kind: 'component' }
    case 0x42: {
      const exports: Array<{ name: string, sort: Sort }> = []
      r.vec(() => {
        const e = instanceDecl(r)
        if (e !== undefined) exports.push(e)
      })
      return { kind: 'instance', exports }
    }
    case 0x3f: r.u8(); optional(r, () => r.u32()); return { kind: 'resource' }
    case 0x3e: r.u8(); r.u32(); optional(r, () => r.u32()); return { kind: 'resource' }
    default: throw new UnsupportedComponentError(`unknown type definition 0x${op.toString(16)}`)
  }
}

function instanceDecl (r: Reader): { name: string, sort: Sort } | undefined {
  const tag = r.u8()
  switch (tag) {
    case 0x00: throw new UnsupportedComponentError('core types inside instance types are not supported')
    case 0x01: defType(r); return undefined
    case 0x02: skipAlias(r); return undefined
    case 0x04: {
      const name = externName(r)
      return { name, sort: externType(r).sort }
    }
    default: throw new UnsupportedComponentError(`unknown instance declaration 0x${tag.toString(16)}`)
  }
}

function canonOpts (r: Reader): void {
  r.vec(() => {
    const o = r.u8()
    if (o === 0x03 || o === 0x04 || o === 0x05 || o === 0x07) r.u32()
    else if (o > 0x07) throw new UnsupportedComponentError(`unknown canonical option 0x${o.toString(16)}`)
  })
}

/** Reads one canon definition; returns the lifted type index when it defines a component function. */
function canon (r: Reader): number | undefined {
  const op = r.u8()
  switch (op) {
    case 0x00: r.u8(); r.u32(); canonOpts(r); return r.u32()
    case 0x01: r.u8(); r.u32(); canonOpts(r); return undefined
    case 0x02: case 0x03: case 0x04: case 0x07:
    case 0x0e: case 0x13: case 0x14: case 0x15: case 0x1a: case 0x1b:
      r.u32(); return undefined
    case 0x05: case 0x0d: case 0x1e: case 0x1f: case 0x22: case 0x23: case 0x24: case 0x25:
    case 0x26: case 0x28: case 0x08:
      return undefined
    case 0x06: case 0x0c: case 0x29: case 0x2a: case 0x2b: case 0x2c: case 0x2d:
      r.u8(); return undefined
    case 0x09: {
      const t = r.u8()
      if (t === 0x00) valType(r)
      else if (t === 0x01) r.u8()
      else throw new UnsupportedComponentError('bad task.return result list')
      canonOpts(r)
      return undefined
    }
    case 0x0a: case 0x0b: r.u8(); r.u32(); return undefined
    case 0x0f: case 0x10: case 0x16: case 0x17: r.u32(); canonOpts(r); return undefined
    case 0x11: case 0x12: case 0x18: case 0x19: r.u32(); r.u8(); return undefined
    case 0x1c: case 0x1d: canonOpts(r); return undefined
    case 0x20: case 0x21: r.u8(); r.u32(); return undefined
    case 0x27: r.u32(); r.u32(); return undefined
    default: throw new UnsupportedComponentError(`unknown canonical definition 0x${op.toString(16)}`)
  }
}

// ---- component summary ----

export interface ComponentImport {
  /** The import name as written in the component, e.g. `hive:agent/log@0.1.0`. */
  name: string
  sort: Sort
  /** For an imported instance: the functions the component actually takes from it. */
  functions?: string[]
}

export interface ComponentExport {
  name: string
  sort: Sort
  /** For a function export whose type could be resolved. */
  type?: Extract<DefType, { kind: 'func' }>
}

export interface CustomSection {
  name: string
  /** Offsets of the whole section (id byte included) in the file. */
  start: number
  end: number
  data: Uint8Array
}

export interface ComponentSummary {
  imports: ComponentImport[]
  exports: ComponentExport[]
  customSections: CustomSection[]
  /** Resolves a value type of an export's signature. */
  resolve: (t: ValType) => DefType | { kind: 'prim', prim: string }
}

/** Iterates the top-level sections of a module or component. */
export function * sections (bytes: Uint8Array): Generator<{ id: number, start: number, bodyStart: number, end: number }> {
  const r = new Reader(bytes, 8, bytes.byteLength)
  while (!r.done) {
    const start = r.pos
    const id = r.u8()
    const size = r.u32()
    const bodyStart = r.pos
    if (size > bytes.byteLength - bodyStart) throw new UnsupportedComponentError(`section ${id} runs past the end of the file (truncated?)`)
    r.pos = bodyStart + size
    yield { id, start, bodyStart, end: r.pos }
  }
}

/** Reads the imports, exports and custom sections of a component without running anything. */
export function readComponent (bytes: Uint8Array): ComponentSummary {
  const kind = wasmKind(bytes)
  if (kind !== 'component') {
    throw new NotAComponentError('this is a core WebAssembly module, not a component; build agents with `hive-node agent build` (or wrap the module with `wasm-tools component new`)')
  }
  const types: DefType[] = []
  const funcs: Array<number | undefined> = []
  const imports: ComponentImport[] = []
  const exports: ComponentExport[] = []
  const customSections: CustomSection[] = []
  const typeAt = (i: number | undefined): DefType => (i !== undefined ? types[i] : undefined) ?? { kind: 'unknown' }
  const addToSpace = (s: Sort, typeIdx: number | undefined): void => {
    if (s === 'func') funcs.push(typeIdx)
    else if (s === 'type') types.push(typeIdx !== undefined ? typeAt(typeIdx) : { kind: 'resource' })
  }

  for (const sec of sections(bytes)) {
    const r = new Reader(bytes, sec.bodyStart, sec.end)
    switch (sec.id) {
      case 0: {
        const name = r.name()
        customSections.push({ name, start: sec.start, end: sec.end, data: bytes.subarray(r.pos, sec.end) })
        break
      }
      case 6:
        r.vec(() => {
          const s = skipAlias(r)
          if (s === 'func') funcs.push(undefined)
          else if (s === 'type') types.push({ kind: 'unknown' })
        })
        break
      case 7:
        r.vec(() => types.push(defType(r)))
        break
      case 8:
        r.vec(() => {
          const lifted = canon(r)
          if (lifted !== undefined) funcs.push(lifted)
        })
        break
      case 10:
        r.vec(() => {
          const name = externName(r)
          const et = externType(r)
          const entry: ComponentImport = { name, sort: et.sort }
          if (et.sort === 'instance') {
            const t = typeAt(et.typeIdx)
            if (t.kind === 'instance') entry.functions = t.exports.filter(e => e.sort === 'func').map(e => e.name)
          }
          imports.push(entry)
          addToSpace(et.sort, et.typeIdx)
        })
        break
      case 11:
        r.vec(() => {
          const name = externName(r)
          const s = sort(r)
          const idx = r.u32()
          const ascribed = optional(r, () => externType(r))
          let typeIdx: number | undefined
          if (s === 'func') typeIdx = ascribed?.typeIdx ?? funcs[idx]
          else if (s === 'type') typeIdx = ascribed?.typeIdx ?? idx
          const entry: ComponentExport = { name, sort: s }
          const t = typeAt(typeIdx)
          if (s === 'func' && t.kind === 'func') entry.type = t
          exports.push(entry)
          addToSpace(s, typeIdx)
        })
        break
      default:
        // Core modules, instances, nested components and start functions do not add to the
        // top-level func or type spaces the checks read; skip them whole.
        continue
    }
    if (!r.done && sec.id !== 0) throw new UnsupportedComponentError(`section ${sec.id} has trailing bytes`)
  }

  const resolve = (t: ValType): DefType | { kind: 'prim', prim: string } =>
    'prim' in t ? { kind: 'prim', prim: t.prim } : typeAt(t.ref)
  return { imports, exports, customSections, resolve }
}

// ---- building binaries ----

function leb (n: number): number[] {
  const out: number[] = []
  let v = n
  do {
    let b = v % 0x80
    v = Math.floor(v / 0x80)
    if (v > 0) b |= 0x80
    out.push(b)
  } while (v > 0)
  return out
}

/** A copy of `bytes` with a custom section appended (custom sections may appear anywhere). */
export function appendCustomSection (bytes: Uint8Array, name: string, data: Uint8Array): Uint8Array {
  const nameBytes = new TextEncoder().encode(name)
  const body = [...leb(nameBytes.byteLength), ...nameBytes]
  const size = body.length + data.byteLength
  const header = [0x00, ...leb(size), ...body]
  const out = new Uint8Array(bytes.byteLength + header.length + data.byteLength)
  out.set(bytes, 0)
  out.set(header, bytes.byteLength)
  out.set(data, bytes.byteLength + header.length)
  return out
}

/** A copy of `bytes` without the given top-level sections. */
export function removeSections (bytes: Uint8Array, drop: Array<{ start: number, end: number }>): Uint8Array {
  if (drop.length === 0) return bytes
  const parts: Uint8Array[] = []
  let at = 0
  for (const d of [...drop].sort((a, b) => a.start - b.start)) {
    parts.push(bytes.subarray(at, d.start))
    at = d.end
  }
  parts.push(bytes.subarray(at))
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.byteLength }
  return out
}

export interface MemoryCapResult {
  bytes: Uint8Array
  /** Each memory the module defines, with the limits it now has (in pages). */
  memories: Array<{ min: number, max: number }>
}

/**
 * Writes a maximum into every memory a core module defines so that, together, they can never
 * exceed `capPages`. Memories the module imports are bounded where they are defined. A module
 * whose initial memory already exceeds the cap is refused; so are shared and 64-bit memories,
 * whose limits we do not rewrite.
 */
export function capMemory (bytes: Uint8Array, capPages: number): MemoryCapResult {
  if (wasmKind(bytes) !== 'module') throw new NotWebAssemblyError('expected a core module')
  for (const sec of sections(bytes)) {
    if (sec.id !== 5) continue
    const r = new Reader(bytes, sec.bodyStart, sec.end)
    const limits = r.vec(() => {
      const flags = r.u8()
      if (flags !== 0x00 && flags !== 0x01) {
        throw new UnsupportedComponentError(`memory with limit flags 0x${flags.toString(16)} (shared, 64-bit or custom pages) is not supported`)
      }
      const min = r.u32()
      const max = flags === 0x01 ? r.u32() : undefined
      return { min, max }
    })
    const totalMin = limits.reduce((n, l) => n + l.min, 0)
    if (totalMin > capPages) {
      throw new MemoryLimitTooLowError(`the agent needs ${mib(totalMin)} of memory at start but its cap is ${mib(capPages)}; raise limits.memoryMiB in its manifest`)
    }
    // Split the headroom evenly so the sum of maximums stays within the cap.
    const share = Math.floor((capPages - totalMin) / Math.max(limits.length, 1))
    const memories = limits.map(l => ({ min: l.min, max: Math.min(l.max ?? Infinity, l.min + share) }))
    const body = [...leb(memories.length)]
    for (const m of memories) body.push(0x01, ...leb(m.min), ...leb(m.max))
    const section = Uint8Array.from([0x05, ...leb(body.length), ...body])
    const out = new Uint8Array(bytes.byteLength - (sec.end - sec.start) + section.byteLength)
    out.set(bytes.subarray(0, sec.start), 0)
    out.set(section, sec.start)
    out.set(bytes.subarray(sec.end), sec.start + section.byteLength)
    return { bytes: out, memories }
  }
  return { bytes, memories: [] }
}

function mib (pages: number): string {
  return `${(pages * PAGE_BYTES / 2 ** 20).toFixed(pages * PAGE_BYTES % 2 ** 20 === 0 ? 0 : 1)} MiB`
}
