// Making the build's snapshot step reproducible.
//
// componentize-js evaluates the agent inside its JS engine and snapshots the engine's memory with
// wizer. During that evaluation the engine reads the host's clock and random numbers (WASI
// `clock_time_get` and `random_get`: hash seeds, the Math.random seed, times it keeps), the
// status of the files it loads (`path_filestat_get`: inode and change time) and the paths of the
// two temporary directories it works in; all of them ended up in the snapshot, so two builds of
// one source differed in hundreds of thousands of bytes. This file patches the core module for
// the snapshot only: every call of those three imports goes instead to a function appended to
// the module, which answers from a seed (random bytes: splitmix64 of the seed and a counter),
// from a fixed clock (a fixed epoch, one microsecond more at each call; a counter in a global
// appended for each), or with the real status whose device, inode and times are made fixed
// (the inode: FNV-1a of the path). After the snapshot the original function and code
// sections go back in, so at run time the component behaves exactly as componentize built it;
// the two counters stay behind as unused globals. The seed is derived from the build's inputs,
// so the same inputs give the same bytes. The paths are mapped to fixed names by the wizer
// launcher (wizer-shim.ts).
//
// Finding the calls means reading every instruction of the engine (~9 MB of code): the reader
// below knows the immediates of every opcode the engine's toolchain emits (MVP, sign extension,
// saturating truncation, bulk memory, reference types, SIMD, tail calls, exceptions, atomics) and
// refuses anything else, as it refuses a snapshot whose code wizer changed, rather than
// snapshotting unpatched.

import { sections } from './binary.ts'

/** The time every snapshot sees first: 2000-01-01T00:00:00Z, in nanoseconds. */
export const SNAPSHOT_EPOCH_NS = 946_684_800_000_000_000n

export class SnapshotPatchError extends Error {
  static readonly code = 'SnapshotPatch'
  override name = 'SnapshotPatch'
}

interface Cursor { pos: number }

function u32 (bytes: Uint8Array, c: Cursor): number {
  let result = 0
  let shift = 0
  for (let i = 0; i < 5; i++) {
    const b = bytes[c.pos++]
    if (b === undefined) throw new SnapshotPatchError('unexpected end of module')
    result += (b & 0x7f) * 2 ** shift
    if ((b & 0x80) === 0) return result
    shift += 7
  }
  throw new SnapshotPatchError('malformed LEB128 integer')
}

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

function sleb64 (value: bigint): number[] {
  const out: number[] = []
  let v = BigInt.asIntN(64, value)
  for (;;) {
    const b = Number(v & 0x7fn)
    v >>= 7n
    const done = (v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)
    out.push(done ? b : b | 0x80)
    if (done) return out
  }
}

function skipName (bytes: Uint8Array, c: Cursor): string {
  const n = u32(bytes, c)
  const s = new TextDecoder().decode(bytes.subarray(c.pos, c.pos + n))
  c.pos += n
  return s
}

interface Section { start: number, bodyStart: number, end: number }

interface ModuleLayout {
  /** Index and type index of each function import, by `module.name`. */
  funcImports: Map<string, { index: number, type: number }>
  importedFuncs: number
  globals: number
  functionSection: Section
  globalSection: Section
  codeSection: Section
  /** Each defined function's body (size prefix excluded), by position in the code section. */
  bodies: Array<{ start: number, end: number }>
}

