// The node's side of the registry: where published components are kept, and how the registry
// reads an agent's manifest (through the sandbox, which protocol/ does not import).

import { join } from 'node:path'
import { inspectAgentBytes } from '../sandbox/index.ts'
import type { InspectedAgent, ResolvedAgent } from '../protocol/index.ts'

/**
 * How a part that names agents (a workflow step, a task by name) gets one: `NAME`,
 * `NAME@VERSION` or `NAME@TAG` to the version it resolves to, with its bytes checked against the
 * digest. `HiveNode.resolveAgent` is one; a part takes this type as its dependency.
 */
export type AgentResolver = (ref: string, options?: { signal?: AbortSignal }) => Promise<ResolvedAgent>

export const REGISTRY_SUBLEVEL = 'registry'

/** `<data>/components`: published components by digest; each file is checked when read. */
export function componentsDir (dataDir: string): string {
  return join(dataDir, 'components')
}

/** Name, version and the manifest a catalog entry carries, read from an agent's bytes. */
export function inspectForRegistry (bytes: Uint8Array): InspectedAgent {
  const m = inspectAgentBytes(bytes).manifest
  return {
    name: m.name,
    version: m.version,
    manifest: {
      description: m.description,
      permissions: [...m.permissions],
      limits: { timeoutMs: m.limits.timeoutMs, memoryMiB: m.limits.memoryMiB },
      ...(m.models !== undefined ? { models: [...m.models] } : {}),
      ...(m.tools !== undefined ? { tools: m.tools.map(t => ({ name: t.name, description: t.description, parameters: t.parameters })) } : {})
    }
  }
}
