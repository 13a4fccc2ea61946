// The `hive:agent/kv` host interface: a small key/value store per agent name. The sandbox needs
// only this narrow port; the node backs it with a replicated context per agent, tests with the
// in-memory store below.

/** Bounds of the kv interface, stated once: the host and the README use these. */
export const KV_LIMITS = {
  maxKeyChars: 1024,
  maxValueChars: 1024 * 1024,
  /** Keys one `list` call returns at most, whatever limit it asks for. */
  maxList: 1000
} as const

/** One agent's store. Writes resolve once they are durable. */
export interface AgentKvStore {
  get: (key: string) => string | undefined | Promise<string | undefined>
  set: (key: string, value: string) => void | Promise<void>
  /** True when the key was there. */
  delete: (key: string) => boolean | Promise<boolean>
  /** Keys starting with `prefix`, sorted, at most `limit`. */
  list: (prefix: string, limit: number) => string[] | Promise<string[]>
}

/** Opens an agent's store by its manifest name. */
export interface AgentKv {
  open: (agent: string) => AgentKvStore | Promise<AgentKvStore>
}

/** Stores kept in memory for the life of the process. */
export function createMemoryKv (): AgentKv & { stores: Map<string, Map<string, string>> } {
  const stores = new Map<string, Map<string, string>>()
  return {
    stores,
    open (agent) {
      let m = stores.get(agent)
      if (m === undefined) {
        m = new Map()
        stores.set(agent, m)
      }
      const map = m
      return {
        get: key => map.get(key),
        set: (key, value) => { map.set(key, value) },
        delete: key => map.delete(key),
        list: (prefix, limit) => [...map.keys()].filter(k => k.startsWith(prefix)).sort().slice(0, limit)
      }
    }
  }
}