function layout (bytes: Uint8Array): ModuleLayout {
  const funcImports = new Map<string, { index: number, type: number }>()
  let importedFuncs = 0
  let importedGlobals = 0
  let globals = 0
  let functionSection: Section | undefined
  let globalSection: Section | undefined
  let codeSection: Section | undefined
  const bodies: ModuleLayout['bodies'] = []
  const limits = (c: Cursor): void => { const flags = bytes[c.pos++] ?? 0; u32(bytes, c); if ((flags & 1) !== 0) u32(bytes, c) }
  for (const sec of sections(bytes)) {
    const c = { pos: sec.bodyStart }
    if (sec.id === 2) {
      const n = u32(bytes, c)
      for (let i = 0; i < n; i++) {
        const module = skipName(bytes, c)
        const name = skipName(bytes, c)
        const kind = bytes[c.pos++]
        if (kind === 0x00) funcImports.set(`${module}.${name}`, { index: importedFuncs++, type: u32(bytes, c) })
        else if (kind === 0x01) { c.pos++; limits(c) } else if (kind === 0x02) limits(c)
        else if (kind === 0x03) { c.pos += 2; importedGlobals++ } else throw new SnapshotPatchError(`unknown import kind ${kind ?? '?'}`)
      }
    } else if (sec.id === 3) {
      functionSection = sec
    } else if (sec.id === 6) {
      globalSection = sec
      globals = u32(bytes, c)
    } else if (sec.id === 10) {
      codeSection = sec
      const n = u32(bytes, c)
      for (let i = 0; i < n; i++) {
        const size = u32(bytes, c)
        bodies.push({ start: c.pos, end: c.pos + size })
        c.pos += size
      }
    }
  }
  if (importedGlobals > 0) throw new SnapshotPatchError('the engine imports globals, which a snapshot cannot hold')
  if (functionSection === undefined || globalSection === undefined || codeSection === undefined) {
    throw new SnapshotPatchError('the engine lacks a function, global or code section; this componentize-js release is not one the reproducible build knows')
  }
  return { funcImports, importedFuncs, globals, functionSection, globalSection, codeSection, bodies }
}

function skipLeb (bytes: Uint8Array, c: Cursor): void {
  for (let i = 0; i < 10; i++) {
    const b = bytes[c.pos++]
    if (b === undefined) throw new SnapshotPatchError('unexpected end of code')
    if ((b & 0x80) === 0) return
  }
  throw new SnapshotPatchError('malformed LEB128 integer in code')
}

function skipBlockType (bytes: Uint8Array, c: Cursor): void {
  const b = bytes[c.pos] ?? 0
  if (b === 0x40 || (b >= 0x6f && b <= 0x7f)) c.pos++
  else skipLeb(bytes, c)
}

/** memarg: alignment (bit 6: a memory index follows), then offset. */
function skipMemarg (bytes: Uint8Array, c: Cursor): void {
  const align = u32(bytes, c)
  if ((align & 0x40) !== 0) u32(bytes, c)
  skipLeb(bytes, c)
}

/** Skips the immediates of a 0xfd (SIMD) instruction. */
function skipSimd (bytes: Uint8Array, c: Cursor): void {
  const op = u32(bytes, c)
  if (op <= 0x0b || op === 0x5c || op === 0x5d) skipMemarg(bytes, c)
  else if (op === 0x0c || op === 0x0d) c.pos += 16
  else if (op >= 0x15 && op <= 0x22) c.pos++
  else if (op >= 0x54 && op <= 0x5b) { skipMemarg(bytes, c); c.pos++ }
}

/** Skips the immediates of a 0xfc instruction. */
function skipMisc (bytes: Uint8Array, c: Cursor): void {
  const op = u32(bytes, c)
  if (op <= 7) return
  const counts: Record<number, number> = { 8: 2, 9: 1, 10: 2, 11: 1, 12: 2, 13: 1, 14: 2, 15: 1, 16: 1, 17: 1 }
  const n = counts[op]
  if (n === undefined) throw new SnapshotPatchError(`unknown instruction 0xfc ${op} in the engine's code`)
  for (let i = 0; i < n; i++) u32(bytes, c)
}

/**
 * Copies one function body, with calls of the functions in `redirect` sent to their
 * replacements. Returns undefined when the body calls none of them.
 */
