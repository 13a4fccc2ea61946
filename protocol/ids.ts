// Protocol ids and namespaces, in one place so no two parts claim the same one.

/** Prefix of every hive protocol id, and of the DHT's own protocol (kept apart from the public IPFS DHT). */
export const HIVE_PROTOCOL_PREFIX = '/hive'

export const DHT_PROTOCOL = `${HIVE_PROTOCOL_PREFIX}/kad/1.0.0`

/** The DHT key namespace the hive validates: keys are `/hive/<kind>/<rest>`. */
export const DHT_NAMESPACE = 'hive'

export function protocolId (name: string, version = '1.0.0'): string {
  return `${HIVE_PROTOCOL_PREFIX}/${name}/${version}`
}

/** Gossip topics are per hive so two hives on one LAN never mix. */
export function gossipTopic (hiveId: string, name: string): string {
  return `hive/${hiveId}/${name}`
}

/** Model calls between members: a chat or an embedding answered by a device that holds the model. */
export const LLM_PROTOCOL = protocolId('llm')
