// `hive-node policy show|set` and `hive-node budget show|set`: the hive's policy (rules per
// device) and its budgets (per agent and per context), signed entries replicated to every
// member. `budget` with no sub-command keeps showing and setting the cloud spend caps.

import { UsageError, formatTime, table } from '../cli-context.ts'
import type { BudgetsView, PolicyView } from '../api/policy.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

/** A whole number for a flag, or null for "none" (which removes the rule). */
function count (value: string | undefined, flag: string, min: number, max: number): number | null | undefined {
  if (value === undefined) return undefined
  if (value === 'none') return null
  const n = Number(value)
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${flag} takes a whole number from ${min} to ${max}, or "none" to remove it; not "${value}"`)
  return n
}

function who (view: { by?: string, byName?: string, at?: number }): string {
  if (view.by == null) return 'not set yet: every device takes any task it can run'
  return `set by ${view.byName ?? view.by} at ${formatTime(view.at ?? 0)}`
}

export function policyText (view: PolicyView): string {
  const rows = view.devices.map(d => [
    d.device === '*' ? '* (every device)' : d.name != null ? `${d.name} (…${d.device.slice(-8)})` : d.device,
    d.minBattery != null ? `${d.minBattery}%` : '-',
    d.quietHours != null ? `${d.quietHours.from}-${d.quietHours.to}` : '-',
    d.maxTasks != null ? String(d.maxTasks) : '-',
    d.tags != null && d.tags.length > 0 ? d.tags.join(',') : '-'
  ])
  return [`policy ${who(view)}`, ...(rows.length > 0 ? ['', table(['DEVICE', 'MIN BATTERY', 'QUIET HOURS (LOCAL)', 'MAX TASKS', 'TAGS'], rows)] : [])].join('\n')
}

export function budgetsText (view: BudgetsView): string {
  const limit = (n: number | undefined, used: number, unit = ''): string => n == null ? '-' : `${Number.isInteger(used) ? used : used.toFixed(1)}${unit} / ${n}${unit}`
  const rows = view.usage.map(u => [
    `${u.kind} ${u.key.length === 64 ? `${u.key.slice(0, 12)}…` : u.key}`,
    limit(u.limits.runs, u.runs),
    limit(u.limits.cpuSeconds, u.cpuSeconds, ' s'),
    limit(u.limits.tokens, u.tokens),
    u.limits.cloudMicroUsd != null ? `$${(u.limits.cloudMicroUsd / 1e6).toFixed(2)} (per call, "hive-node budget")` : '-'
  ])
  const resets = view.usage[0]?.resetsAt
  return [
    `budgets ${who(view.budgets)}`,
    ...(rows.length > 0 ? ['', table(['BUDGET', 'RUNS TODAY', 'CPU TODAY', 'TOKENS TODAY', 'CLOUD CAP'], rows)] : []),
    ...(resets != null ? ['', `counted from every member's ledger records of today (UTC); resets at ${formatTime(resets)}`] : [])
  ].join('\n')
}

