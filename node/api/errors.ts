// One table from error class to HTTP status: a subsystem's error keeps its code (the class's
// `name`), and the status says whose fault it is. 400/403 the caller's input, 404 not here,
// 409 the state does not allow it now, 413 too large, 429 over a budget until it resets, 422 the agent failed, 502 another device
// could not be reached, 503 the part is not running, 504 the agent ran out of time. An error
// not in the table is the node's own (500).

import {
  CheckpointExistsError, CheckpointNotFoundError, ContextCorruptError, ContextNotFoundError, ContextStoreClosedError, ContextWriteFailedError,
  InvalidCheckpointNameError, InvalidContextIdError, MalformedUpdateError, UpdateTooLargeError, ValueTooDeepError
} from '../../crdt/index.ts'
import {
  AlreadyInHiveError, AlreadyMemberError, CannotRemoveSelfError, InvalidInviteError, InvalidPeerIdError, InvalidTaskError, InvalidTtlError,
  InviteClosedError, InviteDamagedError, InviteExpiredError, InviteUnknownError, InviteUsedError, InviterNotAuthenticError, InviterUnreachableError,
  NotAMemberError, OwnInviteError, PairingFailedError, PlacementNotRunningError, TaskNotFoundError, WrongSecretError,
  ControlRefusedError, HaltedError, NotSubmitterError, TaskAlreadyEndedError, PolicyValueError, BudgetValueError, OverBudgetError
} from '../../protocol/index.ts'
import {
  AgentNotPublishedError, AgentYankedError, ComponentUnavailableError, InvalidAgentRefError, InvalidCatalogEntryError, RegistryRefusedError, VersionConflictError
} from '../../protocol/index.ts'
import { LedgerDamagedError } from '../../ledger/index.ts'
import {
  AgentFailedError, AgentTimedOutError, AgentTrappedError, CompileFailedError, ImportNotGrantedError, LimitNotAllowedError, ManifestInvalidError,
  ManifestMissingError, MemoryLimitExceededError, MemoryLimitTooLowError, NotAComponentError, NotWebAssemblyError, SandboxNotRunningError,
  UnsupportedComponentError, WrongWorldError
} from '../../sandbox/index.ts'
import { ToolNotFoundError, ToolParamsInvalidError } from '../../sandbox/index.ts'
import { AgentNotFoundError as FlowAgentNotFoundError, FlowAlreadyEndedError, FlowNotFoundError, FlowsNotRunningError, InvalidWorkflowError, TooManyFlowsError } from '../flows/index.ts'

/** An error class with its code: `static code` equals the `name` of every instance. */
export interface CodedErrorClass {
  readonly code: string
  new (...args: never[]): Error
}

export const ERROR_STATUS: ReadonlyArray<readonly [CodedErrorClass, number]> = [
  // the caller's input
  [InvalidTaskError, 400],
  [InvalidContextIdError, 400],
  [InvalidCheckpointNameError, 400],
  [ValueTooDeepError, 400],
  [MalformedUpdateError, 400],
  [NotWebAssemblyError, 400],
  [NotAComponentError, 400],
  [UnsupportedComponentError, 400],
  [WrongWorldError, 400],
  [ManifestMissingError, 400],
  [ManifestInvalidError, 400],
  [MemoryLimitTooLowError, 400],
  [InvalidInviteError, 400],
  [InviteDamagedError, 400],
  [InvalidTtlError, 400],
  [InvalidPeerIdError, 400],
  [InvalidAgentRefError, 400],
  [InvalidCatalogEntryError, 400],
  [ToolNotFoundError, 400],
  [ToolParamsInvalidError, 400],
  [PolicyValueError, 400],
  [BudgetValueError, 400],
  [InvalidWorkflowError, 400],
  [LimitNotAllowedError, 403],
  [ImportNotGrantedError, 403],
  // not here
  [TaskNotFoundError, 404],
  [ContextNotFoundError, 404],
  [CheckpointNotFoundError, 404],
  [AgentNotPublishedError, 404],
  [FlowNotFoundError, 404],
  [FlowAgentNotFoundError, 404],
  // not now, or not like this
  [CheckpointExistsError, 409],
  [InviteExpiredError, 409],
  [InviteUsedError, 409],
  [InviteClosedError, 409],
  [InviteUnknownError, 409],
  [WrongSecretError, 409],
  [AlreadyMemberError, 409],
  [AlreadyInHiveError, 409],
  [OwnInviteError, 409],
  [InviterNotAuthenticError, 409],
  [PairingFailedError, 409],
  [NotAMemberError, 409],
  [CannotRemoveSelfError, 409],
  [HaltedError, 409],
  [ControlRefusedError, 409],
  [TaskAlreadyEndedError, 409],
  [NotSubmitterError, 409],
  [VersionConflictError, 409],
  [AgentYankedError, 409],
  [RegistryRefusedError, 409],
  [FlowAlreadyEndedError, 409],
  [TooManyFlowsError, 409],
  [UpdateTooLargeError, 413],
  // a budget of the hive is used up until it resets
  [OverBudgetError, 429],
  // the agent's failure
  [AgentFailedError, 422],
  [AgentTrappedError, 422],
  [MemoryLimitExceededError, 422],
  // another device, or a part of this one
  [InviterUnreachableError, 502],
  [ComponentUnavailableError, 502],
  [PlacementNotRunningError, 503],
  [SandboxNotRunningError, 503],
  [FlowsNotRunningError, 503],
  [ContextStoreClosedError, 503],
  [LedgerDamagedError, 503],
  [AgentTimedOutError, 504],
  [CompileFailedError, 500],
  [ContextWriteFailedError, 500],
  [ContextCorruptError, 500]
]

/** Errors cross worker threads by name, so the table is looked up by the class's code. */
const BY_CODE = new Map(ERROR_STATUS.map(([cls, status]) => [cls.code, status]))

/** The HTTP status for a subsystem's error, or undefined when it is the node's own failure. */
export function statusOf (err: unknown): number | undefined {
  if (!(err instanceof Error)) return undefined
  return BY_CODE.get(err.name)
}
