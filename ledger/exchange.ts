// The ledger's wire: a request/response protocol to fetch a peer's records from a sequence
// number (and the heads it holds), and the gossip message that announces signed chain heads.
// Frames and validation come from protocol/wire.ts; every message is checked against a schema
// before it is used, and every record and head is verified before it is stored.
//
//   /hive/ledger/1.0.0, one request per stream:
//     -> { type: 'heads' }
//     <- { type: 'heads', heads: [head bytes…] }
//     -> { type: 'records', signer, from, to?, reads? }
//     <- { type: 'records', from, records: [record bytes…] }   (zero or more, in order)
//   `reads` is the highest record format version the requester reads (3 on this release; absent
//   from releases before version 3, which read 1 and 2): the answer stops before the first record
//   of a higher version, so an older peer holds the part it can verify instead of refusing the
//   copy and its sender.
//     <- { type: 'end', head?: head bytes }                   (the server's newest head for signer)
//   gossip on the ledger topic: { type: 'heads', heads: [head bytes…], records? }
//   `records`, when present, is { signer, from, records: [record bytes…] }: the records of the
//   announcing device's chain from `from` up to the seq of its head in `heads` (at most
//   MAX_PUSHED_RECORDS, MAX_PUSHED_BYTES in all), appended since its last announcement. A peer
//   holding the chain up to `from - 1` verifies and stores them with the head, as it would a
//   fetched copy, and needs no stream to fetch them; any other peer ignores them and fetches.
//   Releases before it ignore the field.

import { z } from 'zod'
import { FORMAT_VERSION_LLM, FORMAT_VERSION_NET, MAX_HEAD_BYTES, MAX_RECORD_V2_BYTES, MAX_RECORD_V3_BYTES } from './record.ts'

export const LEDGER_PROTOCOL = '/hive/ledger/1.0.0'

/** Default gossip topic for heads; the node passes its hive's own topic. */
export const DEFAULT_HEADS_TOPIC = 'hive/ledger/heads'

/** Records per response frame: 256 of the largest version-2 records stay well under one frame. */
export const RECORDS_PER_FRAME = 256

/** The record format versions this release reads, and what a request without `reads` reads. */
export const READS_VERSION = FORMAT_VERSION_NET
export const LEGACY_READS_VERSION = FORMAT_VERSION_LLM

/** Heads per message, in a response or one gossip message. */
export const MAX_HEADS_PER_MESSAGE = 2048

export const MAX_LEDGER_FRAME_BYTES = 1024 * 1024

const bytes = (max: number): z.ZodType<Uint8Array> =>
  z.instanceof(Uint8Array).refine(b => b.byteLength > 0 && b.byteLength <= max, `must be 1..${max} bytes`)

const seq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)
const peerIdString = z.string().min(1).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, 'a base58 PeerId')

export const LedgerRequest = z.discriminatedUnion('type', [
  z.object({ type: z.literal('heads') }),
  z.object({ type: z.literal('records'), signer: peerIdString, from: seq, to: seq.optional(), reads: z.number().int().min(1).max(255).optional() })
])
export type LedgerRequest = z.infer<typeof LedgerRequest>

/** Records an announcement of a head carries at most, and their bytes in all. */
export const MAX_PUSHED_RECORDS = 64
export const MAX_PUSHED_BYTES = 128 * 1024

export const PushedRecords = z.object({
  signer: peerIdString,
  from: seq,
  records: z.array(bytes(MAX_RECORD_V3_BYTES)).min(1).max(MAX_PUSHED_RECORDS)
    .refine(rs => rs.reduce((n, r) => n + r.byteLength, 0) <= MAX_PUSHED_BYTES, `at most ${MAX_PUSHED_BYTES} bytes of records`)
})
export type PushedRecords = z.infer<typeof PushedRecords>

export const HeadsMessage = z.object({
  type: z.literal('heads'),
  heads: z.array(bytes(MAX_HEAD_BYTES)).max(MAX_HEADS_PER_MESSAGE),
  records: PushedRecords.optional()
})
export type HeadsMessage = z.infer<typeof HeadsMessage>

export const RecordsResponse = z.discriminatedUnion('type', [
  z.object({ type: z.literal('records'), from: seq, records: z.array(bytes(MAX_RECORD_V2_BYTES)).min(1).max(RECORDS_PER_FRAME) }),
  z.object({ type: z.literal('end'), head: bytes(MAX_HEAD_BYTES).optional() })
])
export type RecordsResponse = z.infer<typeof RecordsResponse>

/** The answer to a request that says it reads version 3: records up to the largest of any version. */
export const RecordsResponseV3 = z.discriminatedUnion('type', [
  z.object({ type: z.literal('records'), from: seq, records: z.array(bytes(MAX_RECORD_V3_BYTES)).min(1).max(RECORDS_PER_FRAME) }),
  z.object({ type: z.literal('end'), head: bytes(MAX_HEAD_BYTES).optional() })
])

/** Room in a frame for anything but the records' bytes (type, from, the list's and each record's CBOR header). */
const FRAME_OVERHEAD_BYTES = 64
const RECORD_OVERHEAD_BYTES = 8

/**
 * Splits records (in order) into response frames: at most RECORDS_PER_FRAME each, and few enough
 * bytes that the frame stays within MAX_LEDGER_FRAME_BYTES (version-3 records are up to ~11 KiB,
 * so a frame of them holds fewer than 256).
 */
export function recordFrames (records: readonly Uint8Array[]): Uint8Array[][] {
  const frames: Uint8Array[][] = []
  let frame: Uint8Array[] = []
  let size = FRAME_OVERHEAD_BYTES
  for (const r of records) {
    const cost = r.byteLength + RECORD_OVERHEAD_BYTES
    if (frame.length > 0 && (frame.length >= RECORDS_PER_FRAME || size + cost > MAX_LEDGER_FRAME_BYTES)) {
      frames.push(frame)
      frame = []
      size = FRAME_OVERHEAD_BYTES
    }
    frame.push(r)
    size += cost
  }
  if (frame.length > 0) frames.push(frame)
  return frames
}
