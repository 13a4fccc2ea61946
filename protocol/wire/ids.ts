// Every protocol id, gossip topic name and DHT record kind the hive uses, in one place so no two
// parts claim the same one, and the bounds of ids that travel between parts (a context id is
// checked by the same rule where a task names it and where the context store opens it).

/** Prefix of every hive protocol id, and of the DHT's own protocol (kept apart from the public IPFS DHT). */
export const HIVE_PROTOCOL_PREFIX = '/hive'

export function protocolId (name: string, version = '1.0.0'): string {
  return `${HIVE_PROTOCOL_PREFIX}/${name}/${version}`
}

// ---- stream protocols ----
export const DHT_PROTOCOL = protocolId('kad')
export const PAIRING_PROTOCOL = protocolId('pairing')
export const MEMBERSHIP_PROTOCOL = protocolId('membership')
export const PLACEMENT_PROTOCOL = protocolId('placement')
/**
 * Placement's requests on one long-lived stream per pair of peers. 1.1.0 carries a small result
 * and its ledger confirmation too; a peer on 1.0.0 is asked one stream per request.
 */
export const PLACEMENT_SESSION_PROTOCOL = protocolId('placement-session', '1.1.0')
export const AGENT_FETCH_PROTOCOL = protocolId('agent-fetch')
/** A gossip topic's direct twin on one long-lived stream per pair of members (direct-links.ts). */
export const DIRECT_GOSSIP_PROTOCOL = protocolId('direct-gossip')
export const CONTEXT_PROTOCOL = protocolId('context')
export const LEDGER_PROTOCOL = protocolId('ledger')
/** Model calls between members: a chat or an embedding answered by a device that holds the model. */
export const LLM_PROTOCOL = protocolId('llm')
/** The hive's kill switch: signed halt and resume entries, exchanged with every member. */
export const CONTROL_PROTOCOL = protocolId('control')
/** The agent registry: signed publish and yank entries, exchanged with every member. */
export const REGISTRY_PROTOCOL = protocolId('registry')

// ---- gossip topics ----
/** Names of the per-hive gossip topics; `gossipTopic(hiveId, name)` makes the topic. */
export const TOPIC_NAMES = {
  capabilities: 'capabilities',
  placement: 'placement',
  ledger: 'ledger'
} as const
export type TopicName = typeof TOPIC_NAMES[keyof typeof TOPIC_NAMES]

/** Topics used before this device belongs to a hive (a lone device talks to nobody on them). */
export const DEFAULT_CAPABILITIES_TOPIC = 'hive/capabilities/1'
export const DEFAULT_PLACEMENT_TOPIC = 'hive/placement/1'
export const DEFAULT_LEDGER_TOPIC = 'hive/ledger/heads'

/** Gossip topics are per hive so two hives on one LAN never mix. */
export function gossipTopic (hiveId: string, name: string): string {
  return `hive/${hiveId}/${name}`
}

// ---- DHT records ----
/** The DHT key namespace the hive validates: keys are `/hive/<kind>/<rest>`. */
export const DHT_NAMESPACE = 'hive'

export const RECORD_KINDS = {
  /** `/hive/peer/<peerId>`: a device's addresses, published by that device only. */
  peer: 'peer',
  /** `/hive/bid/<task>/<bidder>`: one bid per device per task. */
  bid: 'bid',
  /** `/hive/award/<task>/<submitter>`: only the submitter may publish the award. */
  award: 'award'
} as const

// ---- ids shared between parts ----
export const CONTEXT_ID_MAX_LENGTH = 128
/** Letters, digits, `.`, `_` and `-`; starts with a letter or digit. */
export const CONTEXT_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/

/** Whether a string is a well-formed context id (crdt/ brands it; placement checks tasks with it). */
export function isContextIdText (value: unknown): value is string {
  return typeof value === 'string' &&
    value.length > 0 &&
    value.length <= CONTEXT_ID_MAX_LENGTH &&
    CONTEXT_ID_PATTERN.test(value)
}

/** An agent's digest: SHA-256 of its component bytes, 64 lowercase hex characters (the sandbox's form too). */
export const DIGEST_PATTERN = /^[0-9a-f]{64}$/

// ---- added protocols ----
/** Pairing through a relay: a member inviting opens a window on the member relay it is reached through. */
export const RELAY_WINDOW_PROTOCOL = protocolId('pairing-relay')
