// The context an agent reads and writes through the `hive:agent/context` interface. The sandbox
// needs only this narrow shape, so the node can back it with the replicated CRDT store; for
// local runs and tests an in-memory implementation serves.

/** One conversation entry as an agent reads it. */
export interface AgentConversationEntry {
  /** Who wrote it: `user`, `agent`, ... */
  role: string
  text: string
}

/** One agent context: a string key/value state and an append-only conversation. */
export interface AgentContext {
  get: (key: string) => string | undefined | Promise<string | undefined>
  set: (key: string, value: string) => void | Promise<void>
  append: (text: string) => void | Promise<void>
  /**
   * The last `last` entries of the conversation, oldest first. A context without it answers the
   * agent's `conversation` call with an error.
   */
  readConversation?: (last: number) => AgentConversationEntry[] | Promise<AgentConversationEntry[]>
}

/** Opens contexts by id (the node's context store, or the in-memory one below). */
export interface AgentContexts {
  open: (contextId: string) => AgentContext | Promise<AgentContext>
}

export interface MemoryContext extends AgentContext {
  readonly state: ReadonlyMap<string, string>
  /** The texts of the conversation, oldest first. */
  readonly conversation: readonly string[]
  /** The conversation with who wrote each entry. */
  readonly entries: readonly AgentConversationEntry[]
  /** Adds an entry as someone other than the agent (a user typing into the context). */
  say: (role: string, text: string) => void
}

export function createMemoryContext (): MemoryContext {
  const state = new Map<string, string>()
  const entries: AgentConversationEntry[] = []
  const texts: string[] = []
  const say = (role: string, text: string): void => {
    entries.push({ role, text })
    texts.push(text)
  }
  return {
    state,
    entries,
    conversation: texts,
    get: key => state.get(key),
    set: (key, value) => { state.set(key, value) },
    append: text => { say('agent', text) },
    readConversation: last => last <= 0 ? [] : entries.slice(-last).map(e => ({ ...e })),
    say
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
