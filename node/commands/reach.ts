// `hive-node doctor`: why a member cannot be reached (or only through a relay), and what to do.

import type { ReachReport } from '../reach.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

const VIA: Record<string, string> = { lan: 'on this network', direct: 'directly, across networks', relayed: 'through a relay' }

function describe (report: ReachReport, nameOf: (peer: string) => string): string {
  const lines: string[] = []
  lines.push(report.relay ? 'this device relays for its hive\'s members (--relay)' : 'this device does not relay (start it with --relay where the others can reach it)')
  lines.push(report.reservedOn.length > 0
    ? `reachable through the relay${report.reservedOn.length === 1 ? '' : 's'} ${report.reservedOn.map(nameOf).join(', ')}`
    : 'holds no reservation on a relay')
  if (report.outside.length > 0) lines.push(`seen from outside at ${report.outside.join(', ')}`)
  if (report.problem != null) lines.push(`  problem: ${report.problem}`, `  what to do: ${report.advice ?? ''}`)
  if (report.members.length === 0) lines.push('no other member yet: pair a device with "hive-node pair"')
  for (const m of report.members) {
    const name = nameOf(m.peerId)
    const via = m.via === 'mesh' ? 'reached through the mesh (not a neighbour of this device)' : m.via != null ? `connected ${VIA[m.via] ?? m.via}${m.relay != null ? ` (${nameOf(m.relay)})` : ''}` : 'NOT connected'
    lines.push(`${name}: ${via}; ${m.direct.length} direct and ${m.relayed.length} relayed address${m.relayed.length === 1 ? '' : 'es'} known`)
    if (m.problem != null) lines.push(`  problem: ${m.problem}`, `  what to do: ${m.advice ?? ''}`)
  }
  return lines.join('\n')
}

export function register (program: Command, cli: CliContext): void {
  program.command('doctor')
    .description('explain how each member is reached (on this network, directly, through a relay) and why one is not, with what to do')
    .option('--json', 'print as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const report = await cli.api(all).get<ReachReport>('/reach')
      const names = new Map(report.members.filter(m => m.name != null).map(m => [m.peerId, m.name!]))
      const nameOf = (peer: string): string => names.get(peer) ?? `…${peer.slice(-8)}`
      cli.print(all, () => describe(report, nameOf), report)
    })
}
