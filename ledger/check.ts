// Per-record checks of one contiguous slice of a chain. Pure and self-contained so the same code
// runs inline for short chains and in worker threads (verify-worker.ts) for long ones.

import {
  HASH_BYTES, MAX_RECORD_V3_BYTES, RECORD_DOMAIN, SIGNATURE_BYTES, bytesEqual, ed25519KeyObject, scanRecord, sha256, signerBytes,
  signerFromBytes, signerPublicKey, verifyEd25519
} from './record.ts'

/** Reasons a single record fails, in the order they are checked (the first one found is named). */
export type RecordCheckReason = 'malformed' | 'wrong-chain' | 'seq-mismatch' | 'broken-link' | 'bad-signature'

export interface SliceInput {
  /** The chain's signer (PeerId string). */
  signer: string
  /** Position (storage seq) of the first record in the slice. */
  startSeq: number
  /** The slice's records, concatenated. */
  buffer: Uint8Array
  /** n + 1 offsets into `buffer`: record i is buffer[offsets[i], offsets[i + 1]). */
  offsets: Uint32Array
}

export interface SliceFault {
  /** Index within the slice. */
  index: number
  reason: RecordCheckReason
  message: string
}

export interface SliceResult {
  /** The first record in the slice that fails a check, if any. Links to the record before the
   * slice are not checked here: `firstPrev` is returned for the caller to compare. */
  fault: SliceFault | null
  /** The prev field of the slice's first record, when it decodes. */
  firstPrev: Uint8Array | null
  /** SHA-256 of the slice's last record (its stored bytes). */
  lastHash: Uint8Array | null
}

export function checkSlice (input: SliceInput): SliceResult {
  const { signer, startSeq, buffer, offsets } = input
  const count = offsets.length - 1
  let key
  let expected: Uint8Array
  try {
    expected = signerBytes(signer)
    key = ed25519KeyObject(signerPublicKey(signer))
  } catch (err) {
    return { fault: { index: 0, reason: 'malformed', message: (err as Error).message }, firstPrev: null, lastHash: null }
  }
  const domain = RECORD_DOMAIN.byteLength
  // one scratch buffer for every signed message: DOMAIN || body, rewritten per record
  const scratch = new Uint8Array(domain + MAX_RECORD_V3_BYTES)
  scratch.set(RECORD_DOMAIN, 0)
  let firstPrev: Uint8Array | null = null
  let prevHash: Uint8Array | null = null
  let i = 0
  const fault = (reason: RecordCheckReason, message: string): SliceResult =>
    ({ fault: { index: i, reason, message }, firstPrev, lastHash: null })
  for (; i < count; i++) {
    const bytes = buffer.subarray(offsets[i] as number, offsets[i + 1] as number)
    const seq = startSeq + i
    let layout
    try {
      layout = scanRecord(bytes)
    } catch (err) {
      return fault('malformed', `record ${seq} does not decode: ${(err as Error).message}`)
    }
    const prev = bytes.subarray(9, 9 + HASH_BYTES)
    // copies: a view would drag the whole slice buffer along when the result is posted back
    if (i === 0) firstPrev = Uint8Array.from(prev)
    if (!bytesEqual(layout.signer, expected)) return fault('wrong-chain', `record ${seq} names signer ${signerFromBytes(layout.signer)}, not ${signer}`)
    if (layout.seq !== seq) return fault('seq-mismatch', `the record at position ${seq} says seq ${layout.seq}`)
    if (prevHash != null && !bytesEqual(prev, prevHash)) {
      return fault('broken-link', `record ${seq}'s previous-hash does not match the hash of record ${seq - 1}`)
    }
    const bodyLength = bytes.byteLength - SIGNATURE_BYTES
    scratch.set(bytes.subarray(0, bodyLength), domain)
    if (!verifyEd25519(key, scratch.subarray(0, domain + bodyLength), bytes.subarray(bodyLength))) {
      return fault('bad-signature', `record ${seq}'s signature does not verify under ${signer}'s key`)
    }
    prevHash = sha256(bytes)
  }
  return { fault: null, firstPrev, lastHash: prevHash }
}

/** Packs records into one buffer + offsets (one transfer to a worker instead of thousands). */
export function packSlice (signer: string, startSeq: number, records: Uint8Array[]): SliceInput {
  let total = 0
  for (const r of records) total += r.byteLength
  const buffer = new Uint8Array(total)
  const offsets = new Uint32Array(records.length + 1)
  let offset = 0
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as Uint8Array
    buffer.set(r, offset)
    offset += r.byteLength
    offsets[i + 1] = offset
  }
  return { signer, startSeq, buffer, offsets }
}
