// `hive-node run --code SOURCE`: a code task, placed by the running node like any task (the
// interpreter component is built there on first use, then cached).

import { ApiRequestError, UsageError } from '../cli-context.ts'
import { peerNames, resolvePeer, waitForTask } from './tasks.ts'
import type { TaskView } from '../../protocol/index.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'

export interface CodeOptions extends CommonOptions {
  code?: string
  on?: string
  local?: boolean
  timeout?: string
}

export async function runCode (cli: CliContext, all: CodeOptions): Promise<void> {
  if (all.on !== undefined && all.local === true) throw new UsageError('give at most one of --on PEER and --local')
  const waitMs = all.timeout !== undefined ? Number(all.timeout) : Infinity
  if (all.timeout !== undefined && (!Number.isInteger(waitMs) || waitMs < 1)) throw new UsageError(`--timeout takes a whole number of milliseconds, not "${all.timeout}"`)
  const api = cli.api(all)
  const on = all.on !== undefined ? await resolvePeer(cli, all, all.on) : undefined
  let task: TaskView
  try {
    task = (await api.post<{ task: TaskView }>('/task', {
      type: 'code-execution',
      code: all.code,
      runtime: 'auto',
      ...(on !== undefined ? { on } : {}),
      ...(all.local === true ? { local: true } : {})
    })).task
  } catch (err) {
    if (err instanceof ApiRequestError && err.status === 400) throw new UsageError(err.message)
    throw err
  }
  task = await waitForTask(cli, all, task, waitMs)
  for (const l of task.result?.logs ?? []) cli.err(`[code] ${l.level}: ${l.message}\n`)
  if (task.result == null || !task.result.ok) {
    const error = task.result?.error ?? task.error?.message ?? `task ${task.id} ${task.status} without a result`
    throw Object.assign(new Error(`${error} (task ${task.id}; "hive-node task ${task.id}" shows it)`), { name: 'CodeFailed' })
  }
  const names = await peerNames(cli, all)
  if (all.json !== true) cli.err(`ran on ${names(task.result.executor)}: task ${task.id}\n`)
  cli.print(all, task.result.output ?? '', { output: task.result.output ?? '', task: task.id, executor: task.result.executor, durationMs: task.result.durationMs })
}
