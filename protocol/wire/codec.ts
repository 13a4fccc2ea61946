// The one CBOR-plus-schema codec: every message, gossip payload and record payload the hive
// reads from a peer is decoded here and validated against its zod schema before any handler
// sees it. Maps decode as plain objects and a duplicate key is refused, so two peers can never
// read one payload two ways.

import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { MalformedMessageError } from './errors.ts'
import { z } from 'zod'

/** Bytes in a message: CBOR decodes a byte string as a Uint8Array. */
export const Bytes = z.custom<Uint8Array>(v => v instanceof Uint8Array, 'bytes')

/** An error class to throw instead of MalformedMessageError (e.g. InvalidRecordError for a record payload). */
export type CodecErrorClass = new (message: string) => Error

export function encodeMessage (message: unknown): Uint8Array {
  return cborEncode(message)
}

/**
 * Decodes CBOR bytes and validates them against `schema`. `what` names the thing in the error
 * ("peer record payload"); the error is a MalformedMessageError unless `error` names another,
 * and names at most `maxIssues` of the schema's complaints.
 */
export function decodeCbor<S extends z.ZodType> (bytes: Uint8Array, schema: S, what: string, error: CodecErrorClass = MalformedMessageError, maxIssues = Infinity): z.infer<S> {
  let value: unknown
  try {
    value = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new error(`${what} is not CBOR: ${(err as Error).message}`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new error(`${what} is invalid: ${describeIssues(parsed.error, maxIssues)}`)
  return parsed.data
}

/**
 * A schema's complaints as one line, `path: message; ...`, at most `max` of them. A union that
 * failed says why the member its `type` chose failed, not only "Invalid input" at its root: that
 * is the member the sender meant.
 */
export function describeIssues (error: z.ZodError, max = Infinity): string {
  const flat = error.issues.flatMap(function unfold (issue: z.core.$ZodIssue): Array<{ path: PropertyKey[], message: string }> {
    if (issue.code !== 'invalid_union' || issue.errors.length === 0) return [issue]
    const meant = issue.errors.find(branch => !branch.some(i => i.path[0] === 'type')) ?? issue.errors.flat()
    return meant.flatMap(unfold).map(i => ({ path: [...issue.path, ...i.path], message: i.message }))
  })
  return flat.slice(0, max).map(i => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`).join('; ')
}

/**
 * `decode`, run once for the same bytes object. gossipsub hands a topic's validator and then its
 * listeners the very same message bytes, and each would decode (CBOR, then the schema) again.
 * What it returns is shared by every caller for those bytes: none may change it. A failure is
 * not remembered: it throws again.
 */
export function decodeOnce<T extends object> (decode: (bytes: Uint8Array) => T): (bytes: Uint8Array) => T {
  const decoded = new WeakMap<Uint8Array, T>()
  return (bytes) => {
    let value = decoded.get(bytes)
    if (value == null) {
      value = decode(bytes)
      decoded.set(bytes, value)
    }
    return value
  }
}

/** Decodes one protocol message; anything else is a MalformedMessageError. */
export function decodeMessage<S extends z.ZodType> (body: Uint8Array, schema: S): z.infer<S> {
  return decodeCbor(body, schema, 'message')
}
