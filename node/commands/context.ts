// `hive-node context list|get|set|append|checkpoint`: agent contexts on the running node.

import { contextId, checkpointName } from '../../crdt/ids.ts'
import { UsageError, formatTime, table } from '../cli-context.ts'
import type { ContextInfo, ConversationEntry, PresenceEntry } from '../../crdt/index.ts'
import type { ContextDetail } from '../api/context.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

/** Checks an id before any network use; a bad one is a usage error (exit 2). */
function id (value: string): string {
  try {
    return contextId(value)
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
}

function path (contextIdValue: string, ...rest: string[]): string {
  return '/contexts/' + [contextIdValue, ...rest].map(encodeURIComponent).join('/')
}

const time = formatTime

function show (value: unknown): string {
  return typeof value === 'string' ? value : JSON.stringify(value)
}

function renderContext (c: Pick<ContextDetail, 'conversation' | 'state' | 'checkpoints'> & { id: string, created?: number, workingHere?: string[] }, heading: string): string {
  const lines = [heading]
  lines.push('conversation:')
  if (c.conversation.length === 0) lines.push('  (empty)')
  for (const e of c.conversation as ConversationEntry[]) lines.push(`  ${time(e.time)}  ${e.node}  ${e.role}: ${e.text}`)
  lines.push('state:')
  const keys = Object.keys(c.state).sort()
  if (keys.length === 0) lines.push('  (empty)')
  for (const key of keys) lines.push(`  ${key} = ${show(c.state[key])}`)
  if (c.checkpoints.length > 0) {
    lines.push('checkpoints:')
    for (const cp of c.checkpoints) lines.push(`  ${cp.name}  ${time(cp.time)}  ${cp.node}`)
  }
  if (c.workingHere != null && c.workingHere.length > 0) lines.push(`working in it now: ${c.workingHere.join(', ')}`)
  return lines.join('\n')
}

export function register (program: Command, cli: CliContext): void {
  const context = program.command('context')
    .description('agent contexts: conversation, state and checkpoints, replicated on every device')

  context.command('list')
    .description('list the contexts this node holds')
    .option('--json', 'print as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { contexts } = await cli.api(all).get<{ contexts: ContextInfo[] }>('/contexts')
      const { presence } = await cli.api(all).get<{ presence: PresenceEntry[] }>('/presence')
      cli.print(all, () => contexts.length === 0
        ? 'no contexts yet; write one with "hive-node context append ID TEXT"'
        : table(['ID', 'ENTRIES', 'KEYS', 'CHECKPOINTS', 'CREATED', 'WORKING'], contexts.map(c => [
          c.id, String(c.entries), String(c.keys), String(c.checkpoints), time(c.created),
          presence.filter(p => p.contexts.includes(c.id)).map(p => p.node).join(',')
        ])), { contexts, presence })
    })

  context.command('get')
    .description('print a context (or, with --at, the context as of a checkpoint)')
    .argument('<id>', 'context id')
    .option('--at <checkpoint>', 'read the context as it was at this checkpoint')
    .option('--json', 'print as JSON')
    .action(async (rawId: string, options: CommonOptions & { at?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { at?: string }>()
      const ctxId = id(rawId)
      if (options.at != null) {
        const at = await cli.api(all).get<ContextDetail & { checkpoint: string }>(path(ctxId, 'checkpoints', options.at))
        cli.print(all, () => renderContext(at, `context ${ctxId} as of checkpoint "${options.at ?? ''}"`), at)
        return
      }
      const ctx = await cli.api(all).get<ContextDetail>(path(ctxId))
      cli.print(all, () => renderContext(ctx, `context ${ctx.id} (created ${time(ctx.created)})`), ctx)
    })

  context.command('set')
    .description('set a key of a context\'s state (the value is stored as the text given)')
    .argument('<id>', 'context id (created if new)')
    .argument('<key>', 'state key')
    .argument('<value>', 'value')
    .option('--json', 'print the result as JSON')
    .action(async (rawId: string, key: string, value: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const result = await cli.api(all).post<{ id: string, key: string, value: unknown }>(path(id(rawId), 'state'), { key, value })
      cli.print(all, `${result.id}: ${result.key} = ${show(result.value)}`, result)
    })

  context.command('append')
    .description('append text to a context\'s conversation')
    .argument('<id>', 'context id (created if new)')
    .argument('<text>', 'text to append')
    .option('--role <role>', 'who speaks (user, assistant, tool, …)', 'user')
    .option('--json', 'print the result as JSON')
    .action(async (rawId: string, text: string, options: CommonOptions & { role: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const result = await cli.api(all).post<{ id: string, entries: number }>(path(id(rawId), 'conversation'), { text, role: options.role })
      cli.print(all, `${result.id}: appended (${result.entries} entries)`, result)
    })

  context.command('checkpoint')
    .description('name the current state of a context, to read it back later with "get --at"')
    .argument('<id>', 'context id')
    .argument('<name>', 'checkpoint name')
    .option('--json', 'print the result as JSON')
    .action(async (rawId: string, name: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      try {
        checkpointName(name)
      } catch (err) {
        throw new UsageError((err as Error).message)
      }
      const result = await cli.api(all).post<{ id: string, name: string, time: number, node: string }>(path(id(rawId), 'checkpoints'), { name })
      cli.print(all, `${result.id}: checkpoint "${result.name}" at ${time(result.time)}`, result)
    })
}
