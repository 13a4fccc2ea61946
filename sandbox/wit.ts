// The `hive:agent` WIT package as the host sees it: the world's text, its version, and which
// permission each host function needs. Adding an interface means adding it to the WIT file, to
// HOST_FUNCTIONS here, and to the worker's host bindings.

import { readFileSync } from 'node:fs'

export const WIT_PACKAGE = 'hive:agent'
export const WIT_VERSION = '0.1.0'
export const WORLD_NAME = 'agent'

/** The WIT package text, passed to componentize as text (a path failed there in our trials). */
export const WIT_SOURCE: string = readFileSync(new URL('./wit/agent.wit', import.meta.url), 'utf8')

/**
 * Every permission a manifest may name: one per host interface, context split read/write, and
 * `llm:cloud`, which gates no function but lets the host route the agent's `llm` calls out of the
 * hive. It requires `llm` (the manifest is refused without it). `net` is never written as such: a
 * manifest names origins (`net:https://api.example.org`), and an agent holding any origin holds
 * `net`, the http interface.
 */
export const PERMISSIONS = ['log', 'context:read', 'context:write', 'llm', 'llm:cloud', 'net', 'kv:read', 'kv:write'] as const
export type Permission = typeof PERMISSIONS[number]

/** A permission as a manifest or a task writes it: one of PERMISSIONS, or `net:<origin>`. */
export type PermissionEntry = Permission | `net:${string}`

/** The permissions a list of entries holds: `net:<origin>` entries hold `net`. */
export function heldPermissions (entries: readonly string[]): Permission[] {
  const held = new Set(entries.map(e => e.startsWith('net:') ? 'net' : e))
  return PERMISSIONS.filter(p => held.has(p))
}

/** Host interface (without package or version) → function → the permission it needs. */
export const HOST_FUNCTIONS: Record<string, Record<string, Permission>> = {
  log: { log: 'log' },
  context: { get: 'context:read', set: 'context:write', append: 'context:write', conversation: 'context:read' },
  llm: { chat: 'llm', embed: 'llm' },
  http: { request: 'net' },
  kv: { get: 'kv:read', list: 'kv:read', set: 'kv:write', delete: 'kv:write' }
}

/** Host functions a source uses, per interface; `'all'` when it imports the whole interface. */
export type UsedFunctions = ReadonlyMap<string, ReadonlySet<string> | 'all'>

/** The full import name a component uses for a host interface, e.g. `hive:agent/log@0.1.0`. */
export function importName (iface: string): string {
  return `${WIT_PACKAGE}/${iface}@${WIT_VERSION}`
}

/**
 * The WIT package cut down to what `permissions` allow and, when `used` is given, to what the
 * source imports: other functions are removed from their interface, and an interface left empty
 * is no longer imported by the world. Builds use it because componentize imports every function
 * of the world it is given, used or not; built against the narrowed world, an agent imports
 * exactly what it uses of what its manifest grants, and one that calls anything else fails to
 * build.
 */
export function narrowWit (permissions: readonly Permission[], used?: UsedFunctions): string {
  const granted = new Set(permissions)
  const keep = (iface: string, fn: string): boolean => {
    const need = HOST_FUNCTIONS[iface]?.[fn]
    if (need === undefined || !granted.has(need)) return false
    if (used === undefined) return true
    const fns = used.get(iface)
    return fns === 'all' || (fns?.has(fn) ?? false)
  }
  const out: string[] = []
  let iface: string | undefined
  let pendingDocs: string[] = []
  const keptInterfaces = new Set(Object.entries(HOST_FUNCTIONS)
    .filter(([name, fns]) => Object.keys(fns).some(fn => keep(name, fn)))
    .map(([name]) => name))
  for (const line of WIT_SOURCE.split('\n')) {
    const open = /^\s*interface ([a-z][a-z0-9-]*) \{/.exec(line)
    if (open !== null) iface = open[1]
    else if (/^\}/.test(line)) iface = undefined
    if (/^\s*\/\/\//.test(line)) { pendingDocs.push(line); continue }
    const fn = /^\s*%?([a-z][a-z0-9-]*): func\(/.exec(line)
    if (iface !== undefined && fn !== null) {
      if (!keep(iface, fn[1] as string)) { pendingDocs = []; continue }
    }
    const imp = /^\s*import ([a-z][a-z0-9-]*);/.exec(line)
    if (imp !== null && !keptInterfaces.has(imp[1] as string)) { pendingDocs = []; continue }
    out.push(...pendingDocs, line)
    pendingDocs = []
  }
  return out.join('\n')
}
