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

/** A policy value given to `policy set` is not acceptable; the message names the field and what it takes. */
export class PolicyValueError extends Error {
  static readonly code = 'PolicyValue'
  override name = 'PolicyValue'
}

/** A budget value given to `budget set` is not acceptable; the message names the field and what it takes. */
export class BudgetValueError extends Error {
  static readonly code = 'BudgetValue'
  override name = 'BudgetValue'
}

/** A task is over a budget: refused at submission, saying what was used, when it resets and what to change. */
export class OverBudgetError extends Error {
  static readonly code = 'OverBudget'
  override name = 'OverBudget'
  readonly kind?: 'agent' | 'context'
  readonly key?: string
  /** When the day's count starts again (ms since the epoch, the next UTC midnight). */
  readonly resetsAt?: number
  constructor (message: string, detail?: { kind: 'agent' | 'context', key: string, resetsAt: number }) {
    super(message)
    // rebuilt from its name and message (a worker thread, a table check), it has no detail
    if (detail != null) {
      this.kind = detail.kind
      this.key = detail.key
      this.resetsAt = detail.resetsAt
    }
  }
}
