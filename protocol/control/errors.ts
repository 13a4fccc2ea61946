// Errors of the hive's controls (halt and resume). Each class's `name` is its code.

/** The hive is halted: nothing is submitted, bid on or run until a member resumes it. */
export class HaltedError extends Error {
  static readonly code = 'Halted'
  override name = 'Halted'
}

/** A halt or resume entry that does not decode, is not canonical, or whose signature fails. */
export class InvalidControlEntryError extends Error {
  static readonly code = 'InvalidControlEntry'
  override name = 'InvalidControlEntry'
}

/** A halt or resume was asked of a device that belongs to no hive yet, or with a bad reason. */
export class ControlRefusedError extends Error {
  static readonly code = 'ControlRefused'
  override name = 'ControlRefused'
}
