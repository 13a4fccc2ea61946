// Types of the hive:agent@0.1.0 host interfaces as a JS/TS agent sees them after
// `hive-node agent build`. Import only what the manifest's permissions grant.
// A host call that fails (a store error) throws; the thrown value's `payload` holds the reason.

declare module 'hive:agent/log@0.1.0' {
  export type Level = 'debug' | 'info' | 'warn' | 'error'
  /** Needs permission "log". */
  export function log (level: Level, message: string): void
}

declare module 'hive:agent/context@0.1.0' {
  /** The value stored under `key`, or undefined. Needs permission "context:read". */
  export function get (key: string): string | undefined
  /** Stores `value` under `key`. Needs permission "context:write". */
  export function set (key: string, value: string): void
  /** Appends one entry to the conversation. Needs permission "context:write". */
  export function append (text: string): void
}
