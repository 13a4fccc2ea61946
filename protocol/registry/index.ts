// The agent registry: signed publish and yank entries replicated to every member (PROTOCOL.md),
// the catalog they make (which bytes each NAME@VERSION is), and the components fetched by digest
// from any member that holds them. May use the wire kit, agents/ and libp2p interfaces; never
// imports node/ or sandbox/ (the node hands it a function that reads a manifest).

export * from './errors.ts'
export * from './entries.ts'
export { Catalog } from './catalog.ts'
export type { PublishedAgent, PublishedVersion } from './catalog.ts'
export { REGISTRY_PROTOCOL } from '../wire/ids.ts'
export { MAX_REGISTRY_ENTRIES, MAX_REGISTRY_MESSAGE_BYTES, REGISTRY_ENTRIES_PER_FRAME, createRegistry } from './registry.ts'
export type { InspectedAgent, Registry, RegistryComponents, RegistryDb, RegistryEvents, RegistryHost, ResolvedAgent } from './registry.ts'
