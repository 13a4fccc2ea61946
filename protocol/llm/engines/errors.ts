// Errors of the model backends that are not an LLM call's own (those are in ../errors.ts): adding
// a model file to a device. Each class's `name` is its code.

export class ModelFileMissingError extends Error {
  static readonly code = 'ModelFileMissing'
  override name = 'ModelFileMissing'
}

export class ModelFileInvalidError extends Error {
  static readonly code = 'ModelFileInvalid'
  override name = 'ModelFileInvalid'
}

export class ModelExistsError extends Error {
  static readonly code = 'ModelExists'
  override name = 'ModelExists'
}

export class ModelNameInvalidError extends Error {
  static readonly code = 'ModelNameInvalid'
  override name = 'ModelNameInvalid'
}

/** A request a backend cannot carry out as stated (e.g. an output schema that is not JSON). */
export class RequestInvalidError extends Error {
  static readonly code = 'RequestInvalid'
  override name = 'RequestInvalid'
}
