// Structural validation of untrusted Yjs bytes, done before any of them reach Yjs.
//
// Yjs decodes updates with loops whose bounds come from the input (struct counts, content
// lengths, run lengths), and it does not check that an update ends where it should. Its open
// reports show what that costs: a zero-length update looped forever in older releases
// (yjs#498), and crafted run-length fields make the decoder loop or allocate without bound
// (yjs#687). A truncated update can also integrate some structs before it fails, leaving a
// document half-changed. So every byte sequence a peer sends is first walked here, by a reader
// that checks each length against the bytes that remain, refuses anything unknown, and demands
// that the input ends exactly where the structure does. The walk is linear in the input size:
// every count is bounded by the bytes left, since each element takes at least one byte.
//
// Formats walked (Yjs update encoding v1, the one y-protocols sync carries):
//   update      = structs deleteSet
//   structs     = varuint(nClients) { varuint(nStructs) varuint(client) varuint(clock) struct* }
//   struct      = info:u8 ; info & 31 selects GC(0) | Skip(10) | item content 1..9
//   deleteSet   = varuint(nClients) { varuint(client) varuint(n) { varuint(clock) varuint(len) }* }
//   stateVector = varuint(n) { varuint(client) varuint(clock) }*
//   snapshot    = deleteSet stateVector

import { MalformedUpdateError, UpdateTooLargeError, ValueTooDeepError } from './errors.ts'
import { MAX_CLOCK, MAX_VALUE_DEPTH } from './limits.ts'

export const DEFAULT_MAX_CLOCK = MAX_CLOCK
export const DEFAULT_MAX_DEPTH = MAX_VALUE_DEPTH

export interface UpdateLimits {
  /** Largest update accepted, in bytes. */
  maxBytes: number
  /** Names allowed for root types (the document layout). */
  rootNames: ReadonlySet<string>
  maxClock?: number
  maxDepth?: number
}

export interface UpdateSummary {
  /** Structs (items, GC and skip ranges) carried. */
  structs: number
  /** Delete ranges carried. */
  deletes: number
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

class Reader {
  readonly bytes: Uint8Array
  pos = 0

  constructor (bytes: Uint8Array) {
    this.bytes = bytes
  }

  get remaining (): number {
    return this.bytes.byteLength - this.pos
  }

  u8 (): number {
    if (this.pos >= this.bytes.byteLength) throw malformed('truncated: ended inside a value')
    return this.bytes[this.pos++] as number
  }

  /** lib0 unsigned varint: 7 bits per byte, low group first, high bit set on all but the last. */
  varUint (): number {
    let num = 0
    let mult = 1
    for (;;) {
      const byte = this.u8()
      num += (byte & 0x7f) * mult
      mult *= 128
      if (num > Number.MAX_SAFE_INTEGER) throw malformed('integer out of range')
      if (byte < 0x80) return num
    }
  }

  /** lib0 signed varint: first byte carries continuation, sign and 6 bits. */
  varInt (): number {
    let byte = this.u8()
    let num = byte & 0x3f
    let mult = 64
    while ((byte & 0x80) !== 0) {
      byte = this.u8()
      num += (byte & 0x7f) * mult
      mult *= 128
      if (num > Number.MAX_SAFE_INTEGER) throw malformed('integer out of range')
    }
    return num
  }

  /** A count of elements that each take at least one byte: bounded by what remains. */
  count (what: string): number {
    const n = this.varUint()
    if (n > this.remaining) throw malformed(`${what} count ${n} exceeds the ${this.remaining} bytes left`)
    return n
  }

  skip (n: number): void {
    if (n > this.remaining) throw malformed(`truncated: ${n} bytes announced, ${this.remaining} left`)
    this.pos += n
  }

