// The workflow file: its schema (published as docs/workflow.schema.json), its templates, and the
// checks that refuse a workflow before anything of it runs. Pure functions; no I/O.
//
// A workflow is a DAG of named steps. A step's dependencies are the steps it lists in `needs`
// and the steps its templates read (`${{ steps.NAME.output }}`); every one must exist, none may be
// the step itself, and together they may form no cycle. A fork step runs its agent once per
// element of the JSON array its `over` template gives; its output, as other steps read it, is
// the JSON array of those runs' outputs in the elements' order (the join).

import { z } from 'zod'
import { ContextIdSchema, Permissions, Requirements } from '../../protocol/index.ts'
import { InvalidWorkflowError } from './errors.ts'
import { FLOW_LIMITS } from './limits.ts'

const L = FLOW_LIMITS

export const STEP_NAME_PATTERN = /^[A-Za-z][A-Za-z0-9_-]*$/
const StepName = z.string().min(1).max(L.maxStepNameChars).regex(STEP_NAME_PATTERN, 'a letter, then letters, digits, "_" or "-"')
const Template = z.string().max(L.maxTemplateChars, `at most ${L.maxTemplateChars} characters`)

export const ForkSchema = z.object({
  over: Template.describe('A template that gives a JSON array: one task runs per element, which the step\'s input reads as ${{ item }} (and its position as ${{ index }}).'),
  concurrency: z.int().min(1).max(L.maxConcurrency).optional().describe(`Tasks of this fork running at once (default ${L.defaultConcurrency}).`)
}).strict()

export const StepSchema = z.object({
  name: StepName.describe('The step\'s name, unique in the workflow; other steps read its output as ${{ steps.NAME.output }}.'),
  agent: z.string().min(1).max(1024).describe('The agent: a path to its .wasm component (relative to the workflow file, read by the CLI), its SHA-256 digest (64 hex characters, held by the node), or a registry name NAME@VERSION.'),
  input: Template.optional().describe('The task\'s input: text with ${{ input }}, ${{ steps.NAME.output }}, and in a fork ${{ item }} and ${{ index }} filled in. Default: empty.'),
  needs: z.array(StepName).max(L.maxSteps).optional().describe('Steps that must be done before this one starts (besides those its templates read).'),
  fork: ForkSchema.optional(),
  retries: z.int().min(0).max(L.maxRetries).optional().describe('Attempts after a failed one (each a new task, placed anew). Default 0.'),
  timeoutMs: z.int().min(L.minTimeoutMs).max(L.maxTimeoutMs).optional().describe('An attempt still running after this long is cancelled and counts as failed.'),
  requirements: Requirements.optional().describe('What a device must offer to run the step\'s tasks (runtime, models, minMemoryMiB, minCores, peer).'),
  permissions: Permissions.optional().describe('Permissions granted to the agent (default: those its manifest asks for).'),
  contextId: ContextIdSchema.optional().describe('The context the agent runs in.')
}).strict()

export const WorkflowSchema = z.object({
  $schema: z.string().max(1024).optional(),
  version: z.literal(1).describe('The format\'s version: 1.'),
  name: z.string().min(1).max(128).optional(),
  description: z.string().max(4096).optional(),
  steps: z.array(StepSchema).min(1).max(L.maxSteps),
  output: StepName.optional().describe('The step whose output is the workflow\'s (default: the last step).')
}).strict()

export type Workflow = z.infer<typeof WorkflowSchema>
export type Step = z.infer<typeof StepSchema>

/** The JSON schema of a workflow file, as docs/workflow.schema.json publishes it. */
export function workflowJsonSchema (): Record<string, unknown> {
  return {
    ...z.toJSONSchema(WorkflowSchema, { io: 'input', target: 'draft-2020-12' }),
    $id: 'https://hive-node.invalid/workflow.schema.json',
    title: 'hive-node workflow'
  }
}

// ---- agents ----

export type AgentRef =
  | { kind: 'digest', digest: string }
  | { kind: 'registry', name: string, version: string }
  | { kind: 'file', path: string }

const DIGEST_REF = /^(?:sha256:)?([0-9a-f]{64})$/
const REGISTRY_REF = /^([a-z0-9][a-z0-9._-]{0,127})@([0-9A-Za-z][0-9A-Za-z.+-]{0,63})$/

/**
 * What a step's `agent` names: a digest, a registry name (`name@version`; resolved by the node's
 * agent resolver, which a registry plugs into), or else a file path that only the CLI can read.
 */
export function classifyAgent (ref: string): AgentRef {
  const digest = DIGEST_REF.exec(ref)
  if (digest != null) return { kind: 'digest', digest: digest[1]! }
  const named = REGISTRY_REF.exec(ref)
  if (named != null && !ref.endsWith('.wasm')) return { kind: 'registry', name: named[1]!, version: named[2]! }
  return { kind: 'file', path: ref }
}

// ---- templates ----

