// Task placement: a task submitted on any node is announced to the hive, every capable member
// bids (a signed cost with its reasons, published in the DHT), the submitter elects the winner
// by a rule anyone can recompute, and the winner fetches the agent by digest, runs it under a
// lease, returns the result and records it. May use libp2p interfaces (a narrow host, gossipsub,
// kad-dht), protocol/ wire helpers and records, capability gossip, and the executor and ledger
// it is handed; never imports node/.

export * from './errors.ts'
export * from './ids.ts'
export * from './messages.ts'
export * from './cost.ts'
export * from './election.ts'
export * from './records.ts'
export { AGENT_FETCH_PROTOCOL, createAgentStore, fetchAgent, serveAgentFetch } from './agents.ts'
export type { AgentStore } from './agents.ts'
export { DEFAULT_PLACEMENT_TOPIC, PLACEMENT_PROTOCOL, createPlacement, decodeGossip, encodeGossip } from './placement.ts'
export type {
  AgentLogLine, CapabilitySource, ExecuteOptions, ExecutionOutcome, ExecutionRecord, Executor, ExplainedBid, ExplainedRound, Explanation, HistoryEvent,
  HistoryType, LedgerSink, Placement, PlacementComponents, PlacementDht, PlacementHost, PlacementInit, PlacementPubSub, PlacementRecords,
  Recomputation, SubmitInput, TaskResult, TaskRole, TaskStatus, TaskView
} from './placement.ts'
export { explainText } from './explain.ts'