export function register (program: Command, cli: CliContext): void {
  const policy = program.command('policy').description('the hive\'s policy: where tasks may run (rules per device, replicated to every member)')

  policy.command('show')
    .description('the policy in force: per device, the battery bound, quiet hours, most tasks at once and tags')
    .option('--json', 'print JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { policy: view } = await cli.api(all).get<{ policy: PolicyView }>('/policy')
      cli.print(all, () => policyText(view), { policy: view })
    })

  policy.command('set')
    .description('change one device\'s rules (or every device\'s with --device "*"); signed and sent to every member')
    .requiredOption('--device <device>', 'a member\'s name or PeerId, or * for every device without rules of its own')
    .option('--min-battery <percent>', 'never run on battery below this charge, 1-100 (0 or none removes it)')
    .option('--quiet-hours <HH:MM-HH:MM>', 'run nothing in these hours of the device\'s local time (none removes them)')
    .option('--max-tasks <n>', 'at most this many hive tasks at once on the device (none removes it)')
    .option('--tags <tags>', 'what the device is, comma-separated (trusted,gpu); none removes them')
    .option('--json', 'print JSON')
    .action(async (options: CommonOptions & { device: string, minBattery?: string, quietHours?: string, maxTasks?: string, tags?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const minBattery = options.minBattery === '0' ? null : count(options.minBattery, '--min-battery', 1, 100)
      const maxTasks = count(options.maxTasks, '--max-tasks', 1, 1024)
      const tags = options.tags === undefined ? undefined : options.tags === 'none' ? null : options.tags.split(',').map(t => t.trim()).filter(t => t !== '')
      if (minBattery === undefined && maxTasks === undefined && tags === undefined && options.quietHours === undefined) {
        throw new UsageError('give at least one of --min-battery, --quiet-hours, --max-tasks or --tags')
      }
      const { policy: view } = await cli.api(all).post<{ policy: PolicyView }>('/policy', {
        device: options.device,
        ...(minBattery !== undefined ? { minBattery } : {}),
        ...(options.quietHours !== undefined ? { quietHours: options.quietHours } : {}),
        ...(maxTasks !== undefined ? { maxTasks } : {}),
        ...(tags !== undefined ? { tags } : {})
      })
      cli.print(all, () => policyText(view), { policy: view })
    })

  // `budget` itself (the cloud caps) is registered with the LLM commands
  const budget = program.commands.find(c => c.name() === 'budget') ?? program.command('budget')
  budget.command('show')
    .description('per agent and per context: runs, CPU-seconds and tokens per day, what was used today, when it resets')
    .option('--json', 'print JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const view = await cli.api(all).get<BudgetsView>('/budgets')
      cli.print(all, () => budgetsText(view), view)
    })

  budget.command('set')
    .description('set one agent\'s (by name or digest) or one context\'s daily limits; signed and sent to every member')
    .option('--agent <agent>', 'an agent\'s manifest name or 64-hex digest')
    .option('--context <id>', 'a context id')
    .option('--runs <n>', 'runs per UTC day (none removes it)')
    .option('--cpu-seconds <n>', 'CPU-seconds per UTC day (none removes it)')
    .option('--tokens <n>', 'LLM tokens per UTC day (none removes it)')
    .option('--cloud-usd <usd>', 'cloud spend per UTC day, for an agent by digest (0 or none removes it)', collect)
    .option('--json', 'print JSON')
    .action(async (options: CommonOptions & { agent?: string, context?: string, runs?: string, cpuSeconds?: string, tokens?: string, cloudUsd?: string[] }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      // `budget` itself takes --agent DIGEST=USD (the cloud caps), and commander gives it every --agent
      const agent = options.agent ?? command.parent?.opts<{ agent?: string[] }>().agent?.at(-1)
      if ((agent == null) === (options.context == null)) throw new UsageError('give exactly one of --agent NAME|DIGEST and --context ID')
      const runs = count(options.runs, '--runs', 1, 1_000_000)
      const cpuSeconds = count(options.cpuSeconds, '--cpu-seconds', 1, 86_400 * 1024)
      const tokens = count(options.tokens, '--tokens', 1, 1e12)
      const cloud = options.cloudUsd?.at(-1)
      let cloudUsd: number | null | undefined
      if (cloud !== undefined) {
        cloudUsd = cloud === 'none' ? null : Number(cloud)
        if (cloudUsd !== null && (!Number.isFinite(cloudUsd) || cloudUsd < 0 || cloudUsd > 1e6)) throw new UsageError(`--cloud-usd takes US dollars from 0 to 1000000, or "none"; not "${cloud}"`)
      }
      if (runs === undefined && cpuSeconds === undefined && tokens === undefined && cloudUsd === undefined) {
        throw new UsageError('give at least one of --runs, --cpu-seconds, --tokens or --cloud-usd')
      }
      const view = await cli.api(all).post<BudgetsView>('/budgets', {
        ...(agent != null ? { agent } : { context: options.context }),
        ...(runs !== undefined ? { runs } : {}),
        ...(cpuSeconds !== undefined ? { cpuSeconds } : {}),
        ...(tokens !== undefined ? { tokens } : {}),
        ...(cloudUsd !== undefined ? { cloudUsd } : {})
      })
      cli.print(all, () => budgetsText(view), view)
    })
}
