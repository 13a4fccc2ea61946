// Errors of the ledger. Each class's `name` is its code; tests and callers branch on it.

/** Bytes that do not decode as a record or head under FORMAT.md's encoding. */
export class MalformedRecordError extends Error {
  static readonly code = 'MalformedRecord'
  override name = 'MalformedRecord'
}

/** Fields handed to `append` that the encoding cannot carry (too long, not UTF-8, bad digest). */
export class InvalidRecordFieldsError extends Error {
  static readonly code = 'InvalidRecordFields'
  override name = 'InvalidRecordFields'
}

/** A PeerId that cannot sign ledger records: only Ed25519 PeerIds embed their public key. */
export class UnsupportedSignerError extends Error {
  static readonly code = 'UnsupportedSigner'
  override name = 'UnsupportedSigner'
}

/** A signer whose signature does not verify under its own PeerId's key. */
export class SignerMismatchError extends Error {
  static readonly code = 'SignerMismatch'
  override name = 'SignerMismatch'
}

/** A peer's copy of a chain that failed verification; nothing of it was stored. */
export class BadCopyError extends Error {
  static readonly code = 'BadCopy'
  override name = 'BadCopy'
  readonly seq: number
  readonly reason: string
  constructor (message: string, seq: number, reason: string) {
    super(message)
    this.seq = seq
    this.reason = reason
  }
}

/** A signed chain head whose signature does not verify or that does not decode. */
export class BadHeadError extends Error {
  static readonly code = 'BadHead'
  override name = 'BadHead'
}

/**
 * This device's chain is behind a head this device signed: the store was restored from an
 * older copy. Appending now would sign a second record for a sequence number already used.
 */
export class LedgerRollbackError extends Error {
  static readonly code = 'LedgerRollback'
  override name = 'LedgerRollback'
}

/** The ledger was used before `start()` or after `stop()`. */
export class LedgerNotStartedError extends Error {
  static readonly code = 'LedgerNotStarted'
  override name = 'LedgerNotStarted'
}

/** A peer did not answer a ledger request properly (closed early, refused, timed out). */
export class LedgerFetchError extends Error {
  static readonly code = 'LedgerFetch'
  override name = 'LedgerFetch'
}

/**
 * This device's own chain is damaged or missing records, so the node refuses to execute: a run
 * here could not be recorded. The message says what the audit found and how to recover.
 */
export class LedgerDamagedError extends Error {
  static readonly code = 'LedgerDamaged'
  override name = 'LedgerDamaged'
}
