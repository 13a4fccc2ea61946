// The agent manifest: who the agent is, what it may touch, and how much it may use.
//
// It travels inside the component as a custom section named `hive-agent-manifest` holding UTF-8
// JSON, appended after the component's own sections. WebAssembly runtimes ignore custom sections,
// so the component runs unchanged; and because the manifest is part of the file, the agent's
// digest (SHA-256 of the whole file) covers it: a changed permission is a different agent.

import { z } from 'zod'
import { appendCustomSection, readComponent, removeSections } from './binary.ts'
import { ManifestInvalidError, ManifestMissingError } from './errors.ts'
import { LLM_LIMITS } from './llm.ts'
import { NET_LIMITS, NET_PREFIX, parseOrigin } from './net.ts'
import { ToolsSchema } from './tools.ts'
import { PERMISSIONS } from './wit.ts'
import type { PermissionEntry } from './wit.ts'

export const MANIFEST_SECTION = 'hive-agent-manifest'
/** A manifest is small; a bigger section is refused before parsing. */
export const MAX_MANIFEST_BYTES = 64 * 1024

export const DEFAULT_TIMEOUT_MS = 10_000
export const DEFAULT_MEMORY_MIB = 64

export const ManifestSchema = z.strictObject({
  /** Lowercase letters, digits, `.`, `_`, `-`; starts with a letter or digit. */
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'lowercase letters, digits, ".", "_" or "-", at most 64, starting with a letter or digit'),
  version: z.string().regex(/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/, 'a semantic version such as 1.0.0'),
  description: z.string().max(1000).default(''),
  /**
   * What the agent may touch: names from PERMISSIONS (but `net`), and one `net:<origin>` per
   * origin it may reach over http (written canonically once parsed).
   */
  permissions: z.array(z.string().transform((text, ctx) => {
    if (text !== 'net' && (PERMISSIONS as readonly string[]).includes(text)) return text
    if (text.startsWith(NET_PREFIX)) {
      try {
        return `${NET_PREFIX}${parseOrigin(text.slice(NET_PREFIX.length)).text}`
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message })
        return z.NEVER
      }
    }
    ctx.addIssue({ code: 'custom', message: `"${text.slice(0, 100)}" is not a permission: each is one of ${PERMISSIONS.filter(p => p !== 'net').join(', ')}, or net:<origin> such as net:https://api.example.org` })
    return z.NEVER
  }))
    .max(PERMISSIONS.length + NET_LIMITS.maxOrigins)
    .transform(p => p as PermissionEntry[])
    .refine(p => new Set(p).size === p.length, 'each permission at most once')
    .refine(p => p.filter(e => e.startsWith(NET_PREFIX)).length <= NET_LIMITS.maxOrigins, `at most ${NET_LIMITS.maxOrigins} net: origins`)
    .refine(p => !p.includes('llm:cloud') || p.includes('llm'), '"llm:cloud" widens "llm" to the cloud and needs "llm" beside it')
    .default([]),
  /**
   * The models the agent may call, by name; absent means any. A call naming another model is
   * refused before any route is asked, and a call naming none may be answered by any of these.
   */
  models: z.array(z.string().min(1).max(LLM_LIMITS.maxModelNameChars)).min(1).max(LLM_LIMITS.maxModels)
    .refine(m => new Set(m).size === m.length, 'each model at most once')
    .optional(),
  /** Named tools with a JSON schema for their parameters (tools.ts): a run may name one. */
  tools: ToolsSchema.optional(),
  limits: z.strictObject({
    /** Wall-clock time one run may take, in milliseconds. */
    timeoutMs: z.int().min(1).max(3_600_000).default(DEFAULT_TIMEOUT_MS),
    /** Linear memory the agent may use, in MiB (all its memories together). */
    memoryMiB: z.int().min(1).max(4096).default(DEFAULT_MEMORY_MIB)
  }).default({ timeoutMs: DEFAULT_TIMEOUT_MS, memoryMiB: DEFAULT_MEMORY_MIB })
}).refine(m => m.models === undefined || m.permissions.includes('llm'), { path: ['models'], message: 'a "models" allowlist needs the permission "llm"' })

export type Manifest = z.infer<typeof ManifestSchema>
export type ManifestInput = z.input<typeof ManifestSchema>

/** Validates a manifest value (from a file or a section); the error lists every problem. */
export function parseManifest (value: unknown, where = 'manifest'): Manifest {
  const parsed = ManifestSchema.safeParse(value)
  if (!parsed.success) {
    const problems = parsed.error.issues.map(i => `${i.path.length > 0 ? i.path.join('.') : '(top)'}: ${i.message}`)
    throw new ManifestInvalidError(`${where} is invalid: ${problems.join('; ')}`)
  }
  return parsed.data
}

/** Parses manifest JSON text. */
export function parseManifestJson (text: string, where = 'manifest'): Manifest {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new ManifestInvalidError(`${where} is not valid JSON: ${(err as Error).message}`)
  }
  return parseManifest(value, where)
}

/** The manifest carried by a component. */
export function readManifest (component: Uint8Array): Manifest {
  const found = readComponent(component).customSections.filter(s => s.name === MANIFEST_SECTION)
  if (found.length === 0) {
    throw new ManifestMissingError(`the component has no "${MANIFEST_SECTION}" section; build it with \`hive-node agent build\`, which embeds the manifest beside the source`)
  }
  if (found.length > 1) throw new ManifestInvalidError(`the component has ${found.length} manifest sections; it must have exactly one`)
  const data = (found[0] as { data: Uint8Array }).data
  if (data.byteLength > MAX_MANIFEST_BYTES) throw new ManifestInvalidError(`the manifest is ${data.byteLength} bytes; at most ${MAX_MANIFEST_BYTES} are allowed`)
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(data)
  } catch {
    throw new ManifestInvalidError('the manifest section is not UTF-8')
  }
  return parseManifestJson(text, 'the embedded manifest')
}

/** A copy of `component` carrying `manifest` (validated), replacing any manifest it had. */
export function embedManifest (component: Uint8Array, manifest: ManifestInput): Uint8Array {
  const valid = parseManifest(manifest)
  const old = readComponent(component).customSections.filter(s => s.name === MANIFEST_SECTION)
  const data = new TextEncoder().encode(JSON.stringify(valid))
  return appendCustomSection(removeSections(component, old), MANIFEST_SECTION, data)
}