export type Expression =
  | { kind: 'input' }
  | { kind: 'item' }
  | { kind: 'index' }
  | { kind: 'step', step: string }

/** A template cut into literal text and expressions. */
export type Template = Array<string | Expression>

const OPEN = '${{'
const CLOSE = '}}'
const STEP_EXPR = /^steps\.([A-Za-z][A-Za-z0-9_-]*)\.output$/

/** Cuts a template; throws (a message without the step, which the caller adds) when it is malformed. */
export function parseTemplate (text: string): Template {
  const parts: Template = []
  let at = 0
  let count = 0
  for (;;) {
    const open = text.indexOf(OPEN, at)
    if (open < 0) {
      if (at < text.length) parts.push(text.slice(at))
      return parts
    }
    if (open > at) parts.push(text.slice(at, open))
    const close = text.indexOf(CLOSE, open + OPEN.length)
    if (close < 0) throw new Error(`"${OPEN}" at character ${open + 1} is never closed with "${CLOSE}"`)
    const body = text.slice(open + OPEN.length, close).trim()
    if (++count > L.maxTemplateExpressions) throw new Error(`more than ${L.maxTemplateExpressions} expressions`)
    if (body === 'input') parts.push({ kind: 'input' })
    else if (body === 'item') parts.push({ kind: 'item' })
    else if (body === 'index') parts.push({ kind: 'index' })
    else {
      const step = STEP_EXPR.exec(body)
      if (step == null) throw new Error(`"${OPEN} ${body.slice(0, 80)} ${CLOSE}" is not an expression; use input, item, index or steps.NAME.output`)
      parts.push({ kind: 'step', step: step[1]! })
    }
    at = close + CLOSE.length
  }
}

export interface TemplateValues {
  input: string
  /** Each step's output as other steps read it (a fork's: the JSON array of its outputs). */
  outputs: ReadonlyMap<string, string>
  item?: unknown
  index?: number
}

/** Fills a template in. A fork element that is a string goes in as it is; any other, as JSON. */
export function renderTemplate (template: Template, values: TemplateValues): string {
  let out = ''
  for (const part of template) {
    if (typeof part === 'string') { out += part; continue }
    switch (part.kind) {
      case 'input': out += values.input; break
      case 'item': out += typeof values.item === 'string' ? values.item : JSON.stringify(values.item ?? null); break
      case 'index': out += String(values.index ?? 0); break
      case 'step': out += values.outputs.get(part.step) ?? ''; break
    }
  }
  return out
}

// ---- the whole workflow ----

/** A step as the engine runs it: its templates cut, its dependencies known. */
export interface PlannedStep {
  name: string
  agent: string
  input: Template
  over?: Template
  concurrency: number
  retries: number
  timeoutMs?: number
  requirements?: z.input<typeof Requirements>
  permissions?: string[]
  contextId?: string
  /** Every step this one waits for: `needs` and the steps its templates read, in file order. */
  after: string[]
}

export interface Plan {
  name?: string
  steps: PlannedStep[]
  /** The step whose output is the workflow's. */
  output: string
}

function where (workflow: unknown, path: ReadonlyArray<PropertyKey>): { text: string, step?: string } {
  const [first, index, ...rest] = path
  if (first === 'steps' && typeof index === 'number') {
    const steps = (workflow as { steps?: unknown[] })?.steps
    const name = (steps?.[index] as { name?: unknown } | undefined)?.name
    const field = rest.map(String).join('.')
    if (typeof name === 'string' && name.length <= L.maxStepNameChars) return { text: `step "${name}"${field !== '' ? `, ${field}` : ''}`, step: name }
    return { text: `steps[${index}]${field !== '' ? `.${field}` : ''}` }
  }
  return { text: path.length > 0 ? path.map(String).join('.') : 'the workflow' }
}

/** Checks a workflow's shape against the schema; the error names the step and the field. */
export function parseWorkflow (value: unknown): Workflow {
  const parsed = WorkflowSchema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  const at = where(value, issue?.path ?? [])
  throw new InvalidWorkflowError(`${at.text}: ${issue?.message ?? 'invalid'}`, at.step)
}

/** Parses a workflow file's text (JSON), within the size bound. */
export function parseWorkflowText (text: string, source = 'the workflow'): Workflow {
  const bytes = Buffer.byteLength(text, 'utf8')
  if (bytes > L.maxFileBytes) throw new InvalidWorkflowError(`${source} is ${bytes} bytes; a workflow file holds at most ${L.maxFileBytes}`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new InvalidWorkflowError(`${source} is not JSON (${(err as Error).message}); a workflow file is a JSON object, see docs/workflow.schema.json`)
  }
  return parseWorkflow(value)
}

/**
 * Every check a workflow must pass before anything of it runs: the schema, unique names,
 * well-formed templates, known step references, and no cycle. Each refusal names the step.
 */
