// LLM calls for the hive: the shared vocabulary, the waterfall that picks a route for each call
// (this device, a member over `/hive/llm/1.0.0`, a cloud within budget), the budget that
// reserves before and settles after, and the signed, replicated budget setting.
// May use protocol/'s wire kit and libp2p interfaces; never imports node/.

export * from './types.ts'
export * from './errors.ts'
export * from './budget.ts'
export * from './settings.ts'
export * from './protocol.ts'
export * from './router.ts'
