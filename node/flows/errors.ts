// Errors of workflows. Each class's `name` is its code.

/** A workflow file or definition that cannot run: its message names the step and what to change. */
export class InvalidWorkflowError extends Error {
  static readonly code = 'InvalidWorkflow'
  override name = 'InvalidWorkflow'
  /** The step at fault, when one is. */
  readonly step?: string
  constructor (message: string, step?: string) {
    super(message)
    if (step != null) this.step = step
  }
}

/** No workflow with that id was run on this device. */
export class FlowNotFoundError extends Error {
  static readonly code = 'FlowNotFound'
  override name = 'FlowNotFound'
}

/** The workflow already ended (done, failed or cancelled). */
export class FlowAlreadyEndedError extends Error {
  static readonly code = 'FlowAlreadyEnded'
  override name = 'FlowAlreadyEnded'
}

/** A step names an agent this device cannot find: a digest it does not hold, or a registry name. */
export class AgentNotFoundError extends Error {
  static readonly code = 'FlowAgentNotFound'
  override name = 'FlowAgentNotFound'
}

/** This device runs as many workflows as it takes at once. */
export class TooManyFlowsError extends Error {
  static readonly code = 'TooManyFlows'
  override name = 'TooManyFlows'
}

/** The workflow engine is not running (the node is starting or stopping). */
export class FlowsNotRunningError extends Error {
  static readonly code = 'FlowsNotRunning'
  override name = 'FlowsNotRunning'
}
