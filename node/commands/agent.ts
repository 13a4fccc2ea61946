// `hive-node agent build|new|inspect` and `hive-node run`: making agents and running them.
// `run` goes through the running node's API and is placed across the hive (`--on` pins it to
// one device, `--local` to this one; see commands/tasks.ts); with no node running it runs the
// agent in this process instead.

import { text } from 'node:stream/consumers'
import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { isAgentRefText } from '../../protocol/registry/entries.ts'
import { contextId } from '../../crdt/ids.ts'
import { ApiRequestError, UsageError, readUserFile, table } from '../cli-context.ts'
import { NodeNotRunningError } from '../errors.ts'
import type { AgentInfo, AgentLogEntry, RunResult, Tool } from '../../sandbox/index.ts'
import type { BuildProgress } from '../../sandbox/build.ts'
import type { AgentLogLine, RunResponse } from '../api/agents.ts'
import { peerNames, runPlaced } from './tasks.ts'
import { liveLogs } from './events.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

function mib (bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`
}

/** Progress of a build: a bar on a terminal, one line per stage otherwise. */
async function progressReporter (cli: CliContext, quiet: boolean): Promise<{ update: (p: BuildProgress) => void, stop: () => void }> {
  if (quiet) return { update: () => {}, stop: () => {} }
  if (process.stderr.isTTY) {
    const { default: cliProgress } = await import('cli-progress')
    const bar = new cliProgress.SingleBar({
      format: 'building [{bar}] {percentage}% {stage} ({seconds} s)',
      stream: process.stderr,
      hideCursor: true,
      clearOnComplete: true
    }, cliProgress.Presets.shades_classic)
    bar.start(100, 0, { stage: 'prepare', seconds: '0' })
    return {
      update: p => { bar.update(Math.round(p.fraction * 100), { stage: p.stage, seconds: (p.elapsedMs / 1000).toFixed(0) }) },
      stop: () => { bar.stop() }
    }
  }
  let last = ''
  return {
    update: p => {
      if (p.stage === last) return
      last = p.stage
      cli.err(`building: ${p.stage}: ${p.message}${p.stage === 'componentize' ? ' (this takes a while)' : ''}\n`)
    },
    stop: () => {}
  }
}

function renderInfo (info: AgentInfo, file: string): string {
  const m = info.manifest
  const lines = [
    `${file}: agent ${m.name} ${m.version}`,
    ...(m.description !== '' ? [`  ${m.description}`] : []),
    `digest       ${info.digest}`,
    `size         ${mib(info.size)}`,
    `permissions  ${m.permissions.length > 0 ? m.permissions.join(', ') : '(none)'}`,
    `limits       ${m.limits.timeoutMs} ms, ${m.limits.memoryMiB} MiB`,
    `exports      ${info.exports.join(', ')}`,
    'imports'
  ]
  if (info.imports.length === 0) lines.push('  (none)')
  else {
    lines.push(table(['  IMPORT', 'FUNCTIONS', 'NEEDS'], info.imports.map(i => [
      `  ${i.name}`, i.functions.join(', '), i.known ? i.permissions.join(', ') : 'never granted'
    ])))
  }
  return lines.join('\n')
}

/** Sandbox and API errors alike become one line: the code, then what to do. */
function runFailure (err: unknown, agentName: string): Error {
  const e = err as Error & { code?: string }
  const code = e instanceof ApiRequestError ? e.code : e.name
  if (code === 'AgentFailed') return new Error(`agent ${agentName} failed: ${e.message}`)
  return new Error(`${code}: ${e.message}`)
}

interface RunOptionsCli extends CommonOptions {
  code?: string
  input?: string
  inputFile?: string
  context?: string
  timeout?: string
  on?: string
  local?: boolean
  tool?: string
  param?: string[]
  tag?: string[]
  localOnly?: boolean
}

/** A placed run's failure as the sandbox would have thrown it: `Code: message`. */
function placedFailure (error: string): Error & { code?: string } {
  const match = /^([A-Za-z]+): ([\s\S]*)$/.exec(error)
  const err: Error & { code?: string } = new Error(match?.[2] ?? error)
  err.name = match?.[1] ?? 'AgentFailed'
  return err
}

async function runLocally (dataDir: string, bytes: Uint8Array, input: string, ctx: string, timeoutMs: number | undefined, onLog: (e: AgentLogEntry) => void): Promise<RunResult> {
  const [{ createMemoryContexts, createSandbox }, { agentsCacheDir }] = await Promise.all([import('../../sandbox/index.ts'), import('../agents.ts')])
  const sandbox = createSandbox({ cacheDir: agentsCacheDir(dataDir), warmWorkers: 1 }, { contexts: createMemoryContexts() })
  await sandbox.start()
  try {
    return await sandbox.run(bytes, { input, contextId: ctx, onLog, ...(timeoutMs !== undefined ? { timeoutMs } : {}) })
  } finally {
    await sandbox.stop()
  }
}

export function register (program: Command, cli: CliContext): void {
  const agent = program.command('agent')
    .description('make, inspect and publish agents: WebAssembly components for the hive:agent world')

  agent.command('build')
    .description('build a JS/TS agent (a file, or a directory with agent.ts/agent.js and manifest.json) into a component')
    .argument('<src>', 'source file or directory')
    .option('-o, --out <file>', 'where to write the component', 'agent.wasm')
    .option('--manifest <file>', 'manifest to embed (default: manifest.json beside the source)')
    .option('--json', 'print the result as JSON')
    .action(async (src: string, options: CommonOptions & { out: string, manifest?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { out: string, manifest?: string }>()
      const { buildAgent } = await import('../../sandbox/build.ts')
      const progress = await progressReporter(cli, all.json === true)
      let result
      try {
        result = await buildAgent(src, options.out, { onProgress: progress.update, ...(options.manifest !== undefined ? { manifestPath: options.manifest } : {}) })
      } finally {
        progress.stop()
      }
      cli.print(all, `built ${result.out}: agent ${result.manifest.name} ${result.manifest.version}, ${mib(result.size)}, digest ${result.digest} (${(result.durationMs / 1000).toFixed(1)} s)`, result)
    })

  agent.command('new')
    .description('write a ready-to-build example agent (agent.ts, manifest.json, types) into a directory')
    .argument('<dir>', 'directory to create or fill (must not hold those files yet)')
    .option('--name <name>', 'agent name (default: the directory name, or the example\'s)')
    .option('--example <example>', 'copy one of the example agents shipped with hive-node (echo, notes, summarize, word-count)')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, options: CommonOptions & { name?: string, example?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { agentExamples, newAgent } = await import('../../sandbox/build.ts')
      if (options.example !== undefined) {
        const examples = await agentExamples()
        if (!examples.includes(options.example)) throw new UsageError(`--example: there is no example agent "${options.example}"; the examples are ${examples.join(', ')}`)
      }
      const made = await newAgent(dir, { ...(options.name !== undefined ? { name: options.name } : {}), ...(options.example !== undefined ? { example: options.example } : {}) })
      const wasm = `${basename(made.dir)}.wasm`
      cli.print(all, () => [
        `wrote ${made.files.join(', ')}`,
        `next: hive-node agent build ${dir} -o ${wasm} && hive-node run ${wasm} --input "a few words"`
      ].join('\n'), made)
    })

  agent.command('inspect')
    .description("print an agent's manifest, digest and imports")
    .argument('<file>', 'agent component (.wasm)')
    .option('--json', 'print as JSON')
    .action(async (file: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { inspectAgent } = await import('../../sandbox/build.ts')
      const info = await inspectAgent(file)
      cli.print(all, () => renderInfo(info, file), info)
    })

  program.command('run')
    .description('run an agent in the hive and print its output: placed on the device that bids best (with no node running and a file: in this process); or run JavaScript with --code')
    .argument('[agent]', 'agent component (a .wasm file), or a published agent: NAME, NAME@VERSION or NAME@TAG')
    // the agent is what a run usually names; --code (in the options) runs without one
    .usage('[options] <agent>')
    .option('--code <source>', 'run this JavaScript as a code task instead of an agent; it prints with console.log (needs the running node)')
    .option('--input <text>', 'the input text')
    .option('--input-file <file>', 'read the input from a file ("-" for stdin)')
    .option('--tool <name>', "run one of the tools the agent's manifest declares; it receives {\"tool\",\"params\",\"input\"} as its input")
    .option('--param <key=value>', 'a parameter of the tool, checked against its schema before the run is placed (repeatable)', (v: string, p: string[] = []) => [...p, v])
    .option('--context <id>', 'context to run in (default: agent-<name>)')
    .option('--timeout <ms>', 'in the hive: how long to wait for the result; in this process: a tighter deadline than the manifest\'s')
    .option('--on <peer>', 'run it on this device only (PeerId or name, as hive-node peers lists them)')
    .option('--local', 'run it on this node only')
    .option('--tag <tag>', 'only on devices the hive\'s policy gives this tag (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .option('--local-only', 'the policy\'s per-task rule: it never leaves this device')
    .option('--json', 'print the result as JSON')
    .action(async (file: string | undefined, _options: RunOptionsCli, command: Command) => {
      const all = command.optsWithGlobals<RunOptionsCli>()
      if (all.code !== undefined) {
        if (file !== undefined || all.input !== undefined || all.inputFile !== undefined || all.context !== undefined || all.tool !== undefined) {
          throw new UsageError('--code runs JavaScript on its own: give no agent, --input, --input-file, --context or --tool with it')
        }
        const { runCode } = await import('./code.ts')
        await runCode(cli, all)
        return
      }
      if (file === undefined) throw new UsageError('give an agent component (.wasm) or a published agent NAME@VERSION to run, or --code SOURCE')
      const inputs = (all.input === undefined ? 0 : 1) + (all.inputFile === undefined ? 0 : 1)
      if (all.tool === undefined ? inputs !== 1 : inputs > 1) {
        throw new UsageError(all.tool === undefined ? 'give exactly one of --input TEXT or --input-file FILE' : 'give at most one of --input TEXT or --input-file FILE')
      }
      if (all.param !== undefined && all.tool === undefined) throw new UsageError('--param goes with --tool NAME: name the tool the parameters are for')
      if (all.on !== undefined && all.local === true) throw new UsageError('give at most one of --on PEER and --local')
      let timeoutMs: number | undefined
      if (all.timeout !== undefined) {
        timeoutMs = Number(all.timeout)
        if (!Number.isInteger(timeoutMs) || timeoutMs < 1) throw new UsageError(`--timeout takes a whole number of milliseconds, not "${all.timeout}"`)
      }
      let input = all.input ?? (all.inputFile === undefined ? '' : all.inputFile === '-' ? await text(process.stdin) : (await readUserFile(all.inputFile, 'the input file')).toString('utf8'))
      // a published agent by name, unless it names a .wasm file or a file of that name is here
      const byName = isAgentRefText(file) && !file.endsWith('.wasm') && !(await stat(file).then(() => true, () => false))
      const { findTool, inspectAgentBytes, paramsFromPairs, toolInput, validateToolParams } = await import('../../sandbox/index.ts')
      let bytes = new Uint8Array()
      let info: { digest: string, manifest: { name: string, permissions: readonly string[], tools?: Tool[] } }
      let ref: string | undefined
      if (byName) {
        let answer: { version?: { name: string, version: string, digest: string, manifest: { permissions: string[], tools?: Tool[] } } }
        try {
          answer = await cli.api(all).get(`/registry/${encodeURIComponent(file)}`)
        } catch (err) {
          if (err instanceof NodeNotRunningError) throw new NodeNotRunningError(cli.dataDir(all), `running ${file} by name needs the running node (or give the path of a .wasm file)`)
          throw runFailure(err, file)
        }
        if (answer.version == null) throw new Error(`AgentYanked: ${file} is yanked and no longer runs by name; "hive-node agent show ${file.split('@')[0] ?? file}" lists its versions`)
        const v = answer.version
        ref = `${v.name}@${v.version}`
        info = { digest: v.digest, manifest: { name: v.name, permissions: v.manifest.permissions, ...(v.manifest.tools !== undefined ? { tools: v.manifest.tools } : {}) } }
      } else {
        bytes = new Uint8Array(await readUserFile(file, 'an agent component (.wasm), as "hive-node agent build" writes it, or a published agent NAME@VERSION'))
        try {
          info = inspectAgentBytes(bytes)
        } catch (err) {
          throw runFailure(err, file)
        }
      }
      let tool: { name: string, params: Record<string, unknown> } | undefined
      if (all.tool !== undefined) {
        // checked here first: a wrong parameter is told at once, before anything is placed
        try {
          const declared = findTool(info.manifest.name, info.manifest.tools, all.tool)
          tool = { name: declared.name, params: validateToolParams(info.manifest.name, declared, paramsFromPairs(declared, all.param ?? [])) }
        } catch (err) {
          throw runFailure(err, file)
        }
      }
      const name = info.manifest.name
      let ctx = all.context ?? `agent-${name}`
      try {
        ctx = contextId(ctx)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }

      const logs: AgentLogLine[] = []
      // lines are printed as the agent logs them: through the node's event stream when placed
      // (a run on another device sends its lines with its result), directly when run here
      const printLine = (l: { level: string, message: string }): void => { cli.err(`[${name}] ${l.level}: ${l.message}\n`) }
      let result: { output: string, logs?: AgentLogLine[] } & Record<string, unknown>
      let where: 'node' | 'local' = 'node'
      const live = await liveLogs(cli, all, printLine)
      try {
        const task = await runPlaced(cli, all, {
          agent: bytes,
          digest: info.digest,
          input,
          ...(ref !== undefined ? { ref } : {}),
          ...(tool !== undefined ? { tool: tool.name, params: tool.params } : {}),
          contextId: ctx,
          ...(all.on !== undefined ? { on: all.on } : {}),
          ...(all.local === true ? { local: true } : {}),
          ...(all.tag != null ? { tags: all.tag } : {}),
          ...(all.localOnly === true ? { localOnly: true } : {}),
          ...(timeoutMs !== undefined ? { waitMs: timeoutMs } : {}),
          onSubmitted: (id) => { live.follow(id) }
        })
        logs.push(...(task.result?.logs ?? []))
        await live.finish(task.result?.logs ?? [])
        if (task.result == null) {
          throw Object.assign(new Error(task.error?.message ?? `task ${task.id} ${task.status} without a result`), { name: task.error?.code ?? 'TaskFailed' })
        }
        const names = await peerNames(cli, all)
        if (!task.result.ok) {
          const failure = placedFailure(task.result.error ?? '')
          failure.message += ` (task ${task.id} on ${names(task.result.executor)}; "hive-node task ${task.id}" shows it)`
          throw failure
        }
        if (all.json !== true) cli.err(`ran on ${names(task.result.executor)}: task ${task.id} ("hive-node explain ${task.id}" says why)\n`)
        result = {
          output: task.result.output ?? '',
          digest: info.digest,
          agent: name,
          task: task.id,
          executor: task.result.executor,
          round: task.result.round,
          durationMs: task.result.durationMs,
          ...(task.result.ledger?.seq != null ? { ledgerSeq: task.result.ledger.seq } : {})
        }
      } catch (err) {
        if (err instanceof UsageError) throw err
        if (!(err instanceof NodeNotRunningError)) throw runFailure(err, name)
        if (all.on !== undefined || all.local === true) throw new NodeNotRunningError(cli.dataDir(all), 'placing a run needs the running node')
        where = 'local'
        if (tool !== undefined) input = toolInput(tool.name, tool.params, input)
        if (info.manifest.permissions.some(p => p.startsWith('context:'))) {
          cli.err(`note: no node is running with ${cli.dataDir(all)}; running here, in a temporary context that is not kept\n`)
        }
        try {
          result = await runLocally(cli.dataDir(all), bytes, input, ctx, timeoutMs, e => {
            const line = { level: e.level, message: e.message }
            logs.push(line)
            printLine(line)
          }) as unknown as typeof result
        } catch (e) {
          throw runFailure(e, name)
        }
      } finally {
        live.close()
      }
      const { logs: _logs, ...rest } = result
      cli.print(all, result.output, { ...rest, logs, where, contextId: ctx })
    })
}
