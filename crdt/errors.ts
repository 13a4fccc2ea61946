// Errors raised by the context subsystem. Each class's `name` is its code; tests and the API
// assert on it. Messages say what was wrong and what to do about it.

export class InvalidContextIdError extends Error {
  static readonly code = 'InvalidContextId'
  override name = 'InvalidContextId'
}

export class ContextNotFoundError extends Error {
  static readonly code = 'ContextNotFound'
  override name = 'ContextNotFound'
}

/** A synced write to LevelDB failed: the change was not made, not applied and not sent. */
export class ContextWriteFailedError extends Error {
  static readonly code = 'ContextWriteFailed'
  override name = 'ContextWriteFailed'
}

/** Stored updates could not be read back into a document. */
export class ContextCorruptError extends Error {
  static readonly code = 'ContextCorrupt'
  override name = 'ContextCorrupt'
}

/** An update (from a peer, or a local change) exceeds the configured size limit. */
export class UpdateTooLargeError extends Error {
  static readonly code = 'UpdateTooLarge'
  override name = 'UpdateTooLarge'
}

/** An update failed validation: empty, truncated, trailing bytes or an impossible structure. */
export class MalformedUpdateError extends Error {
  static readonly code = 'MalformedUpdate'
  override name = 'MalformedUpdate'
}

/** A value nests arrays and objects deeper than the limit every node applies. */
export class ValueTooDeepError extends Error {
  static readonly code = 'ValueTooDeep'
  override name = 'ValueTooDeep'
}

/** Updates held for missing dependencies in one context exceed their bound. */
export class PendingOverLimitError extends Error {
  static readonly code = 'PendingOverLimit'
  override name = 'PendingOverLimit'
}

/**
 * This node refused one update from a peer (well-formed, but beyond a limit): the update is
 * dropped, the peer is told which, and the link carries on with everything else.
 */
export class UpdateRefusedError extends Error {
  static readonly code = 'UpdateRefused'
  override name = 'UpdateRefused'
}

/** A peer refused an update of ours: that context does not reach it; the rest still does. */
export class PeerRefusedUpdateError extends Error {
  static readonly code = 'PeerRefusedUpdate'
  override name = 'PeerRefusedUpdate'
}

export class CheckpointExistsError extends Error {
  static readonly code = 'CheckpointExists'
  override name = 'CheckpointExists'
}

export class CheckpointNotFoundError extends Error {
  static readonly code = 'CheckpointNotFound'
  override name = 'CheckpointNotFound'
}

export class InvalidCheckpointNameError extends Error {
  static readonly code = 'InvalidCheckpointName'
  override name = 'InvalidCheckpointName'
}

/** The store was used before `start()` or after `stop()`. */
export class ContextStoreClosedError extends Error {
  static readonly code = 'ContextStoreClosed'
  override name = 'ContextStoreClosed'
}

/** A peer broke the replication protocol; the stream is closed and the peer hung up on. */
export class ReplicationProtocolError extends Error {
  static readonly code = 'ReplicationProtocol'
  override name = 'ReplicationProtocol'
}
