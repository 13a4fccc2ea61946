// Errors raised by task placement. Each class's `name` is its code; tests and the API assert on
// it. Messages say what was wrong and what to do.

/** A task as submitted is not acceptable (bad digest, oversized input, bad requirement). */
export class InvalidTaskError extends Error {
  static readonly code = 'InvalidTask'
  override name = 'InvalidTask'
}

/** No task with this id is known to this node. */
export class TaskNotFoundError extends Error {
  static readonly code = 'TaskNotFound'
  override name = 'TaskNotFound'
}

/** The auction closed without a single valid bid: no live member can meet the requirements. */
export class NoBidsError extends Error {
  static readonly code = 'NoBids'
  override name = 'NoBids'
}

/** Every bidder was tried and none delivered a result. */
export class BiddersExhaustedError extends Error {
  static readonly code = 'BiddersExhausted'
  override name = 'BiddersExhausted'
}

// Fetching an agent's bytes fails with the agent store's own errors: one class per failure.
export { AgentDigestMismatchError, AgentFetchError } from '../agents/errors.ts'

/** The submitter refused a request about a task (not the winner, lease lapsed, task closed). */
export class PlacementRefusedError extends Error {
  static readonly code = 'PlacementRefused'
  override name = 'PlacementRefused'
  readonly reason: string
  constructor (reason: string, message: string) {
    super(message)
    this.reason = reason
  }
}

/** The placement service was used before `start()` or after `stop()`. */
export class PlacementNotRunningError extends Error {
  static readonly code = 'PlacementNotRunning'
  override name = 'PlacementNotRunning'
}

/** The caller stopped waiting (its signal fired). */
export class TaskWaitAbortedError extends Error {
  static readonly code = 'TaskWaitAborted'
  override name = 'TaskWaitAborted'
}

/** The task has already ended (done, failed or cancelled): there is nothing to cancel. */
export class TaskAlreadyEndedError extends Error {
  static readonly code = 'TaskAlreadyEnded'
  override name = 'TaskAlreadyEnded'
}

/** Only a task's submitter may cancel it; `submitter` is the device to ask. */
export class NotSubmitterError extends Error {
  static readonly code = 'NotSubmitter'
  override name = 'NotSubmitter'
  readonly submitter: string
  constructor (submitter: string, message: string) {
    super(message)
    this.submitter = submitter
  }
}

/** Why a run stopped: its submitter cancelled the task. */
export class TaskCancelledError extends Error {
  static readonly code = 'TaskCancelled'
  override name = 'TaskCancelled'
}
