// Scenario plumbing for the home-LAN test: named steps that stop the run at the first failure
// with a message naming the step, and feature guards that skip a step (saying which feature
// is missing) until the commands it needs exist in this build of `hive-node`.

import { it } from 'node:test'
import { BIN, run } from './harness.ts'
import type { TestContext } from 'node:test'

/** A feature the scenario needs, and how to tell whether this build has it. */
export interface Feature {
  /** Shown in the skip message: what is missing. */
  name: string
  /** CLI commands (with flags they must offer) whose `--help` must succeed. */
  commands: Array<{ args: string[], flags?: string[] }>
}

export const FEATURES = {
  pairing: { name: 'pairing (issue 6: hive-node pair --png / join)', commands: [{ args: ['pair'], flags: ['--png'] }, { args: ['join'] }] },
  placement: { name: 'placement (issue 7: hive-node run across the hive, task, explain)', commands: [{ args: ['run'] }, { args: ['task'] }, { args: ['explain'] }] },
  context: { name: 'contexts (issue 4: hive-node context)', commands: [{ args: ['context', 'get'] }, { args: ['context', 'append'] }, { args: ['context', 'set'] }] },
  ledger: { name: 'ledger (issue 3: hive-node verify, hive-node ledger)', commands: [{ args: ['verify'] }, { args: ['ledger'] }] }
} satisfies Record<string, Feature>

const helpCache = new Map<string, Promise<boolean>>()

/**
 * True when `hive-node ARGS --help` exits 0, prints that command's own usage (for an unknown
 * command the CLI prints the program's usage instead, also with exit 0) and mentions every flag
 * asked for.
 */
async function offers (args: string[], flags: string[] = []): Promise<boolean> {
  const key = [...args, '|', ...flags].join(' ')
  let answer = helpCache.get(key)
  if (answer == null) {
    answer = run(process.execPath, [BIN, ...args, '--help'], { timeoutMs: 60_000 })
      .then(result => result.code === 0 &&
        result.stdout.startsWith(`Usage: hive-node ${args.join(' ')} `) &&
        flags.every(flag => result.stdout.includes(flag)))
    helpCache.set(key, answer)
  }
  return answer
}

/** The features of `needs` this build lacks. */
export async function missing (needs: Feature[]): Promise<Feature[]> {
  const lacking: Feature[] = []
  for (const feature of needs) {
    const present = await Promise.all(feature.commands.map(async c => offers(c.args, c.flags)))
    if (present.includes(false)) lacking.push(feature)
  }
  return lacking
}

export class StepFailed extends Error {
  override name = 'StepFailed'
}

let running: TestContext | undefined

/** The step running now, for diagnostics from helpers. */
export function currentStep (): TestContext | undefined {
  return running
}

export interface StepOptions {
  needs?: Feature[]
  timeoutMs: number
}

/**
 * A scenario: steps run in order; after a failure the remaining steps are skipped (they build
 * on the state the failed one should have made) and the failure names its step.
 */
export function scenario (onFailure: (step: string, err: unknown) => Promise<void> | void): (id: string, title: string, options: StepOptions, body: (t: TestContext) => Promise<void>) => void {
  let failed: string | undefined
  return (id, title, options, body) => {
    const label = `step (${id}) "${title}"`
    it(`(${id}) ${title}`, { timeout: options.timeoutMs }, async (t) => {
      if (failed != null) {
        t.skip(`not run: ${failed} failed`)
        return
      }
      const lacking = await missing(options.needs ?? [])
      if (lacking.length > 0) {
        t.skip(`waiting for ${lacking.map(f => f.name).join(' and ')}: not in this build yet`)
        return
      }
      running = t
      try {
        await body(t)
      } catch (err) {
        failed = label
        await onFailure(label, err)
        throw new StepFailed(`${label} failed: ${(err as Error).message ?? String(err)}`, { cause: err })
      } finally {
        running = undefined
      }
    })
  }
}
