// Tools with parameters: an agent's manifest may declare named tools, each with a JSON schema for
// its parameters. A run that names a tool has its parameters checked against that schema before
// it is placed anywhere, and the agent receives them as its input (README "Tools with parameters"):
//
//   {"tool":"<name>","params":{...},"input":"<the run's input text, when one was given>"}
//
// The schema is JSON Schema (the subset zod converts: types, properties, required, enum, const,
// bounds, patterns, items, local $refs); one that zod cannot convert makes the manifest invalid
// when it is built or published, not when someone runs the tool.

import { z } from 'zod'
import { ToolNotFoundError, ToolParamsInvalidError } from './errors.ts'

export const TOOL_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/
export const MAX_TOOLS = 16
/** A tool's parameter schema as JSON, at most: a catalog entry carries every tool's. */
export const MAX_TOOL_SCHEMA_BYTES = 4 * 1024

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The zod validator of a JSON schema; throws with what is wrong with the schema. */
export function compileParameters (schema: unknown): z.ZodType {
  if (!isPlainObject(schema)) throw new Error('parameters must be a JSON schema object')
  if (schema.type !== 'object') throw new Error('parameters must be a schema of "type": "object" (named parameters)')
  return z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0])
}

export const ToolSchema = z.strictObject({
  name: z.string().regex(TOOL_NAME_PATTERN, 'a tool name: lowercase letters, digits, "_" or "-", at most 64, starting with a letter'),
  description: z.string().max(500).default(''),
  parameters: z.record(z.string(), z.unknown()).superRefine((schema, ctx) => {
    const size = Buffer.byteLength(JSON.stringify(schema))
    if (size > MAX_TOOL_SCHEMA_BYTES) {
      ctx.addIssue({ code: 'custom', message: `the schema is ${size} bytes of JSON; at most ${MAX_TOOL_SCHEMA_BYTES}` })
      return
    }
    try {
      compileParameters(schema)
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a usable JSON schema: ${(err as Error).message}` })
    }
  }).default({ type: 'object', properties: {} })
})
export type Tool = z.infer<typeof ToolSchema>

export const ToolsSchema = z.array(ToolSchema).max(MAX_TOOLS).refine(t => new Set(t.map(x => x.name)).size === t.length, 'each tool name at most once')

/** The tool a run names, from an agent's declared tools; the error lists the ones there are. */
export function findTool (agent: string, tools: readonly Tool[] | undefined, name: string): Tool {
  const tool = tools?.find(t => t.name === name)
  if (tool != null) return tool
  const names = (tools ?? []).map(t => t.name)
  throw new ToolNotFoundError(`agent ${agent} declares no tool "${name.slice(0, 64)}"; ${names.length > 0 ? `its tools are ${names.join(', ')}` : 'it declares no tools'}`)
}

/** Checks parameters against a tool's schema; the error names every parameter that is wrong. */
export function validateToolParams (agent: string, tool: Tool, params: unknown): Record<string, unknown> {
  const parsed = compileParameters(tool.parameters).safeParse(params)
  if (!parsed.success) {
    const problems = parsed.error.issues.map(i => `${i.path.length > 0 ? i.path.join('.') : '(parameters)'}: ${i.message}`)
    throw new ToolParamsInvalidError(`the parameters of ${agent}'s tool "${tool.name}" do not match its schema: ${problems.join('; ')}`)
  }
  return parsed.data as Record<string, unknown>
}

/**
 * Parameters from `k=v` pairs (the CLI's `--param`): each value is read as the schema's type for
 * that key says (integer, number, boolean, object or array as JSON), a string otherwise.
 */
export function paramsFromPairs (tool: Tool, pairs: readonly string[]): Record<string, unknown> {
  const properties = isPlainObject(tool.parameters.properties) ? tool.parameters.properties : {}
  const out: Record<string, unknown> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    if (eq <= 0) throw new ToolParamsInvalidError(`--param "${pair.slice(0, 100)}": write KEY=VALUE`)
    const key = pair.slice(0, eq)
    const text = pair.slice(eq + 1)
    const spec = properties[key]
    const type = isPlainObject(spec) ? spec.type : undefined
    if (type === 'integer' || type === 'number') {
      const n = Number(text)
      out[key] = text.trim() === '' || Number.isNaN(n) ? text : n
    } else if (type === 'boolean') {
      out[key] = text === 'true' ? true : text === 'false' ? false : text
    } else if (type === 'object' || type === 'array') {
      try { out[key] = JSON.parse(text) } catch { out[key] = text }
    } else {
      out[key] = text
    }
  }
  return out
}

/** What the agent receives as its input when a run names a tool. */
export function toolInput (tool: string, params: Record<string, unknown>, input?: string): string {
  return JSON.stringify({ tool, params, ...(input != null && input !== '' ? { input } : {}) })
}
