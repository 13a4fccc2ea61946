// The hive's controls: the kill switch, a set of signed halt and resume entries replicated to
// every member (PROTOCOL.md), whose greatest entry says whether anything may run. May use the
// wire kit (framing, signing, protocol ids) and libp2p interfaces; never imports node/.

export * from './errors.ts'
export * from './entries.ts'
export { CONTROL_PROTOCOL } from '../wire/ids.ts'
export { MAX_CONTROL_ENTRIES, MAX_CONTROL_MESSAGE_BYTES, createControl } from './control.ts'
export type { Control, ControlComponents, ControlDb, ControlEvents, ControlHost, HaltState } from './control.ts'
