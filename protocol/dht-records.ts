// Moved to protocol/wire/dht-records.ts; kept while other parts move their imports.
export * from './wire/dht-records.ts'
