// Errors of the agent registry. Each class's `name` is its code; tests assert on it.

/** A catalog entry that does not decode, is not canonical, or whose signature fails. */
export class InvalidCatalogEntryError extends Error {
  static readonly code = 'InvalidCatalogEntry'
  override name = 'InvalidCatalogEntry'
}

/** A name, version, tag or `NAME@VERSION` reference that breaks the registry's syntax. */
export class InvalidAgentRefError extends Error {
  static readonly code = 'InvalidAgentRef'
  override name = 'InvalidAgentRef'
}

/** No published agent answers to the reference (or every version it names is yanked). */
export class AgentNotPublishedError extends Error {
  static readonly code = 'AgentNotPublished'
  override name = 'AgentNotPublished'
}

/** The version is yanked: it is no longer run by name (its entries stay verifiable). */
export class AgentYankedError extends Error {
  static readonly code = 'AgentYanked'
  override name = 'AgentYanked'
}

/** NAME@VERSION is already published with other bytes: a version is never replaced. */
export class VersionConflictError extends Error {
  static readonly code = 'VersionConflict'
  override name = 'VersionConflict'
}

/** A publish or yank was refused: this device is in no hive, or the catalog is full. */
export class RegistryRefusedError extends Error {
  static readonly code = 'RegistryRefused'
  override name = 'RegistryRefused'
}

/** No member that is reachable holds the component, or what they sent was not it. */
export class ComponentUnavailableError extends Error {
  static readonly code = 'ComponentUnavailable'
  override name = 'ComponentUnavailable'
}
