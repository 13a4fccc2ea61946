// Moved to protocol/wire/framing.ts and codec.ts; kept while other parts move their imports.
export * from './wire/framing.ts'
export * from './wire/codec.ts'
