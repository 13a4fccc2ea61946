// The ledger: signed, hash-chained execution records. Encodes, hashes, signs, appends, verifies
// and exchanges chains between peers. May use level (a database handle it is given), node:crypto,
// @noble/ed25519 through the signer it is given, libp2p interfaces and protocol/ wire helpers;
// never imports node/.

export * from './errors.ts'
export * from './record.ts'
export * from './signer.ts'
export * from './store.ts'
export * from './check.ts'
export * from './audit.ts'
export * from './exchange.ts'
export * from './ledger.ts'
export * from './listing.ts'
export * from './health.ts'

/** The sublevel name the node gives the ledger inside its database (the CLI opens it offline too). */
export const LEDGER_SUBLEVEL = 'ledger'
