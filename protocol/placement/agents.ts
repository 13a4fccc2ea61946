// Moved to protocol/agents/; kept, typed with placement's Digest, while placement moves its imports.
import { createAgentStore as createStore } from '../agents/store.ts'
import type { AgentStore as Store } from '../agents/store.ts'
import type { Digest } from './ids.ts'
export { AGENT_FETCH_PROTOCOL, fetchAgent, serveAgentFetch } from '../agents/fetch.ts'
export type AgentStore = Store<Digest>
export function createAgentStore (init: { maxBytes?: number } = {}): AgentStore { return createStore<Digest>(init) }
