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
