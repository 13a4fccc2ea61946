// Agent contexts: one Yjs document per context (conversation, state, checkpoints), stored in
// LevelDB with a synced write before anything is acknowledged, and replicated to every
// connected peer with y-protocols sync and awareness over one libp2p stream per peer.
// May use: yjs, y-protocols, lib0, zod, a LevelDB handle, a narrow libp2p interface, and
// protocol/ for framing. Never imports node/.

export * from './errors.ts'
export * from './ids.ts'
export * from './layout.ts'
export * from './limits.ts'
export { createContexts, CONTEXT_PROTOCOL } from './contexts.ts'
export type { Contexts, ContextsComponents, ContextsInit, ContextsLibp2p } from './contexts.ts'
export { createContextStore, LOCAL_ORIGIN, DEFAULT_MAX_UPDATE_BYTES, requireContext } from './store.ts'
export type { Context, ContextStore, ContextStoreInit, ContextStoreComponents, ContextInfo, ContextUpdateEvent, ContextCreatedEvent } from './store.ts'
export { createReplication, MESSAGE_SYNC, MESSAGE_AWARENESS, MESSAGE_REFUSED } from './replication.ts'
export type { Replication, ReplicationInit, ReplicationComponents, Link, AttachOptions } from './replication.ts'
export { Presence } from './presence.ts'
export type { PresenceEntry } from './presence.ts'
export { createUpdateLog } from './persistence.ts'
export type { LevelHandle, UpdateLog, CompactionResult } from './persistence.ts'
export { checkValue, validateUpdate, validateStateVector, validateSnapshot } from './validate.ts'