function redirectCalls (bytes: Uint8Array, body: { start: number, end: number }, redirect: Map<number, number>, counts: Map<number, number>): Uint8Array | undefined {
  const c = { pos: body.start }
  const locals = u32(bytes, c)
  for (let i = 0; i < locals; i++) { u32(bytes, c); skipBlockType(bytes, c) }
  const out: number[] = []
  let copied = body.start
  let depth = 1
  while (c.pos < body.end) {
    const at = c.pos
    const op = bytes[c.pos++] as number
    if (op === 0x10 || op === 0x12) {
      const target = u32(bytes, c)
      const to = redirect.get(target)
      if (to !== undefined) {
        for (let i = copied; i < at; i++) out.push(bytes[i] as number)
        out.push(op, ...leb(to))
        copied = c.pos
        counts.set(target, (counts.get(target) ?? 0) + 1)
      }
    } else if (op === 0x02 || op === 0x03 || op === 0x04 || op === 0x06) { skipBlockType(bytes, c); depth++ } else if (op === 0x1f) {
      skipBlockType(bytes, c); depth++
      const n = u32(bytes, c)
      for (let i = 0; i < n; i++) { const kind = bytes[c.pos++] ?? 0; if (kind <= 1) u32(bytes, c); u32(bytes, c) }
    } else if (op === 0x0b) {
      depth--
      if (depth === 0) break
    } else if (op === 0x0e) {
      const n = u32(bytes, c)
      for (let i = 0; i <= n; i++) u32(bytes, c)
    } else if (op === 0x11 || op === 0x13) { u32(bytes, c); u32(bytes, c) } else if (op === 0x1c) {
      const n = u32(bytes, c)
      c.pos += n
    } else if (op === 0x07 || op === 0x08 || op === 0x09 || op === 0x0c || op === 0x0d || op === 0x14 || op === 0x15 || op === 0x18 ||
      (op >= 0x20 && op <= 0x26) || op === 0x3f || op === 0x40 || op === 0x41 || op === 0x42 || op === 0xd2 || op === 0xd5 || op === 0xd6) {
      skipLeb(bytes, c)
    } else if (op >= 0x28 && op <= 0x3e) skipMemarg(bytes, c)
    else if (op === 0x43) c.pos += 4
    else if (op === 0x44) c.pos += 8
    else if (op === 0xd0) skipBlockType(bytes, c)
    else if (op === 0xfc) skipMisc(bytes, c)
    else if (op === 0xfd) skipSimd(bytes, c)
    else if (op === 0xfe) { const sub = u32(bytes, c); if (sub === 0x03) c.pos++; else skipMemarg(bytes, c) } else if (!(op <= 0x01 || op === 0x05 || op === 0x0a || op === 0x0f || op === 0x19 || op === 0x1a || op === 0x1b ||
      (op >= 0x45 && op <= 0xc4) || op === 0xd1 || op === 0xd3 || op === 0xd4)) {
      throw new SnapshotPatchError(`unknown instruction 0x${op.toString(16)} in the engine's code`)
    }
  }
  if (depth !== 0 || c.pos !== body.end) throw new SnapshotPatchError('a function body of the engine does not end where its size says')
  if (copied === body.start) return undefined
  for (let i = copied; i < body.end; i++) out.push(bytes[i] as number)
  return Uint8Array.from(out)
}

function replaceSection (bytes: Uint8Array, sec: { start: number, end: number }, id: number, parts: Uint8Array[]): Uint8Array {
  const size = parts.reduce((n, p) => n + p.byteLength, 0)
  const header = Uint8Array.from([id, ...leb(size)])
  const out = new Uint8Array(sec.start + header.byteLength + size + (bytes.byteLength - sec.end))
  out.set(bytes.subarray(0, sec.start), 0)
  let o = sec.start
  out.set(header, o); o += header.byteLength
  for (const p of parts) { out.set(p, o); o += p.byteLength }
  out.set(bytes.subarray(sec.end), o)
  return out
}

/** A vector section with `extra` entries appended. */
function appendEntries (bytes: Uint8Array, sec: Section, id: number, extra: number[][]): Uint8Array {
  const c = { pos: sec.bodyStart }
  const n = u32(bytes, c)
  return replaceSection(bytes, sec, id, [Uint8Array.from(leb(n + extra.length)), bytes.subarray(c.pos, sec.end), Uint8Array.from(extra.flat())])
}

