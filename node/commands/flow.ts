// `hive-node flow run FILE [--input TEXT]`, `flow status ID`, `flow explain ID`, `flow cancel ID`
// and `flow list`: workflows through the running node's API. `run` checks the file here first
// (the node checks it again), reads the agents it names by path, and sends them with it.

import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { FLOW_LIMITS, classifyAgent, isFlowId, parseWorkflowText, planWorkflow } from '../flows/index.ts'
import { UsageError, formatTime, readUserFile, table } from '../cli-context.ts'
import { ago, parseLimit, registerExplain, waitUntilEnded } from './follow.ts'
import { peerNames } from './tasks.ts'
import type { FlowView, Workflow } from '../flows/index.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

function checkId (id: string): string {
  if (!isFlowId(id)) throw new UsageError(`"${id}" is not a workflow id (24 hex characters, as "hive-node flow list" shows them)`)
  return id
}

/** A workflow file that cannot run: exit 1, the message naming the file and the step. */
export class WorkflowFileError extends Error {
  override name = 'InvalidWorkflow'
}

/**
 * Reads a workflow file, checks it as the node will, and reads the agents its steps name by path
 * (relative to the file): the workflow with those steps naming digests, and the agents' bytes.
 */
export async function loadWorkflowFile (path: string): Promise<{ workflow: Workflow, agents: Map<string, Uint8Array> }> {
  const size = await stat(path).then(s => s.isFile() ? s.size : undefined, () => undefined)
  if (size != null && size > FLOW_LIMITS.maxFileBytes) throw new WorkflowFileError(`${path} is ${size} bytes; a workflow file holds at most ${FLOW_LIMITS.maxFileBytes}`)
  const text = (await readUserFile(path, 'a workflow file (JSON)')).toString('utf8')
  let workflow: Workflow
  try {
    workflow = parseWorkflowText(text, path)
    planWorkflow(workflow)
  } catch (err) {
    throw new WorkflowFileError(`${path}: ${(err as Error).message}`)
  }
  const agents = new Map<string, Uint8Array>()
  const byPath = new Map<string, string>()
  let total = 0
  const steps = []
  for (const step of workflow.steps) {
    const ref = classifyAgent(step.agent)
    if (ref.kind !== 'file') { steps.push(step); continue }
    const full = resolve(dirname(path), ref.path)
    let digest = byPath.get(full)
    if (digest == null) {
      let bytes: Buffer
      try {
        bytes = await readUserFile(full, `step "${step.name}"'s agent (a .wasm component)`)
      } catch (err) {
        throw new WorkflowFileError(`${path}: step "${step.name}": ${(err as Error).message}`)
      }
      total += bytes.byteLength
      if (total > FLOW_LIMITS.maxAgentBytes) throw new WorkflowFileError(`${path}: the agents are over ${FLOW_LIMITS.maxAgentBytes} bytes together (step "${step.name}" reaches it)`)
      digest = createHash('sha256').update(bytes).digest('hex')
      byPath.set(full, digest)
      agents.set(digest, new Uint8Array(bytes))
    }
    steps.push({ ...step, agent: digest })
  }
  return { workflow: { ...workflow, steps }, agents }
}

/** A workflow's status as `flow status` prints it. */
export function renderFlow (flow: FlowView, name: (peerId: string) => string): string {
  const lines = [
    `workflow   ${flow.id}${flow.name != null ? ` (${flow.name})` : ''}`,
    `status     ${flow.status}${flow.error != null ? ` (${flow.error.code}${flow.error.step != null ? ` in step ${flow.error.step}` : ''}: ${flow.error.message})` : ''}`,
    `started    ${formatTime(flow.createdAt)} (${ago(flow.createdAt)})${flow.endedAt != null ? `, ended ${formatTime(flow.endedAt)}` : ''}`,
    ''
  ]
  const rows = flow.steps.map((s) => {
    const ran = [...new Set(s.units.map(u => u.executor ?? u.winner).filter((p): p is string => p != null))].map(name)
    const tasks = s.fork != null ? `${s.fork.done}/${s.fork.width ?? '?'} done` : (s.units[0]?.task ?? '')
    const attempts = s.units.reduce((n, u) => n + u.attempts.length, 0)
    return [s.name, s.status, s.fork != null ? `fork ×${s.fork.concurrency}` : 'task', tasks, String(attempts), ran.join(', ')]
  })
  lines.push(table(['STEP', 'STATUS', 'KIND', 'TASKS', 'ATTEMPTS', 'RAN ON'], rows))
  const failed = flow.steps.find(s => s.error != null)
  if (failed != null) lines.push('', `error in ${failed.name}: ${failed.error ?? ''}`)
  if (flow.output != null) lines.push('', `output (step ${flow.outputStep}):`, flow.output)
  lines.push('', `explain    hive-node flow explain ${flow.id}`)
  return lines.join('\n')
}

