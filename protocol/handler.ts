// Moved to protocol/wire/serve.ts; kept while other parts move their imports.
export * from './wire/serve.ts'
