// Task placement: a task submitted on any node is announced to the hive, every capable member
// bids (a signed cost with its reasons), the submitter elects the winner by a rule anyone can
// recompute and publishes the award with the signed bids in the DHT, and the winner fetches the
// agent by digest, runs it under a lease, returns the result and records it. May use libp2p
// interfaces (a narrow host, gossipsub, kad-dht), protocol/ wire helpers and records, capability
// gossip, and the executor and ledger it is handed; never imports node/.

export * from './errors.ts'
export * from './ids.ts'
export * from './messages.ts'
export * from './cost.ts'
export * from './election.ts'
export * from './records.ts'
export { DEFAULT_PLACEMENT_TOPIC, PLACEMENT_PROTOCOL, PLACEMENT_SESSION_PROTOCOL } from '../wire/ids.ts'
export { createPlacement } from './placement.ts'
export type { Placement, PlacementEvents } from './placement.ts'
export { decodeGossip, encodeGossip } from './gossip.ts'
export { TypedEventTarget } from './events.ts'
export { Auctioneer } from './auction.ts'
export type { Auction, AuctioneerComponents, AuctioneerEvents } from './auction.ts'
export { Runner } from './runner.ts'
export type { RunnerComponents, RunnerEvents } from './runner.ts'
export type { BidOutcome, BidderEvents } from './bidder.ts'
export { WinnerWatch } from './lease.ts'
export type { LostReason, WinnerWatchInit } from './lease.ts'
export { MAX_AWAITED_CONFIRMATIONS, localSubmitter, remoteSubmitter, serveSubmitter, serveSubmitterSessions } from './rpc.ts'
export { SESSION_RESULT_MAX_CHARS, SessionPool } from './session.ts'
export type { ResultRequest, SubmitterClient, SubmitterHandlers } from './rpc.ts'
export { placementSettings } from './components.ts'
export type {
  AgentLogLine, CapabilitySource, ExecuteOptions, ExecutionOutcome, ExecutionRecord, Executor, LedgerSink, PlacementComponents, PlacementDht,
  PlacementHost, PlacementInit, PlacementPubSub, PlacementRecords, PlacementSettings, SubmitOptions, KeptResult, KeptBefore
} from './components.ts'
export type {
  BidSource, ExplainedBid, ExplainedRound, Explanation, HistoryEvent, HistoryType, Recomputation, TaskResult, TaskRole, TaskStatus, TaskView
} from './views.ts'
export { explainText } from './explain-text.ts'
export { isEnded } from './views.ts'
export { cancelRemoteRun } from './rpc.ts'
export type { WinnerHandlers } from './rpc.ts'
export type { CancelledHere } from './runner.ts'
