// Agents on the wire: the one store of agent bytes by digest that a node keeps (placement runs
// and serves from it, the API submits from it), and `/hive/agent-fetch/1.0.0`, which moves
// agents between devices and checks them against their digest. Uses wire/ only.

export * from './errors.ts'
export { DEFAULT_AGENT_STORE_BYTES, agentDigest, createAgentStore, isAgentDigest } from './store.ts'
export type { AgentDigest, AgentStore } from './store.ts'
export { AGENT_CHUNK_BYTES, AGENT_FETCH_PROTOCOL, AgentChunk, AgentFetchHeader, AgentFetchRequest, fetchAgent, serveAgentFetch } from './fetch.ts'
