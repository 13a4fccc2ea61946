// Errors raised by pairing. Each class's `name` is its code; tests assert on it. The codes of
// refusals travel on the wire too, so the joiner sees the same error the inviter raised.

/** Not a hive invite at all (another kind of text or image). */
export class InvalidInviteError extends Error {
  static readonly code = 'InvalidInvite'
  override name = 'InvalidInvite'
}

/** An invite whose checksum does not match: mistyped, cut short or damaged. */
export class InviteDamagedError extends Error {
  static readonly code = 'InviteDamaged'
  override name = 'InviteDamaged'
}

export class InviteExpiredError extends Error {
  static readonly code = 'InviteExpired'
  override name = 'InviteExpired'
}

/** The invite's one use is spent. */
export class InviteUsedError extends Error {
  static readonly code = 'InviteUsed'
  override name = 'InviteUsed'
}

/** Closed after too many wrong attempts, or cancelled. */
export class InviteClosedError extends Error {
  static readonly code = 'InviteClosed'
  override name = 'InviteClosed'
}

/** The inviter holds no such invite (another device's, or the inviter restarted since). */
export class InviteUnknownError extends Error {
  static readonly code = 'InviteUnknown'
  override name = 'InviteUnknown'
}

/** The joiner's proof does not match the invite's secret. */
export class WrongSecretError extends Error {
  static readonly code = 'WrongSecret'
  override name = 'WrongSecret'
}

/** The device answering at the inviter's address could not prove it holds the invite's secret. */
export class InviterNotAuthenticError extends Error {
  static readonly code = 'InviterNotAuthentic'
  override name = 'InviterNotAuthentic'
}

export class InviterUnreachableError extends Error {
  static readonly code = 'InviterUnreachable'
  override name = 'InviterUnreachable'
}

/** This device is already a member of the hive it was invited to. */
export class AlreadyMemberError extends Error {
  static readonly code = 'AlreadyMember'
  override name = 'AlreadyMember'
}

/** This device shares a hive with other devices; joining another would leave it. */
export class AlreadyInHiveError extends Error {
  static readonly code = 'AlreadyInHive'
  override name = 'AlreadyInHive'
}

/** An invite made by this very device. */
export class OwnInviteError extends Error {
  static readonly code = 'OwnInvite'
  override name = 'OwnInvite'
}

/** An image with no readable QR code in it. */
export class QrNotFoundError extends Error {
  static readonly code = 'QrNotFound'
  override name = 'QrNotFound'
}

/** The other side broke the pairing protocol or hung up midway. */
export class PairingFailedError extends Error {
  static readonly code = 'PairingFailed'
  override name = 'PairingFailed'
}

export class InvalidTtlError extends Error {
  static readonly code = 'InvalidTtl'
  override name = 'InvalidTtl'
}

/** Refusal codes an inviter may send, and the error each becomes on the joiner's side. */
export const REFUSALS = {
  InviteExpired: InviteExpiredError,
  InviteUsed: InviteUsedError,
  InviteClosed: InviteClosedError,
  InviteUnknown: InviteUnknownError,
  WrongSecret: WrongSecretError,
  AlreadyMember: AlreadyMemberError,
  PairingFailed: PairingFailedError
} as const

export type RefusalCode = keyof typeof REFUSALS
