// Request input for the routes: a zod schema per body, query or path, checked at the boundary.

import { ApiError } from '../errors.ts'
import type { z } from 'zod'

/** Validates a request body (or query) with a zod schema; a mismatch is a 400 that names the field. */
export function parseInput<S extends z.ZodType> (schema: S, value: unknown): z.infer<S> {
  const parsed = schema.safeParse(value ?? {})
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const where = issue?.path.length != null && issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''
    throw new ApiError(400, 'BadRequest', `${where}${issue?.message ?? 'invalid input'}`)
  }
  return parsed.data
}

/**
 * An agent that reads or writes a context runs in the one the caller names. Without a name the
 * sandbox would hand it a fresh, empty context and drop it after the run, so what the agent
 * wrote would be lost without a word: the API refuses that instead, and says what to send.
 * `hive-node run` always names one (`agent-<name>` unless `--context` says otherwise).
 */
export function requireContextId (agent: { name: string }, permissions: readonly string[], contextId: string | undefined): void {
  if (contextId !== undefined) return
  const uses = permissions.filter(p => p.startsWith('context:'))
  if (uses.length === 0) return
  throw new ApiError(400, 'ContextRequired',
    `agent ${agent.name} uses a context (${uses.join(', ')}) and no "contextId" was given, so what it writes would be lost after the run; ` +
    `give "contextId", e.g. "agent-${agent.name}" (the context "hive-node run" uses for it)`)
}
