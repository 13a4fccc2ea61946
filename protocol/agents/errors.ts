// Errors of the agent store and of fetching agents. Each class's `name` is its code.

/** The agent's bytes could not be had from the peer asked, or arrived in a shape that does not add up. */
export class AgentFetchError extends Error {
  static readonly code = 'AgentFetch'
  override name = 'AgentFetch'
}

/** The bytes a peer sent do not hash to the digest asked for; they are never run. */
export class AgentDigestMismatchError extends Error {
  static readonly code = 'AgentDigestMismatch'
  override name = 'AgentDigestMismatch'
}
