// The hive's controls: the kill switch (signed halt and resume entries), the hive's policy and
// its budgets, each the greatest of a set of signed entries replicated to every member
// (PROTOCOL.md). May use the wire kit (framing, signing, protocol ids) and libp2p interfaces;
// never imports node/.

export * from './errors.ts'
export * from './entries.ts'
export * from './policy.ts'
export * from './budgets.ts'
export { CONTROL_PROTOCOL } from '../wire/ids.ts'
export { CONTROL_EXCHANGE_TIMEOUT_MS, MAX_CONTROL_ENTRIES, MAX_CONTROL_MESSAGE_BYTES, MAX_CONTROL_STREAMS, MAX_SETTING_ENTRIES, createControl } from './control.ts'
export type { Control, ControlComponents, ControlDb, ControlEvents, ControlHost, HaltState, Setting } from './control.ts'
