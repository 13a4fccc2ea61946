// Every bound the context subsystem applies, stated once. The same numbers hold for what this
// node writes and for what it accepts from a peer: a local change is checked by the validator
// that checks a peer's update, so nothing a node stores can be refused by its peers.

/** Deepest nesting of arrays/objects inside one stored value (the value itself is depth 0). */
export const MAX_VALUE_DEPTH = 64
/** Highest clock accepted. A device would need billions of operations to get near it. */
export const MAX_CLOCK = 2 ** 32
/** Largest update stored or accepted, in bytes. */
export const MAX_UPDATE_BYTES = 16 * 1024 * 1024
/** Longest reason carried by a refusal on the wire, in characters. */
export const MAX_REFUSAL_REASON = 1024
