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

export const HostCallSchema = z.object({
  id: z.number(),
  op: z.enum(['get', 'set', 'append']),
  args: z.array(z.string()).max(2)
})
export type HostCall = z.infer<typeof HostCallSchema>

export type HostReply = { ok: true, value?: string | null } | { ok: false, error: string }