export function planWorkflow (value: unknown): Plan {
  const workflow = parseWorkflow(value)
  const names = new Set<string>()
  for (const step of workflow.steps) {
    if (names.has(step.name)) throw new InvalidWorkflowError(`step "${step.name}" is defined twice; step names must be unique`, step.name)
    names.add(step.name)
  }
  const steps: PlannedStep[] = workflow.steps.map((step) => {
    const cut = (text: string, field: string): Template => {
      try {
        return parseTemplate(text)
      } catch (err) {
        throw new InvalidWorkflowError(`step "${step.name}", ${field}: bad template: ${(err as Error).message}`, step.name)
      }
    }
    const input = cut(step.input ?? '', 'input')
    const over = step.fork != null ? cut(step.fork.over, 'fork.over') : undefined
    for (const part of [...input, ...(over ?? [])]) {
      if (typeof part === 'string') continue
      if ((part.kind === 'item' || part.kind === 'index') && over == null) {
        throw new InvalidWorkflowError(`step "${step.name}", input: \${{ ${part.kind} }} is only defined in a fork step; add "fork": { "over": … } or remove it`, step.name)
      }
    }
    for (const part of over ?? []) {
      if (typeof part !== 'string' && (part.kind === 'item' || part.kind === 'index')) {
        throw new InvalidWorkflowError(`step "${step.name}", fork.over: \${{ ${part.kind} }} is the element being run; "over" gives the array, from \${{ input }} or \${{ steps.NAME.output }}`, step.name)
      }
    }
    if (over != null && over.every(p => typeof p === 'string')) {
      // a literal array is checked now rather than when the step starts
      checkForkArray(step.name, over.join(''))
    }
    const referenced = [...input, ...(over ?? [])].flatMap(p => typeof p !== 'string' && p.kind === 'step' ? [p.step] : [])
    for (const dep of [...(step.needs ?? []), ...referenced]) {
      if (dep === step.name) throw new InvalidWorkflowError(`step "${step.name}" depends on itself`, step.name)
      if (!names.has(dep)) throw new InvalidWorkflowError(`step "${step.name}" refers to step "${dep}", which the workflow does not define (steps: ${[...names].join(', ')})`, step.name)
    }
    const after = workflow.steps.map(s => s.name).filter(n => (step.needs ?? []).includes(n) || referenced.includes(n))
    return {
      name: step.name,
      agent: step.agent,
      input,
      ...(over != null ? { over } : {}),
      concurrency: step.fork?.concurrency ?? L.defaultConcurrency,
      retries: step.retries ?? 0,
      ...(step.timeoutMs != null ? { timeoutMs: step.timeoutMs } : {}),
      ...(step.requirements != null ? { requirements: step.requirements } : {}),
      ...(step.permissions != null ? { permissions: step.permissions } : {}),
      ...(step.contextId != null ? { contextId: step.contextId } : {}),
      after
    }
  })
  const cycle = findCycle(steps)
  if (cycle != null) throw new InvalidWorkflowError(`steps ${cycle.map(s => `"${s}"`).join(' → ')} form a cycle; a workflow runs each step once, after the steps it needs`, cycle[0])
  const output = workflow.output ?? workflow.steps.at(-1)!.name
  if (!names.has(output)) throw new InvalidWorkflowError(`"output" names step "${output}", which the workflow does not define`, output)
  return { ...(workflow.name != null ? { name: workflow.name } : {}), steps, output }
}

/** A cycle of steps, first step repeated last, or undefined. */
function findCycle (steps: PlannedStep[]): string[] | undefined {
  const byName = new Map(steps.map(s => [s.name, s]))
  const state = new Map<string, 'visiting' | 'done'>()
  const path: string[] = []
  const visit = (name: string): string[] | undefined => {
    const seen = state.get(name)
    if (seen === 'done') return undefined
    if (seen === 'visiting') return [...path.slice(path.indexOf(name)), name]
    state.set(name, 'visiting')
    path.push(name)
    for (const dep of byName.get(name)?.after ?? []) {
      const found = visit(dep)
      if (found != null) return found
    }
    path.pop()
    state.set(name, 'done')
    return undefined
  }
  for (const step of steps) {
    const found = visit(step.name)
    if (found != null) return found.reverse()
  }
  return undefined
}

/** The elements of a fork, from the text its `over` gave. */
export function checkForkArray (step: string, text: string): unknown[] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new InvalidWorkflowError(`step "${step}", fork.over: gave ${JSON.stringify(text.slice(0, 60))}${text.length > 60 ? '…' : ''}, which is not JSON; it must give a JSON array`, step)
  }
  if (!Array.isArray(value)) throw new InvalidWorkflowError(`step "${step}", fork.over: gave JSON that is not an array; it must give a JSON array`, step)
  if (value.length > L.maxForkWidth) throw new InvalidWorkflowError(`step "${step}", fork.over: gave ${value.length} elements; a fork runs at most ${L.maxForkWidth}`, step)
  return value
}
