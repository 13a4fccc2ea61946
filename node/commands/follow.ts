// What the commands that follow a task or a workflow share (tasks.ts, flow.ts, code.ts): waiting
// for its end through the API's long poll, `explain ID`, `--limit` of a listing, and how long
// ago something started. Not a command group itself: cli.ts does not register it.

import { UsageError } from '../cli-context.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

/** Longest one long poll asks the node to hold a request (`?waitMs=`); the API holds one 60 s at most. */
export const LONG_POLL_MS = 30_000

export interface WaitOptions<T> {
  /** How long to wait in all (default: until it ends). */
  waitMs?: number
  /** The error once `waitMs` has passed and it has not ended. */
  timedOut?: (last: T) => Error
}

/**
 * Asks again until `ended(value)`: `ask(waitMs)` is one long poll of the node, which answers as
 * soon as the value changes or after `waitMs`. No poll runs past the deadline, and none asks
 * for less than 1 ms (0 would ask the node not to wait at all, and the loop would spin).
 */
export async function waitUntilEnded<T> (first: T, ask: (waitMs: number) => Promise<T>, ended: (value: T) => boolean, options: WaitOptions<T> = {}): Promise<T> {
  const deadline = Date.now() + (options.waitMs ?? Infinity)
  let value = first
  while (!ended(value)) {
    const left = deadline - Date.now()
    if (left <= 0) throw options.timedOut?.(value) ?? new Error(`still not ended after ${options.waitMs ?? 0} ms`)
    value = await ask(Math.min(LONG_POLL_MS, Math.max(1, Math.round(left))))
  }
  return value
}

/** `explain ID` under `parent`: the node's explanation of one task or workflow, as text or with --json as data. */
export function registerExplain (parent: Command, cli: CliContext, explain: { description: string, argument: string, path: (id: string) => string }): void {
  parent.command('explain')
    .description(explain.description)
    .argument('<id>', explain.argument)
    .option('--json', 'print as JSON')
    .action(async (id: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const answer = await cli.api(all).get<{ explanation: unknown, text: string }>(explain.path(id))
      cli.print(all, answer.text, { explanation: answer.explanation })
    })
}

/** A listing's `--limit`: a positive whole number, 20 when it is not given. */
export function parseLimit (text: string | undefined): number {
  const limit = text !== undefined ? Number(text) : 20
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError(`--limit takes a positive whole number, not "${text ?? ''}"`)
  return limit
}

/** How long ago `ms` was, in its largest unit: `12s ago`, `5m ago`, `3h ago`. */
export function ago (ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`
}
