// Context ids: short, printable, safe as LevelDB key parts and URL path segments.

import { CONTEXT_ID_MAX_LENGTH, CONTEXT_ID_PATTERN, isContextIdText } from '../protocol/wire/ids.ts'
import { InvalidCheckpointNameError, InvalidContextIdError } from './errors.ts'

/** A validated context id. Branded so it cannot be swapped with another string id. */
export type ContextId = string & { readonly __brand: 'ContextId' }

/** The bound and pattern are the hive's (protocol/wire/ids.ts), so a task naming a context and the store agree. */
export { CONTEXT_ID_MAX_LENGTH, CONTEXT_ID_PATTERN }

export function isContextId (value: unknown): value is ContextId {
  return isContextIdText(value)
}

/** Checks and brands a context id; throws InvalidContextId saying what is allowed. */
export function contextId (value: string): ContextId {
  if (!isContextId(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : String(value)
    throw new InvalidContextIdError(
      `invalid context id ${shown}: use 1 to ${CONTEXT_ID_MAX_LENGTH} characters from A-Z a-z 0-9 . _ - , starting with a letter or digit`
    )
  }
  return value
}

export const CHECKPOINT_NAME_MAX_LENGTH = 128

/** Checkpoint names: any non-blank text without control characters, bounded in length. */
export function checkpointName (value: string): string {
  if (typeof value !== 'string' || value.trim() === '' || value.length > CHECKPOINT_NAME_MAX_LENGTH || /[\u0000-\u001f\u007f]/.test(value)) {
    throw new InvalidCheckpointNameError(
      `invalid checkpoint name: use 1 to ${CHECKPOINT_NAME_MAX_LENGTH} printable characters`
    )
  }
  return value
}

/**
 * Context ids under `hive.` hold the hive's own settings (the cloud budget): replicated like any
 * context, but not an agent's, so agents may not open them and listings of agents' contexts
 * leave them out.
 */
export const RESERVED_CONTEXT_PREFIX = 'hive.'

export function isReservedContextId (id: string): boolean {
  return id.startsWith(RESERVED_CONTEXT_PREFIX)
}
