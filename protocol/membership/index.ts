// Hive membership: the hive's id and its signed member list (who added whom, who was removed),
// its durable store, its replication between members, and the gate that keeps every non-member
// out of libp2p connections, protocol streams, DHT records and gossip. May use libp2p
// interfaces, the wire helpers in ../wire.ts and a LevelDB handle; never imports node/.

export * from './errors.ts'
export { base32Decode, base32Encode } from './base32.ts'
export {
  ENTRY_DOMAIN, HIVE_ID_PATTERN, checkPeerId, createEntry, decodeEntry, encodeEntry, entryIdOf, hiveIdOf, openEntry, publicKeyOf, signingBytes, toWire
} from './entries.ts'
export type { Entry, EntryBody, EntryId, EntryType, HiveId, MembershipSigner, WireEntry } from './entries.ts'
export { MAX_ENTRIES, MemberGraph } from './graph.ts'
export type { ChainLink, HiveView, Member, Removal } from './graph.ts'
export { MAX_RELAYED_ADDRS, MEMBERSHIP_SUBLEVEL, Membership, boundAddresses, createMembership, isRelayedAddress, readStoredHive } from './membership.ts'
export type { MemberSummary, MembershipChange, MembershipComponents, MembershipDb, MembershipInit, MembershipLog } from './membership.ts'
export { MAX_RELAY_WINDOWS_PER_MEMBER, MembershipGate, NON_MEMBER_GOSSIP_SCORE, RELAY_HOP_PROTOCOL, RELAY_WINDOW_MAX_MS, createGate } from './gate.ts'
export type { GateComponents, GateHost, GateInit, GateLog, GossipHost, Refusal } from './gate.ts'
export { DHT_KEEP_ALIVE_TAG, MESH_IDLE_MS, MESH_SWEEP_MS, MeshKeeper, createMeshKeeper } from './mesh.ts'
export type { MeshKeeperComponents, MeshKeeperInit, MeshNetwork } from './mesh.ts'
export { ALL_TO_ALL_MAX, MAX_NEIGHBOURS, isAllToAll, isTransientLink, neighbourOffsets, neighboursOf } from './neighbours.ts'
export { MAX_MEMBERSHIP_MESSAGE_BYTES, MEMBERSHIP_PROTOCOL, REDIAL_MAX_MS, REDIAL_MIN_MS, REDIAL_STABLE_MS, MembershipSync, createMembershipSync } from './sync.ts'
export type { MembershipNetwork, MembershipSyncComponents, MembershipSyncInit, SyncFault, SyncLog } from './sync.ts'
