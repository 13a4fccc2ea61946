// The one CBOR-plus-schema codec: every message, gossip payload and record payload the hive
// reads from a peer is decoded here and validated against its zod schema before any handler
// sees it. Maps decode as plain objects and a duplicate key is refused, so two peers can never
// read one payload two ways.

import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { MalformedMessageError } from './errors.ts'
import type { z } from 'zod'

/** An error class to throw instead of MalformedMessageError (e.g. InvalidRecordError for a record payload). */
export type CodecErrorClass = new (message: string) => Error

export function encodeMessage (message: unknown): Uint8Array {
  return cborEncode(message)
}

/**
 * Decodes CBOR bytes and validates them against `schema`. `what` names the thing in the error
 * ("peer record payload"); the error is a MalformedMessageError unless `error` names another.
 */
export function decodeCbor<S extends z.ZodType> (bytes: Uint8Array, schema: S, what: string, error: CodecErrorClass = MalformedMessageError): z.infer<S> {
  let value: unknown
  try {
    value = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new error(`${what} is not CBOR: ${(err as Error).message}`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) {
    throw new error(`${what} is invalid: ${parsed.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  }
  return parsed.data
}

/** Decodes one protocol message; anything else is a MalformedMessageError. */
export function decodeMessage<S extends z.ZodType> (body: Uint8Array, schema: S): z.infer<S> {
  return decodeCbor(body, schema, 'message')
}