  varBytes (): Uint8Array {
    const n = this.varUint()
    if (n > this.remaining) throw malformed(`truncated: ${n} bytes announced, ${this.remaining} left`)
    const out = this.bytes.subarray(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  varString (): string {
    const raw = this.varBytes()
    try {
      return utf8.decode(raw)
    } catch {
      throw malformed('string is not valid UTF-8')
    }
  }

  end (what: string): void {
    if (this.remaining !== 0) throw malformed(`${this.remaining} trailing bytes after the ${what}`)
  }
}

function malformed (reason: string): MalformedUpdateError {
  return new MalformedUpdateError(`malformed update: ${reason}`)
}

function tooDeep (maxDepth: number): ValueTooDeepError {
  return new ValueTooDeepError(`a value is nested deeper than ${maxDepth} levels of arrays and objects: flatten it`)
}

interface WalkLimits {
  maxClock: number
  maxDepth: number
  rootNames: ReadonlySet<string>
}

function clockWithin (clock: number, limits: WalkLimits): number {
  if (clock > limits.maxClock) throw malformed(`clock ${clock} beyond the limit of ${limits.maxClock}`)
  return clock
}

function positiveLength (r: Reader, what: string, limits: WalkLimits): number {
  const len = r.varUint()
  if (len < 1) throw malformed(`${what} of length 0`)
  return clockWithin(len, limits)
}

function json (r: Reader, what: string): void {
  const text = r.varString()
  try {
    JSON.parse(text)
  } catch {
    throw malformed(`${what} is not JSON`)
  }
}

/** lib0 `readAny` value, walked with a depth bound. */
function anyValue (r: Reader, depth: number, limits: WalkLimits): void {
  if (depth > limits.maxDepth) throw tooDeep(limits.maxDepth)
  const tag = r.u8()
  switch (tag) {
    case 127: // undefined
    case 126: // null
    case 121: // false
    case 120: // true
      return
    case 125: r.varInt(); return
    case 124: r.skip(4); return
    case 123: r.skip(8); return
    case 122: r.skip(8); return
    case 119: r.varString(); return
    case 118: { // object
      const n = r.count('object key')
      for (let i = 0; i < n; i++) {
        r.varString()
        anyValue(r, depth + 1, limits)
      }
      return
    }
    case 117: { // array
      const n = r.count('array element')
      for (let i = 0; i < n; i++) anyValue(r, depth + 1, limits)
      return
    }
    case 116: r.varBytes(); return
    default:
      throw malformed(`unknown value tag ${tag}`)
  }
}

/** Walks one item's content; returns the clock length the item occupies. */
function itemContent (r: Reader, ref: number, limits: WalkLimits): number {
  switch (ref) {
    case 1: // deleted
      return positiveLength(r, 'deleted content', limits)
    case 2: { // JSON
      const n = r.count('JSON value')
      if (n < 1) throw malformed('JSON content of length 0')
      for (let i = 0; i < n; i++) {
        const text = r.varString()
        if (text === 'undefined') continue
        try {
          JSON.parse(text)
        } catch {
          throw malformed('JSON content is not JSON')
        }
      }
      return n
    }
    case 3: // binary
      r.varBytes()
      return 1
    case 4: { // string
      const s = r.varString()
      if (s.length === 0) throw malformed('string content of length 0')
      return s.length
    }
    case 5: // embed
      json(r, 'embed')
      return 1
    case 6: // format
      r.varString()
      json(r, 'format value')
      return 1
    case 7: { // type
      const typeRef = r.varUint()
      if (typeRef > 6) throw malformed(`unknown type ref ${typeRef}`)
      if (typeRef === 3 || typeRef === 5) r.varString() // XML element name / hook name
      return 1
    }
    case 8: { // any
      const n = r.count('value')
      if (n < 1) throw malformed('value content of length 0')
      for (let i = 0; i < n; i++) anyValue(r, 0, limits)
      return n
    }
    case 9:
      throw malformed('subdocuments are not part of the context layout')
    default:
      throw malformed(`unknown content type ${ref}`)
  }
}

function structs (r: Reader, limits: WalkLimits): number {
  let total = 0
  const nClients = r.count('client')
  const seen = new Set<number>()
  for (let c = 0; c < nClients; c++) {
    const nStructs = r.count('struct')
    const client = r.varUint()
    if (seen.has(client)) throw malformed(`client ${client} appears twice`)
    seen.add(client)
    let clock = clockWithin(r.varUint(), limits)
    for (let s = 0; s < nStructs; s++) {
      const info = r.u8()
      const ref = info & 0x1f
      let length: number
      if (ref === 0 || ref === 10) { // GC or Skip: a clock range without content
        length = positiveLength(r, ref === 0 ? 'GC range' : 'skip range', limits)
      } else {
        if ((info & 0x80) !== 0) { r.varUint(); clockWithin(r.varUint(), limits) } // origin
        if ((info & 0x40) !== 0) { r.varUint(); clockWithin(r.varUint(), limits) } // right origin
        if ((info & 0xc0) === 0) { // no origins: the parent is named
          const parentInfo = r.varUint()
          if (parentInfo === 1) {
            const name = r.varString()
            if (!limits.rootNames.has(name)) throw malformed(`root type ${JSON.stringify(name.slice(0, 40))} is not part of the context layout`)
          } else if (parentInfo === 0) {
            r.varUint(); clockWithin(r.varUint(), limits) // parent item id
          } else {
            throw malformed(`unknown parent info ${parentInfo}`)
          }
          if ((info & 0x20) !== 0) r.varString() // key in a map
        }
        length = itemContent(r, ref, limits)
      }
      clock = clockWithin(clock + length, limits)
      total++
    }
  }
  return total
}

function deleteSet (r: Reader, limits: WalkLimits): number {
  let total = 0
  const nClients = r.count('delete set client')
  for (let c = 0; c < nClients; c++) {
    r.varUint() // client
    const n = r.count('delete range')
    for (let i = 0; i < n; i++) {
      const clock = clockWithin(r.varUint(), limits)
      const len = clockWithin(r.varUint(), limits) // Yjs may write empty ranges; they are harmless
      clockWithin(clock + len, limits)
      total++
    }
  }
  return total
}

function stateVector (r: Reader, limits: WalkLimits): void {
  const n = r.count('state vector entry')
  for (let i = 0; i < n; i++) {
    r.varUint()
    clockWithin(r.varUint(), limits)
  }
}

function walkLimits (limits: Partial<UpdateLimits>): WalkLimits {
  return {
    maxClock: limits.maxClock ?? DEFAULT_MAX_CLOCK,
    maxDepth: limits.maxDepth ?? DEFAULT_MAX_DEPTH,
    rootNames: limits.rootNames ?? new Set()
  }
}

/**
 * Validates a Yjs v1 update without decoding it with Yjs. Throws MalformedUpdate (empty,
 * truncated, trailing bytes, impossible counts, unknown types, roots outside the layout) or
 * UpdateTooLarge. A valid update may still depend on structs the receiver lacks; Yjs keeps
 * those pending, which is legitimate.
 */
export function validateUpdate (bytes: Uint8Array, limits: UpdateLimits): UpdateSummary {
  if (!(bytes instanceof Uint8Array)) throw malformed('not a byte array')
  if (bytes.byteLength === 0) throw malformed('empty update (zero bytes)')
  if (bytes.byteLength > limits.maxBytes) {
    throw new UpdateTooLargeError(`update of ${bytes.byteLength} bytes exceeds the limit of ${limits.maxBytes}`)
  }
  const l = walkLimits(limits)
  const r = new Reader(bytes)
  const structCount = structs(r, l)
  const deletes = deleteSet(r, l)
  r.end('update')
  return { structs: structCount, deletes }
}

/**
 * Checks a value about to be written (a state value, a conversation entry) against the depth
 * limit the validator applies to updates, before Yjs encodes it: Yjs encodes values
 * recursively, so a deep enough value overflows the stack there. The walk here uses an explicit
 * stack and counts depth the way `anyValue` does (the value is 0, its elements 1, …), so a
 * value that passes here passes there. Typed arrays and Yjs types are leaves.
 */
export function checkValue (value: unknown, maxDepth: number = MAX_VALUE_DEPTH): void {
  const stack: Array<{ value: unknown, depth: number }> = [{ value, depth: 0 }]
  for (let next = stack.pop(); next != null; next = stack.pop()) {
    if (next.depth > maxDepth) throw tooDeep(maxDepth)
    const v = next.value
    if (v == null || typeof v !== 'object' || ArrayBuffer.isView(v)) continue
    if (Array.isArray(v)) {
      for (const element of v) stack.push({ value: element, depth: next.depth + 1 })
    } else if (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      for (const element of Object.values(v)) stack.push({ value: element, depth: next.depth + 1 })
    }
  }
}

/** Validates an encoded state vector (sync step 1 payload). */
export function validateStateVector (bytes: Uint8Array, maxBytes: number): void {
  if (bytes.byteLength > maxBytes) throw new UpdateTooLargeError(`state vector of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes}`)
  const r = new Reader(bytes)
  stateVector(r, walkLimits({}))
  r.end('state vector')
}

/** Validates an encoded snapshot (delete set then state vector), as stored in a checkpoint. */
export function validateSnapshot (bytes: Uint8Array): void {
  const r = new Reader(bytes)
  const l = walkLimits({})
  deleteSet(r, l)
  stateVector(r, l)
  r.end('snapshot')
}

export const SYNC_STEP1 = 0
export const SYNC_STEP2 = 1
export const SYNC_UPDATE = 2

export interface SyncMessage {
  type: typeof SYNC_STEP1 | typeof SYNC_STEP2 | typeof SYNC_UPDATE
  payload: Uint8Array
}

/** Splits a y-protocols sync message (varuint type, varuint-length payload) under the same guard. */
export function readSyncMessage (bytes: Uint8Array): SyncMessage {
  const r = new Reader(bytes)
  let type: number
  try {
    type = r.varUint()
  } catch {
    throw malformed('empty sync message')
  }
  if (type !== SYNC_STEP1 && type !== SYNC_STEP2 && type !== SYNC_UPDATE) throw malformed(`unknown sync message type ${type}`)
  const payload = r.varBytes()
  r.end('sync message')
  return { type, payload }
}

export interface AwarenessEntry {
  client: number
  clock: number
  state: unknown
}

/** Walks a y-protocols awareness update: varuint(n) { varuint(client) varuint(clock) varstring(JSON) }. */
export function readAwarenessUpdate (bytes: Uint8Array, maxEntries: number): AwarenessEntry[] {
  const r = new Reader(bytes)
  const n = r.count('awareness entry')
  if (n > maxEntries) throw malformed(`${n} awareness entries exceed the limit of ${maxEntries}`)
  const out: AwarenessEntry[] = []
  for (let i = 0; i < n; i++) {
    const client = r.varUint()
    const clock = r.varUint()
    const text = r.varString()
    let state: unknown
    try {
      state = JSON.parse(text)
    } catch {
      throw malformed('awareness state is not JSON')
    }
    out.push({ client, clock, state })
  }
  r.end('awareness update')
  return out
}

export interface AwarenessClock {
  client: number
  clock: number
  /** The state is JSON `null`: the client was marked offline. */
  removed: boolean
}

const NULL_STATE = new TextEncoder().encode('null')

/**
 * The clocks of an awareness update, without decoding a state: the same walk as
 * readAwarenessUpdate (counts and lengths checked against the bytes left, the input ends where
 * the structure does), each state's bytes skipped but compared with `null`. In a flood an update
 * reaches a node once per link; the clocks say whether anything in it is new.
 */
export function readAwarenessClocks (bytes: Uint8Array, maxEntries: number): AwarenessClock[] {
  const r = new Reader(bytes)
  const n = r.count('awareness entry')
  if (n > maxEntries) throw malformed(`${n} awareness entries exceed the limit of ${maxEntries}`)
  const out: AwarenessClock[] = []
  for (let i = 0; i < n; i++) {
    const client = r.varUint()
    const clock = r.varUint()
    const state = r.varBytes()
    const removed = state.byteLength === NULL_STATE.byteLength && state.every((b, j) => b === NULL_STATE[j])
    out.push({ client, clock, removed })
  }
  r.end('awareness update')
  return out
}
