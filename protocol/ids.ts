// Moved to protocol/wire/ids.ts; kept while other parts move their imports.
export * from './wire/ids.ts'
