// What an agent file is, judged from its bytes alone: its digest, manifest, imports and whether it
// fits the `hive:agent` world; and the permission check that refuses a component before it runs.

import { createHash } from 'node:crypto'
import { readComponent } from './binary.ts'
import { ImportNotGrantedError, WrongWorldError } from './errors.ts'
import { readManifest } from './manifest.ts'
import { HOST_FUNCTIONS, PERMISSIONS, WIT_PACKAGE, WIT_VERSION, heldPermissions, importName } from './wit.ts'
import type { ComponentSummary, ValType } from './binary.ts'
import type { Manifest } from './manifest.ts'
import type { Permission } from './wit.ts'

declare const digestBrand: unique symbol
/** Lowercase hex SHA-256 of the whole component file, manifest section included. */
export type AgentDigest = string & { readonly [digestBrand]: true }

export function agentDigest (bytes: Uint8Array): AgentDigest {
  return createHash('sha256').update(bytes).digest('hex') as AgentDigest
}

export function isAgentDigest (value: string): value is AgentDigest {
  return /^[0-9a-f]{64}$/.test(value)
}

export interface AgentImport {
  /** As written in the component, e.g. `hive:agent/context@0.1.0`. */
  name: string
  /** The functions taken from it, when it is an interface. */
  functions: string[]
  /** The permissions these functions need; empty when the import is not a hive host interface. */
  permissions: Permission[]
  /** True when the node offers this import at all (under some permission). */
  known: boolean
}

export interface AgentInfo {
  digest: AgentDigest
  size: number
  manifest: Manifest
  imports: AgentImport[]
  exports: string[]
}

/**
 * Reads everything the node needs to decide about an agent, without running it. Throws
 * NotWebAssembly, NotAComponent, UnsupportedComponent, ManifestMissing or ManifestInvalid.
 */
export function inspectAgentBytes (bytes: Uint8Array): AgentInfo & { summary: ComponentSummary } {
  const summary = readComponent(bytes)
  const manifest = readManifest(bytes)
  return {
    digest: agentDigest(bytes),
    size: bytes.byteLength,
    manifest,
    imports: summary.imports.map(describeImport),
    exports: summary.exports.map(e => e.name),
    summary
  }
}

const HOST_PREFIX = `${WIT_PACKAGE}/`

function describeImport (imp: { name: string, sort: string, functions?: string[] }): AgentImport {
  const functions = imp.functions ?? []
  const base = { name: imp.name, functions }
  if (imp.sort !== 'instance' || !imp.name.startsWith(HOST_PREFIX)) return { ...base, permissions: [], known: false }
  const [iface, version] = imp.name.slice(HOST_PREFIX.length).split('@')
  const table = iface !== undefined ? HOST_FUNCTIONS[iface] : undefined
  if (table === undefined || version !== WIT_VERSION) return { ...base, permissions: [], known: false }
  // An interface whose function list we could not read is taken to need all its permissions.
  const used = imp.functions ?? Object.keys(table)
  const permissions = new Set<Permission>()
  for (const f of used) {
    const p = table[f]
    if (p === undefined) return { ...base, permissions: [], known: false }
    permissions.add(p)
  }
  return { ...base, permissions: PERMISSIONS.filter(p => permissions.has(p)), known: true }
}

/** Refuses a component that does not export `run: func(input: string) -> result<string, string>`. */
export function checkWorld (summary: ComponentSummary): void {
  const run = summary.exports.find(e => e.name === 'run')
  const expected = 'run: func(input: string) -> result<string, string>'
  if (run === undefined) {
    const names = summary.exports.map(e => e.name)
    throw new WrongWorldError(`the component does not export \`run\` (it exports ${names.length > 0 ? names.join(', ') : 'nothing'}); a hive agent implements the ${WIT_PACKAGE}@${WIT_VERSION} world, which exports ${expected}`)
  }
  const t = run.type
  const isString = (v: ValType | undefined): boolean => v !== undefined && summary.resolve(v).kind === 'prim' && (summary.resolve(v) as { prim: string }).prim === 'string'
  const result = t?.result !== undefined ? summary.resolve(t.result) : undefined
  const ok = t !== undefined && !t.async && t.params.length === 1 && isString(t.params[0]?.[1]) &&
    result?.kind === 'result' && isString(result.ok) && isString(result.err)
  if (!ok) {
    throw new WrongWorldError(`the component's \`run\` export has the wrong type; the ${WIT_PACKAGE}@${WIT_VERSION} world expects ${expected}`)
  }
}

/**
 * Refuses a component that imports anything not granted: an import that is not a hive host
 * interface at all (WASI filesystem, sockets, environment, clocks, random, ...), or a host
 * function whose permission is missing from `granted`. The error names the import.
 */
export function checkImports (imports: AgentImport[], granted: ReadonlySet<Permission>, manifest: Manifest): void {
  for (const imp of imports) {
    if (!imp.known) {
      throw new ImportNotGrantedError(imp.name, `the component imports \`${imp.name}\`, which is not a host interface of ${WIT_PACKAGE}@${WIT_VERSION} and can never be granted; agents may import only ${Object.keys(HOST_FUNCTIONS).map(importName).join(', ')}`)
    }
    for (const p of imp.permissions) {
      if (granted.has(p)) continue
      const fns = imp.functions.filter(f => HOST_FUNCTIONS[imp.name.slice(HOST_PREFIX.length).split('@')[0] as string]?.[f] === p)
      const what = fns.length > 0 ? `${imp.name}#${fns.join(', #')}` : imp.name
      const why = heldPermissions(manifest.permissions).includes(p)
        ? `this node does not grant "${p}" to agents`
        : p === 'net'
          ? 'its manifest names no origin; add one "net:<origin>" permission per origin it may reach (e.g. "net:https://api.example.org") and rebuild'
          : `its manifest does not name the permission "${p}"; add it to "permissions" and rebuild`
      throw new ImportNotGrantedError(what, `the component imports \`${what}\`, which needs permission "${p}", but ${why}`)
    }
  }
}
