// Agents on the wire: the one store of agent bytes by digest that a node keeps (placement runs
// and serves from it, the API submits from it), the same bytes kept on disk for the registry, and
// `/hive/agent-fetch/1.0.0`, which moves agents between devices and checks them against their
// digest. Uses wire/ only.

export * from './errors.ts'
export { DEFAULT_AGENT_STORE_BYTES, agentDigest, createAgentStore, isAgentDigest } from './store.ts'
export type { AgentDigest, AgentStore } from './store.ts'
export { createDiskAgentStore } from './disk.ts'
export type { DiskAgentStore } from './disk.ts'
export { AGENT_CHUNK_BYTES, AGENT_FETCH_PROTOCOL, AgentChunk, AgentFetchHeader, AgentFetchRequest, fetchAgent, fetchAgentFromAny, serveAgentFetch } from './fetch.ts'
export type { AgentSource, FetchOptions } from './fetch.ts'
