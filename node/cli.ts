// The `hive-node` command line. Each command group lives in node/commands/<area>.ts and
// registers itself here. Exit codes: 0 done, 1 failed (including "no node running"), 2 usage.

import { Command, CommanderError } from 'commander'
import { ApiRequestError, UsageError, createCliContext } from './cli-context.ts'
import { InvalidConfigError, NodeAlreadyRunningError, NodeNotReadyError, NodeNotRunningError } from './errors.ts'
import { VERSION } from './version.ts'
import * as core from './commands/core.ts'
import * as pairing from './commands/pairing.ts'
import * as context from './commands/context.ts'
import * as agent from './commands/agent.ts'
import * as ledger from './commands/ledger.ts'
import * as tasks from './commands/tasks.ts'
import * as service from './commands/service.ts'
import * as llm from './commands/llm.ts'
import * as dashboard from './commands/dashboard.ts'
import * as events from './commands/events.ts'
import * as control from './commands/control.ts'
import * as registry from './commands/registry.ts'
import * as policy from './commands/policy.ts'
import * as flow from './commands/flow.ts'
import * as reach from './commands/reach.ts'
import * as simulate from './commands/simulate.ts'
import type { CliIo } from './cli-context.ts'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

function fullName (command: Command): string {
  const names: string[] = []
  for (let c: Command | null = command; c != null; c = c.parent) names.unshift(c.name())
  return names.join(' ')
}

function eachCommand (command: Command, visit: (c: Command) => void): void {
  visit(command)
  for (const sub of command.commands) eachCommand(sub, visit)
}

export function buildProgram (io: CliIo): Command {
  const cli = createCliContext(io)
  const program = new Command('hive-node')
    .description('a peer-to-peer mesh of your own devices that places, sandboxes and audits agent tasks')
    .version(VERSION)
    .option('--data <dir>', 'data directory (default: $HIVE_DATA, else ~/.local/share/hive-node)')
    .exitOverride()
    .configureOutput({
      writeOut: io.out,
      writeErr: io.err
    })

  // ---- command groups ----
  core.register(program, cli)
  pairing.register(program, cli)
  context.register(program, cli)
  agent.register(program, cli)
  ledger.register(program, cli)
  tasks.register(program, cli)
  service.register(program, cli)
  llm.register(program, cli)
  dashboard.register(program, cli)
  events.register(program, cli)
  control.register(program, cli)
  registry.register(program, cli)
  policy.register(program, cli)
  flow.register(program, cli)
  reach.register(program, cli)
  simulate.register(program, cli)

  eachCommand(program, (command) => {
    command.showHelpAfterError(usageLine(command))
  })
  // The command whose action runs, so a usage error found by the action prints its usage too.
  program.hook('preAction', (_program, action) => { running.set(program, action) })
  return program
}

const running = new WeakMap<Command, Command>()

function usageLine (command: Command): string {
  return `Usage: ${fullName(command)} ${command.usage()}  (see ${fullName(command)} --help)`
}

/** Runs the CLI and resolves to the process exit code. */
export async function main (argv: string[], io: CliIo = {
  out: (t) => { process.stdout.write(t) },
  err: (t) => { process.stderr.write(t) },
  env: process.env,
  tty: process.stdout.isTTY
}): Promise<number> {
  const program = buildProgram(io)
  if (argv.length === 0) {
    program.outputHelp({ error: true })
    return EXIT_USAGE
  }
  try {
    await program.parseAsync(argv, { from: 'user' })
    return EXIT_OK
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT_OK
      return EXIT_USAGE
    }
    if (err instanceof UsageError || err instanceof InvalidConfigError) {
      io.err(`error: ${err.message}\n`)
      const command = running.get(program)
      if (command !== undefined) io.err(`${usageLine(command)}\n`)
      return EXIT_USAGE
    }
    if (err instanceof NodeNotRunningError || err instanceof NodeNotReadyError || err instanceof NodeAlreadyRunningError || err instanceof ApiRequestError) {
      io.err(`error: ${err.message}\n`)
      return EXIT_FAILURE
    }
    const error = err as Error
    io.err(`error: ${error.message ?? String(err)}\n`)
    if (io.env.HIVE_DEBUG != null) io.err(`${error.stack ?? ''}\n`)
    return EXIT_FAILURE
  }
}
