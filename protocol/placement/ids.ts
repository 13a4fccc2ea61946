// Branded ids so a task id, a digest and a PeerId string cannot be swapped by mistake.

import { createHash, randomBytes } from 'node:crypto'
import { DIGEST_PATTERN } from '../wire/ids.ts'
import type { AgentDigest } from '../agents/store.ts'

declare const taskBrand: unique symbol

/** 128 random bits as 32 lowercase hex characters. */
export type TaskId = string & { readonly [taskBrand]: true }
/** SHA-256 as 64 lowercase hex characters: one digest type for placement, the agent store and the sandbox. */
export type Digest = AgentDigest

export const TASK_ID_PATTERN = /^[0-9a-f]{32}$/

// A shared context's id, as every part that names one accepts it (the CRDT store that holds the
// context, and placement that carries it in a task): stated once, in protocol/wire/ids.ts.
export { CONTEXT_ID_MAX_LENGTH, CONTEXT_ID_PATTERN, DIGEST_PATTERN } from '../wire/ids.ts'

export function newTaskId (): TaskId {
  return randomBytes(16).toString('hex') as TaskId
}

export function isTaskId (value: unknown): value is TaskId {
  return typeof value === 'string' && TASK_ID_PATTERN.test(value)
}

export function isDigest (value: unknown): value is Digest {
  return typeof value === 'string' && DIGEST_PATTERN.test(value)
}

export function sha256Hex (bytes: Uint8Array | string): Digest {
  return createHash('sha256').update(bytes).digest('hex') as Digest
}