/** What the patched module needs to be put back after the snapshot. */
export interface SnapshotPatch {
  bytes: Uint8Array
  /** How many call sites now go to the fixed functions, per import. */
  redirected: { random: number, clock: number, stat: number }
  /** The sections to put back, as the engine had them and as the patch left them. */
  sections: Array<{ id: number, original: Uint8Array, patched: Uint8Array }>
}

function sectionBytes (bytes: Uint8Array, sec: Section): Uint8Array {
  return bytes.slice(sec.start, sec.end)
}

/**
 * The engine with every call of WASI `random_get` and `clock_time_get` sent to functions that
 * answer from `seed` (8 bytes derived from the build's inputs) and a fixed clock, for the
 * snapshot only.
 */
export function patchForSnapshot (bytes: Uint8Array, seed: bigint): SnapshotPatch {
  const l = layout(bytes)
  const imported = (name: string): { index: number, type: number } => {
    const found = l.funcImports.get(`wasi_snapshot_preview1.${name}`)
    if (found === undefined) throw new SnapshotPatchError(`the JS engine does not import ${name} from WASI preview 1; this componentize-js release is not one the reproducible build knows`)
    return found
  }
  const randomImport = imported('random_get')
  const clockImport = imported('clock_time_get')
  const statImport = imported('path_filestat_get')
  const first = l.importedFuncs + l.bodies.length
  const redirect = new Map([[randomImport.index, first], [clockImport.index, first + 1], [statImport.index, first + 2]])
  const counts = new Map<number, number>()
  const bodies = l.bodies.map(b => redirectCalls(bytes, b, redirect, counts) ?? bytes.subarray(b.start, b.end))
  const redirected = { random: counts.get(randomImport.index) ?? 0, clock: counts.get(clockImport.index) ?? 0, stat: counts.get(statImport.index) ?? 0 }
  const randomCounter = leb(l.globals)
  const clockCounter = leb(l.globals + 1)
  const i64 = (v: bigint): number[] => [0x42, ...sleb64(v)]
  // (buf, len) -> errno: for i < len: ctr += 1; buf[i] = splitmix64(seed + ctr * golden)
  const random = Uint8Array.from([
    0x02, 0x01, 0x7f, 0x01, 0x7e, // locals: i32 $i, i64 $z
    0x02, 0x40, 0x03, 0x40, // block, loop
    0x20, 0x02, 0x20, 0x01, 0x4f, 0x0d, 0x01, // out when i >= len
    0x23, ...randomCounter, ...i64(1n), 0x7c, 0x24, ...randomCounter,
    ...i64(seed), 0x23, ...randomCounter, ...i64(0x9e3779b97f4a7c15n), 0x7e, 0x7c, 0x21, 0x03,
    0x20, 0x03, 0x20, 0x03, ...i64(30n), 0x88, 0x85, ...i64(0xbf58476d1ce4e5b9n), 0x7e, 0x21, 0x03,
    0x20, 0x03, 0x20, 0x03, ...i64(27n), 0x88, 0x85, ...i64(0x94d049bb133111ebn), 0x7e, 0x21, 0x03,
    0x20, 0x03, 0x20, 0x03, ...i64(31n), 0x88, 0x85, 0x21, 0x03,
    0x20, 0x00, 0x20, 0x02, 0x6a, 0x20, 0x03, 0x3c, 0x00, 0x00, // i64.store8 buf+i
    0x20, 0x02, 0x41, 0x01, 0x6a, 0x21, 0x02,
    0x0c, 0x00, 0x0b, 0x0b,
    0x41, 0x00, 0x0b
  ])
  // (clock id, precision, out) -> errno: ctr += 1000; *out = epoch + ctr
  const clock = Uint8Array.from([
    0x00,
    0x23, ...clockCounter, ...i64(1000n), 0x7c, 0x24, ...clockCounter,
    0x20, 0x02, ...i64(SNAPSHOT_EPOCH_NS), 0x23, ...clockCounter, 0x7c, 0x37, 0x03, 0x00,
    0x41, 0x00, 0x0b
  ])
  // (fd, flags, path, len, out) -> errno: the real stat, then device 0, inode FNV-1a of the
  // path, and every time the epoch (a file's inode and change time differ from build to build)
  const stat = Uint8Array.from([
    0x03, 0x01, 0x7f, 0x01, 0x7e, 0x01, 0x7f, // locals: i32 $r, i64 $h, i32 $i
    0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0x20, 0x03, 0x20, 0x04, 0x10, ...leb(statImport.index), 0x22, 0x05,
    0x04, 0x40, 0x20, 0x05, 0x0f, 0x0b, // failed: its errno
    ...i64(0xcbf29ce484222325n), 0x21, 0x06,
    0x02, 0x40, 0x03, 0x40,
    0x20, 0x07, 0x20, 0x03, 0x4f, 0x0d, 0x01,
    0x20, 0x06, 0x20, 0x02, 0x20, 0x07, 0x6a, 0x31, 0x00, 0x00, 0x85, ...i64(0x100000001b3n), 0x7e, 0x21, 0x06,
    0x20, 0x07, 0x41, 0x01, 0x6a, 0x21, 0x07,
    0x0c, 0x00, 0x0b, 0x0b,
    0x20, 0x04, ...i64(0n), 0x37, 0x03, 0x00, // dev
    0x20, 0x04, 0x20, 0x06, 0x37, 0x03, 0x08, // ino
    0x20, 0x04, ...i64(SNAPSHOT_EPOCH_NS), 0x37, 0x03, 0x28, // atim
    0x20, 0x04, ...i64(SNAPSHOT_EPOCH_NS), 0x37, 0x03, 0x30, // mtim
    0x20, 0x04, ...i64(SNAPSHOT_EPOCH_NS), 0x37, 0x03, 0x38, // ctim
    0x41, 0x00, 0x0b
  ])
  const added = [random, clock, stat]
  const code: Uint8Array[] = [Uint8Array.from(leb(bodies.length + added.length))]
  for (const b of [...bodies, ...added]) code.push(Uint8Array.from(leb(b.byteLength)), b)
  // sections from the last to the first, so the earlier ones' offsets hold
  let out = replaceSection(bytes, l.codeSection, 10, code)
  const counter = [0x7e, 0x01, 0x42, 0x00, 0x0b]
  out = appendEntries(out, l.globalSection, 6, [counter, counter])
  out = appendEntries(out, l.functionSection, 3, [leb(randomImport.type), leb(clockImport.type), leb(statImport.type)])
  const p = layout(out)
  return {
    bytes: out,
    redirected,
    sections: [
      { id: 3, original: sectionBytes(bytes, l.functionSection), patched: sectionBytes(out, p.functionSection) },
      { id: 10, original: sectionBytes(bytes, l.codeSection), patched: sectionBytes(out, p.codeSection) }
    ]
  }
}

/**
 * The snapshot with the engine's own function and code sections back in. Refused when wizer
 * changed either (then the snapshot's functions might not be the ones put back).
 */
export function restoreAfterSnapshot (bytes: Uint8Array, patch: SnapshotPatch): Uint8Array {
  const l = layout(bytes)
  const at = { 3: l.functionSection, 10: l.codeSection } as Record<number, Section>
  let out = bytes
  // the code section comes after the function section: replace it first
  for (const s of [...patch.sections].sort((a, b) => b.id - a.id)) {
    const sec = at[s.id] as Section
    const now = out.subarray(sec.start, sec.end)
    if (now.byteLength !== s.patched.byteLength || !now.every((b, i) => b === s.patched[i])) {
      throw new SnapshotPatchError(`wizer changed section ${s.id} of the engine; the reproducible build cannot put the original back`)
    }
    const header = { pos: 1 }
    u32(s.original, header)
    out = replaceSection(out, sec, s.id, [s.original.subarray(header.pos)])
  }
  return out
}
