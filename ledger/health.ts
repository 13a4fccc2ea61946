// The state of this device's own chain, as the node acts on it: `ok` takes records; `damaged`
// refuses every execution, because a run here could not be recorded. It comes from the audit of
// the own chain (at start, after a rollback or restore, and on every `verify`), so `status`
// and the refusal say the same thing the audit does, with what to do about it.

import { AUDIT_REASONS } from './audit.ts'
import { LedgerDamagedError, LedgerRollbackError } from './errors.ts'
import type { AuditReason, ChainReport } from './audit.ts'

export interface LedgerHealth {
  state: 'ok' | 'damaged'
  /** The audit's reason for the first bad place of the chain (damaged only). */
  reason?: AuditReason
  /** Where the chain is bad (damaged only). */
  seq?: number
  /** What the audit found there (damaged only). */
  message?: string
  /** What the owner does about it (damaged only). */
  recovery?: string
}

export const LEDGER_OK: LedgerHealth = { state: 'ok' }

/** Records missing behind a head this device signed: members' copies bring them back. */
const MISSING: ReadonlySet<AuditReason> = new Set(['truncated', 'rollback'])
/** What an older copy of the store put back causes: the store's own refusal is LedgerRollback. */
const ROLLED_BACK: ReadonlySet<AuditReason> = new Set(['truncated', 'rollback', 'fork'])

export function recoveryFor (reason: AuditReason): string {
  if (MISSING.has(reason)) {
    return 'The node takes the missing records back from any member that holds a copy of this device\'s chain ' +
      '(it asks each member that connects; keep one connected) and runs tasks again once the chain is whole; ' +
      '"hive-node verify" shows the state. If no member holds them, see "Ledger damage" in the README.'
  }
  return 'Stop the node, put back the data directory\'s db/ from a backup made before the damage ' +
    '(records newer than the backup come back from members\' copies) and start it again; ' +
    '"hive-node verify" names the first bad record. Without a backup, see "Ledger damage" in the README.'
}

/** The health an audit of this device's own chain implies. */
export function healthOf (chain: ChainReport): LedgerHealth {
  if (chain.ok) return LEDGER_OK
  const bad = chain.firstBad ?? { seq: chain.forks[0]?.seq ?? chain.end + 1, reason: 'fork' as const, message: AUDIT_REASONS.fork }
  return damaged(bad.reason, bad.seq, bad.message)
}

export function damaged (reason: AuditReason, seq: number, message: string): LedgerHealth {
  return { state: 'damaged', reason, seq, message, recovery: recoveryFor(reason) }
}

function found (health: LedgerHealth): string {
  return `${health.reason ?? 'unknown'} at seq ${health.seq ?? '?'}: ${health.message ?? ''}`
}

/** The refusal of an execution while the chain is damaged. */
export function damagedError (health: LedgerHealth): LedgerDamagedError {
  return new LedgerDamagedError(
    `this device's ledger chain is damaged (${found(health)}), so this node runs no task: a run here could not be recorded. ` +
    (health.recovery ?? recoveryFor('malformed'))
  )
}

/**
 * The refusal of an append while the chain is damaged: LedgerRollback where an older copy of the
 * store is the cause (as the store itself refuses it), LedgerDamaged for any other damage.
 */
export function appendRefusal (health: LedgerHealth): LedgerDamagedError | LedgerRollbackError {
  if (health.reason != null && ROLLED_BACK.has(health.reason)) {
    return new LedgerRollbackError(`this device's ledger chain cannot take a record (${found(health)}). ${health.recovery ?? ''}`)
  }
  return damagedError(health)
}
