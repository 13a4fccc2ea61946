// The wire kit every hive protocol shares: protocol ids and bounds, framing, the CBOR-plus-schema
// codec, the inbound-handler wrapper and dial helpers, gossip topics, signing and its one
// verifier, signed entries and their replication among members, signed DHT records and the
// `peer` kind, the logger shape and the errors. Uses libp2p interfaces only; imports nothing
// else from protocol/ (crdt/ and ledger/ use it too).

export * from './errors.ts'
export * from './ids.ts'
export * from './log.ts'
export * from './codec.ts'
export * from './framing.ts'
export * from './serve.ts'
export * from './topic.ts'
export * from './direct-topic.ts'
export * from './direct-links.ts'
export * from './signing.ts'
export * from './signed-entries.ts'
export * from './replicated-entries.ts'
export * from './dht-records.ts'
export * from './dht-put.ts'
export * from './peer-record.ts'
export * from './http-get.ts'
