// Errors of an LLM call. Each class's `name` is its code, and each maps one-to-one onto a case of
// the `error` variant of the `hive:agent/llm` WIT interface, so an agent sees the same code.

export class ModelNotFoundError extends Error {
  static readonly code = 'ModelNotFound'
  override name = 'ModelNotFound'
}

export class BudgetExceededError extends Error {
  static readonly code = 'BudgetExceeded'
  override name = 'BudgetExceeded'
}

export class LlmNotPermittedError extends Error {
  static readonly code = 'LlmNotPermitted'
  override name = 'LlmNotPermitted'
}

export class LlmUnavailableError extends Error {
  static readonly code = 'LlmUnavailable'
  override name = 'LlmUnavailable'
}

export class LlmTooLargeError extends Error {
  static readonly code = 'LlmTooLarge'
  override name = 'LlmTooLarge'
}

/** A budget setting is malformed or its signature does not verify: it is ignored. */
export class InvalidBudgetSettingError extends Error {
  static readonly code = 'InvalidBudgetSetting'
  override name = 'InvalidBudgetSetting'
}
