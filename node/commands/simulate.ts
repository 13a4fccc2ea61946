// `hive-node simulate --devices SPEC --workload FILE [--seed N] [--json]`: a virtual hive of real
// nodes in this one process (node/simulate), a workload run on it, and the report.

import { existsSync } from 'node:fs'
import { UsageError, readUserFile } from '../cli-context.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

interface SimulateOptions extends CommonOptions {
  devices: string
  workload: string
  seed?: string
  logLevel?: string
}

export function register (program: Command, cli: CliContext): void {
  program.command('simulate')
    .description('try a workload on a virtual hive of real nodes in this process, and report where each task ran and why')
    .requiredOption('--devices <spec|file.json>', 'devices, e.g. 3xlaptop:battery,2xdesktop,1xserver:gpu, or a JSON file of them')
    .requiredOption('--workload <file.json>', 'tasks with arrival rates, and faults (see docs/simulate/example.json)')
    .option('--seed <n>', 'seed of the schedule: the same seed gives the same arrivals and faults', '1')
    .option('--log-level <level>', 'the nodes\' log lines on stderr: debug, info, warn, error, silent', 'silent')
    .option('--json', 'print the report as JSON')
    .action(async (_options: SimulateOptions, command: Command) => {
      const all = command.optsWithGlobals<SimulateOptions>()
      const seed = Number(all.seed ?? '1')
      if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed ${all.seed ?? ''} is not a whole number from 0`)
      const level = all.logLevel ?? 'silent'
      if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level)) throw new UsageError(`--log-level ${level} is not one of debug, info, warn, error, silent`)
      // loaded here: only this command carries the nodes and jco's tools
      const { parseDeviceFile, parseDeviceSpec } = await import('../simulate/devices.ts')
      const { parseWorkload, schedule } = await import('../simulate/workload.ts')
      const profiles = all.devices.endsWith('.json') || existsSync(all.devices)
        ? parseDeviceFile((await readUserFile(all.devices, 'a JSON list of devices')).toString('utf8'), all.devices)
        : parseDeviceSpec(all.devices)
      const names = profiles.map(p => p.name)
      const workload = parseWorkload((await readUserFile(all.workload, 'a workload (JSON)')).toString('utf8'), all.workload, names)
      const events = schedule(workload, names, seed)
      const { simulate } = await import('../simulate/index.ts')
      const report = await simulate({ profiles, workload, events, seed, logLevel: level as 'silent' })
      const { formatReport } = await import('../simulate/runner.ts')
      cli.print(all, () => formatReport(report), { report })
    })
}
