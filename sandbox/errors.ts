// Errors raised by the sandbox. Each class's `name` is its code; tests and callers branch on it.
// Messages say what was wrong and what to do about it.

/** The file is not WebAssembly at all. */
export class NotWebAssemblyError extends Error {
  static readonly code = 'NotWebAssembly'
  override name = 'NotWebAssembly'
}

/** A core WebAssembly module was given where a component is needed. */
export class NotAComponentError extends Error {
  static readonly code = 'NotAComponent'
  override name = 'NotAComponent'
}

/** The component uses an encoding the checks cannot read, so it is refused rather than guessed at. */
export class UnsupportedComponentError extends Error {
  static readonly code = 'UnsupportedComponent'
  override name = 'UnsupportedComponent'
}

/** The component is not for the `hive:agent` world (no `run` export of the right type). */
export class WrongWorldError extends Error {
  static readonly code = 'WrongWorld'
  override name = 'WrongWorld'
}

/** The component imports something that is not granted to it; `importName` names it. */
export class ImportNotGrantedError extends Error {
  static readonly code = 'ImportNotGranted'
  override name = 'ImportNotGranted'
  readonly importName: string

  constructor (importName: string, message: string) {
    super(message)
    this.importName = importName
  }
}

/** The component carries no manifest. */
export class ManifestMissingError extends Error {
  static readonly code = 'ManifestMissing'
  override name = 'ManifestMissing'
}

/** The manifest is not valid JSON or does not match the schema. */
export class ManifestInvalidError extends Error {
  static readonly code = 'ManifestInvalid'
  override name = 'ManifestInvalid'
}

/** The manifest asks for more time or memory than this node allows any agent. */
export class LimitNotAllowedError extends Error {
  static readonly code = 'LimitNotAllowed'
  override name = 'LimitNotAllowed'
}

/** The agent's initial memory is already larger than its memory cap. */
export class MemoryLimitTooLowError extends Error {
  static readonly code = 'MemoryLimitTooLow'
  override name = 'MemoryLimitTooLow'
}

/** The agent ran and returned an error of its own; `agentError` is its text. */
export class AgentFailedError extends Error {
  static readonly code = 'AgentFailed'
  override name = 'AgentFailed'
  readonly agentError: string

  constructor (agentError: string) {
    super(agentError)
    this.agentError = agentError
  }
}

/** The agent trapped (unreachable, out-of-bounds access, stack overflow, a thrown JS value, ...). */
export class AgentTrappedError extends Error {
  static readonly code = 'AgentTrapped'
  override name = 'AgentTrapped'
}

/** The agent ran past its deadline and was stopped. */
export class AgentTimedOutError extends Error {
  static readonly code = 'AgentTimedOut'
  override name = 'AgentTimedOut'
}

/** The agent hit its memory cap and was stopped. */
export class MemoryLimitExceededError extends Error {
  static readonly code = 'MemoryLimitExceeded'
  override name = 'MemoryLimitExceeded'
  /** Linear memory the agent held when it was stopped, when known. */
  readonly memoryBytes: number | undefined

  constructor (message: string, memoryBytes?: number) {
    super(message)
    this.memoryBytes = memoryBytes
  }
}

/** jco could not transpile the component. */
export class CompileFailedError extends Error {
  static readonly code = 'CompileFailed'
  override name = 'CompileFailed'
}

/** Building a JS/TS agent failed. */
export class BuildFailedError extends Error {
  static readonly code = 'BuildFailed'
  override name = 'BuildFailed'
}

/** `agent new` would overwrite files that already exist. */
export class TargetExistsError extends Error {
  static readonly code = 'TargetExists'
  override name = 'TargetExists'
}

/** The sandbox is not started, or was stopped while the run waited or ran. */
export class SandboxNotRunningError extends Error {
  static readonly code = 'SandboxNotRunning'
  override name = 'SandboxNotRunning'
}

/** The caller's signal aborted the operation. */
export class AbortError extends Error {
  static readonly code = 'AbortError'
  override name = 'AbortError'
}

/** A run named a tool its agent's manifest does not declare. */
export class ToolNotFoundError extends Error {
  static readonly code = 'ToolNotFound'
  override name = 'ToolNotFound'
}

/** A tool's parameters do not match the JSON schema its manifest declares for them. */
export class ToolParamsInvalidError extends Error {
  static readonly code = 'ToolParamsInvalid'
  override name = 'ToolParamsInvalid'
}
