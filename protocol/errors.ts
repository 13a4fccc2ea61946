// Moved to protocol/wire/errors.ts; kept while other parts move their imports.
export * from './wire/errors.ts'
