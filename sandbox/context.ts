// The context an agent reads and writes through the `hive:agent/context` interface. The sandbox
// needs only this narrow shape, so the node can back it with the replicated CRDT store; until
// then, and for local runs, an in-memory implementation serves.

/** One agent context: a string key/value state and an append-only conversation. */
export interface AgentContext {
  get: (key: string) => string | undefined | Promise<string | undefined>
  set: (key: string, value: string) => void | Promise<void>
  append: (text: string) => void | Promise<void>
}

/** Opens contexts by id (the node's context store, or the in-memory one below). */
export interface AgentContexts {
  open: (contextId: string) => AgentContext | Promise<AgentContext>
}

export interface MemoryContext extends AgentContext {
  readonly state: ReadonlyMap<string, string>
  readonly conversation: readonly string[]
}

export function createMemoryContext (): MemoryContext {
  const state = new Map<string, string>()
  const conversation: string[] = []
  return {
    state,
    conversation,
    get: key => state.get(key),
    set: (key, value) => { state.set(key, value) },
    append: text => { conversation.push(text) }
  }
}

/** Contexts kept in memory for the life of the process, created on first use. */
export function createMemoryContexts (): AgentContexts & { get: (contextId: string) => MemoryContext | undefined } {
  const contexts = new Map<string, MemoryContext>()
  return {
    open (contextId) {
      let c = contexts.get(contextId)
      if (c === undefined) {
        c = createMemoryContext()
        contexts.set(contextId, c)
      }
      return c
    },
    get: contextId => contexts.get(contextId)
  }
}
