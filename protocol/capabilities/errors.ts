// Errors raised by capability gossip. Each class's `name` is its code; tests assert on it.

/** A capability override a user set is not acceptable (e.g. a negative load). */
export class InvalidCapabilityOverrideError extends Error {
  static readonly code = 'InvalidCapabilityOverride'
  override name = 'InvalidCapabilityOverride'
}

/** A gossiped capability message is not CBOR or does not match the schema. */
export class MalformedCapabilitiesError extends Error {
  static readonly code = 'MalformedCapabilities'
  override name = 'MalformedCapabilities'
}

/** The capability service was used before `start()` or after `stop()`. */
export class CapabilitiesNotRunningError extends Error {
  static readonly code = 'CapabilitiesNotRunning'
  override name = 'CapabilitiesNotRunning'
}
