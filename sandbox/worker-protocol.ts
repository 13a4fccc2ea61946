// Messages between the sandbox and its worker threads. The worker runs agent-influenced code, so
// what it sends is validated like any other untrusted input before the main thread acts on it.

import { z } from 'zod'
import type { WasmModule } from './wasm.ts'

export type ToWorker =
  | { type: 'load', key: string, glue: string, modules: Array<{ name: string, module: WasmModule }>, capPages: number }
  | { type: 'run', id: number, key: string, input: string, grants: string[] }

export const FromWorkerSchema = z.union([
  z.object({ type: z.literal('ready') }),
  /** After a run: the worker is idle again, holding a prepared instance for `spare` if any. */
  z.object({ type: z.literal('idle'), spare: z.string().nullable() }),
  z.object({ type: z.literal('log'), id: z.number(), level: z.enum(['debug', 'info', 'warn', 'error']), message: z.string() }),
  z.object({ type: z.literal('done'), id: z.number(), ok: z.literal(true), output: z.string(), pages: z.number() }),
  z.object({ type: z.literal('done'), id: z.number(), ok: z.literal(false), kind: z.enum(['agent', 'trap', 'memory', 'internal']), message: z.string(), pages: z.number() })
])
export type FromWorker = z.infer<typeof FromWorkerSchema>

/** A host call from the agent, blocking it until the reply. `chat`, `embed`, `request` and kv calls are checked in full by the host. */
export const HostCallSchema = z.discriminatedUnion('op', [
  z.object({ id: z.number(), op: z.enum(['get', 'set', 'append']), args: z.array(z.string()).max(2) }),
  z.object({ id: z.number(), op: z.literal('conversation'), last: z.number() }),
  z.object({ id: z.number(), op: z.literal('chat'), request: z.unknown() }),
  z.object({ id: z.number(), op: z.literal('embed'), model: z.unknown(), texts: z.unknown() }),
  z.object({ id: z.number(), op: z.literal('request'), method: z.unknown(), url: z.unknown(), headers: z.unknown(), body: z.unknown(), options: z.unknown() }),
  z.object({ id: z.number(), op: z.enum(['kv-get', 'kv-set', 'kv-delete', 'kv-list']), args: z.array(z.unknown()).max(2) })
])
export type HostCall = z.infer<typeof HostCallSchema>

/** `value` and `error` are already in the shape jco lowers into the agent (a string, or a WIT variant). */
export type HostReply = { ok: true, value?: unknown } | { ok: false, error: unknown }
