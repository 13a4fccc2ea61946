// The hive's mesh protocols, named for node/ (which imports protocol/ only from here):
//   wire/          the shared kit: ids and bounds, framing, codec, serveProtocol, topics,
//                  signing, signed DHT records, the `peer` record
//   membership/    who belongs to the hive: signed entries, the gate, list replication
//   pairing/       one-time invites that add a device to the hive
//   capabilities/  what every device offers, on gossip
//   agents/        agent bytes by digest and /hive/agent-fetch/1.0.0
//   placement/     task auctions: announce, bid, elect, run under a lease, record
//   control/       the kill switch: signed halt and resume entries on every member
//   registry/      agents by name: signed publish and yank entries on every member
// May use libp2p interfaces only; never imports node/, crdt/, ledger/ or sandbox/.

export * from './wire/index.ts'
export * from './membership/index.ts'
export * from './pairing/index.ts'
export * from './capabilities/index.ts'
export * from './agents/index.ts'
export * from './placement/index.ts'
export * from './control/index.ts'
export * from './registry/index.ts'
export { MEMBERSHIP_PROTOCOL, PAIRING_PROTOCOL } from './wire/index.ts'
export { Refusal } from './placement/index.ts'
export type { Refusal as MembershipRefusal } from './membership/index.ts'
