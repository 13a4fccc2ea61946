// Mesh protocols not owned by one subsystem, and the wire helpers every protocol uses:
// framing, message validation, protocol ids, signed DHT records and the inbound-handler
// wrapper. May use libp2p interfaces only; never imports node/.

export * from './errors.ts'
export * from './wire.ts'
export * from './handler.ts'
export * from './ids.ts'
export * from './dht-records.ts'
