// Errors raised by hive membership. Each class's `name` is its code; tests assert on it.

/** An entry that is malformed, badly signed, from another hive or missing what it builds on. */
export class InvalidEntryError extends Error {
  static readonly code = 'InvalidEntry'
  override name = 'InvalidEntry'
}

/** A well-formed entry whose signer was not a member when it signed it. */
export class UnauthorizedEntryError extends Error {
  static readonly code = 'UnauthorizedEntry'
  override name = 'UnauthorizedEntry'
}

/** Entries that belong to a different hive than the one this node is in. */
export class HiveMismatchError extends Error {
  static readonly code = 'HiveMismatch'
  override name = 'HiveMismatch'
}

/** The member list would grow beyond its bound. */
export class TooManyEntriesError extends Error {
  static readonly code = 'TooManyEntries'
  override name = 'TooManyEntries'
}

/** The peer named is not a member of this hive. */
export class NotAMemberError extends Error {
  static readonly code = 'NotAMember'
  override name = 'NotAMember'
}

/** A device cannot remove itself; another member removes it, or it joins another hive. */
export class CannotRemoveSelfError extends Error {
  static readonly code = 'CannotRemoveSelf'
  override name = 'CannotRemoveSelf'
}

/** A PeerId that is not a valid Ed25519 PeerId. */
export class InvalidPeerIdError extends Error {
  static readonly code = 'InvalidPeerId'
  override name = 'InvalidPeerId'
}

/** Membership was used before start() or after stop(). */
export class MembershipNotStartedError extends Error {
  static readonly code = 'MembershipNotStarted'
  override name = 'MembershipNotStarted'
}