export function register (program: Command, cli: CliContext): void {
  const flow = program.command('flow')
    .description('run fork-join workflows of agents, each step placed across the hive')

  flow.command('run')
    .description('run a workflow file (JSON, docs/workflow.schema.json) and wait for its output')
    .argument('<file>', 'the workflow file')
    .option('--input <text>', 'the workflow\'s input (${{ input }} in its templates)')
    .option('--input-file <path>', 'read the workflow\'s input from a file')
    .option('--no-wait', 'print the workflow\'s id once it has started, without waiting for its end')
    .option('--json', 'print as JSON')
    .action(async (file: string, options: CommonOptions & { input?: string, inputFile?: string, wait: boolean }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { input?: string, inputFile?: string, wait: boolean }>()
      if (options.input !== undefined && options.inputFile !== undefined) throw new UsageError('give the input with --input or with --input-file, not both')
      const input = options.inputFile !== undefined ? (await readUserFile(options.inputFile, 'the workflow\'s input')).toString('utf8') : options.input
      if (input !== undefined && Buffer.byteLength(input, 'utf8') > FLOW_LIMITS.maxInputBytes) throw new UsageError(`the input is ${Buffer.byteLength(input, 'utf8')} bytes; a workflow takes at most ${FLOW_LIMITS.maxInputBytes}`)
      const { workflow, agents } = await loadWorkflowFile(file)
      const api = cli.api(all)
      const { flow: started } = await api.post<{ flow: FlowView }>('/flows', {
        workflow,
        ...(input !== undefined ? { input } : {}),
        ...(agents.size > 0 ? { agents: Object.fromEntries([...agents].map(([d, b]) => [d, Buffer.from(b).toString('base64')])) } : {})
      })
      if (!options.wait) {
        cli.print(all, `workflow ${started.id} started; "hive-node flow status ${started.id}" follows it`, { flow: started })
        return
      }
      const view = await waitUntilEnded(started, async (ms) => (await api.get<{ flow: FlowView }>(`/flows/${started.id}?waitMs=${ms}`)).flow, f => f.status !== 'running')
      if (all.json === true) cli.print(all, '', { flow: view })
      else if (view.status === 'done') cli.out((view.output ?? '') + '\n')
      else cli.print(all, renderFlow(view, await peerNames(cli, all)), { flow: view })
      if (view.status !== 'done') throw new WorkflowEndedError(view)
    })

  flow.command('status')
    .description('show a workflow: each step\'s status, tasks and where they ran, its output')
    .argument('<id>', 'workflow id')
    .option('--json', 'print as JSON')
    .action(async (id: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { flow: view } = await cli.api(all).get<{ flow: FlowView }>(`/flows/${checkId(id)}`)
      const names = await peerNames(cli, all)
      cli.print(all, () => renderFlow(view, names), { flow: view })
    })

  registerExplain(flow, cli, {
    description: 'explain a workflow: for each step (and fork element), where its task ran and why',
    argument: 'workflow id',
    path: (id) => `/flows/${checkId(id)}/explain`
  })

  flow.command('cancel')
    .description('cancel a running workflow: every task of it under way is cancelled')
    .argument('<id>', 'workflow id')
    .option('--json', 'print as JSON')
    .action(async (id: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { flow: view } = await cli.api(all).request<{ flow: FlowView }>('DELETE', `/flows/${checkId(id)}`)
      const names = await peerNames(cli, all)
      cli.print(all, () => renderFlow(view, names), { flow: view })
    })

  flow.command('list')
    .description('list recent workflows run on this device')
    .option('--limit <n>', 'how many (default 20)')
    .option('--json', 'print as JSON')
    .action(async (options: CommonOptions & { limit?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { limit?: string }>()
      const limit = parseLimit(options.limit)
      const { flows } = await cli.api(all).get<{ flows: FlowView[] }>(`/flows?limit=${limit}`)
      cli.print(all, () => flows.length === 0
        ? 'no workflows yet; "hive-node flow run FILE" runs one'
        : table(['WORKFLOW', 'NAME', 'STATUS', 'STARTED', 'STEPS'], flows.map(f => [
          f.id, f.name ?? '', f.status, ago(f.createdAt), `${f.steps.filter(s => s.status === 'done').length}/${f.steps.length}`
        ])), { flows })
    })
}

/** `flow run` of a workflow that failed or was cancelled: exit 1 after its status is printed. */
export class WorkflowEndedError extends Error {
  override name = 'WorkflowEnded'
  constructor (flow: FlowView) {
    super(`workflow ${flow.id} ${flow.status}${flow.error != null ? `: ${flow.error.message}` : ''}`)
  }
}
