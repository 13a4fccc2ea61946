// `hive-node halt [--reason TEXT]` and `hive-node resume`: the hive's kill switch, and the halt
// line `status` and `tasks` print.

import { UsageError, formatTime } from '../cli-context.ts'
import type { HaltView } from '../api/control.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

/** The status line of the kill switch: only while the hive is halted. */
export function haltLines (halt: HaltView | undefined): string[] {
  if (halt === undefined || !halt.halted) return []
  const who = halt.byName != null ? `${halt.byName} (…${(halt.by ?? '').slice(-8)})` : halt.by ?? 'a member'
  return [
    `  HALTED     by ${who} at ${formatTime(halt.at ?? 0)}${halt.reason != null ? `: ${halt.reason}` : ''}`,
    '             nothing runs anywhere in the hive until a member runs "hive-node resume".'
  ]
}

export function register (program: Command, cli: CliContext): void {
  program.command('halt')
    .description('stop every agent on every device of the hive at once; nothing runs until "hive-node resume"')
    .option('--reason <text>', 'why, shown to every member (at most 500 characters)')
    .option('--json', 'print as JSON')
    .action(async (options: CommonOptions & { reason?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { reason?: string }>()
      if (options.reason !== undefined && options.reason.length > 500) throw new UsageError(`--reason is ${options.reason.length} characters; at most 500 are kept`)
      const { halt } = await cli.api(all).post<{ halt: HaltView }>('/halt', options.reason !== undefined ? { reason: options.reason } : {})
      cli.print(all, () => ['the hive is halted: every device stops its agents as it hears it, and refuses tasks and bids.', ...haltLines(halt)].join('\n'), { halt })
    })

  program.command('resume')
    .description('lift a halt: the hive runs tasks again')
    .option('--json', 'print as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { halt } = await cli.api(all).post<{ halt: HaltView }>('/resume')
      cli.print(all, 'the hive is resumed: tasks are placed and run again.', { halt })
    })
}
