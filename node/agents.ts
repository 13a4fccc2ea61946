// The node's side of the sandbox: where compiled agents are cached, and the agent context
// interface and the agents' kv stores backed by the replicated context store, so what an agent
// writes is durable and reaches every device.

import { join } from 'node:path'
import { InvalidContextIdError, contextId, isReservedContextId } from '../crdt/index.ts'
import type { AgentContexts, AgentKv } from '../sandbox/index.ts'
import type { ContextStore } from '../crdt/index.ts'

/** `<data>/agents-cache`: jco's output per agent digest; safe to delete, rebuilt on demand. */
export function agentsCacheDir (dataDir: string): string {
  return join(dataDir, 'agents-cache')
}

/**
 * Agent contexts on the CRDT store: `get` reads the context's state (a value that is not a
 * string is handed over as JSON), `set` writes it, `append` adds to the conversation with the
 * role "agent", `readConversation` reads its last entries. Each write resolves once it is on disk.
 */
export function storeBackedContexts (store: ContextStore): AgentContexts {
  return {
    async open (id) {
      // `hive.` contexts carry the hive's own settings (the budget): no agent writes them
      if (isReservedContextId(id)) throw new InvalidContextIdError(`context ${id} is reserved for the hive's settings; agents use other ids`)
      const ctx = await store.open(contextId(id))
      return {
        get: (key) => {
          const value = ctx.get(key)
          if (value === undefined || value === null) return undefined
          return typeof value === 'string' ? value : JSON.stringify(value)
        },
        set: async (key, value) => { await ctx.set(key, value) },
        append: async (text) => { await ctx.append(text, { role: 'agent' }) },
        readConversation: (last) => last <= 0 ? [] : ctx.view().conversation.slice(-last).map(e => ({ role: e.role, text: e.text }))
      }
    }
  }
}

/** The reserved context holding an agent's kv store: hidden from listings, closed to agents as a context. */
export const KV_CONTEXT_PREFIX = 'hive.kv.'

export function kvContextId (agent: string): string {
  return `${KV_CONTEXT_PREFIX}${agent}`
}

/**
 * Agents' kv stores on the CRDT store: one reserved context per agent name (`hive.kv.<name>`),
 * its state map the store, so a store replicates and merges like any context (concurrent writes
 * to one key: the context's rule picks one on every device alike). Each write resolves once it
 * is on disk.
 */
export function storeBackedKv (store: ContextStore): AgentKv {
  return {
    async open (agent) {
      const ctx = await store.open(contextId(kvContextId(agent)))
      const read = (key: string): string | undefined => {
        const value = ctx.get(key)
        if (value === undefined || value === null) return undefined
        return typeof value === 'string' ? value : JSON.stringify(value)
      }
      return {
        get: read,
        set: async (key, value) => { await ctx.set(key, value) },
        delete: async (key) => {
          if (read(key) === undefined) return false
          await ctx.delete(key)
          return true
        },
        list: (prefix, limit) => Object.keys(ctx.view().state).filter(k => k.startsWith(prefix)).sort().slice(0, limit)
      }
    }
  }
}
