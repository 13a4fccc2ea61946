// What the sandbox adds to an agent's model call, with a port that answers at once (so the
// figure is the bridge alone, not a model): the agent's call is lifted by jco's glue, posted to
// the main thread, checked against the bounds and grants, handed to the port, and its answer
// checked and lowered back while the agent waits on an Atomics cell.
//   per call     (a run making 101 calls − a run making 1) / 100, warm
//   baseline     a warm run of the tiny echo agent on the same sandbox: one message each way
//
// `npm run bench -- sandbox-llm`, or `node test/bench/sandbox-llm.bench.ts` for this one alone.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSandbox } from '../../sandbox/index.ts'
import { ECHO, llmChatWat, watAgent } from '../sandbox/fixtures.ts'
import { median, printTable } from './table.ts'
import type { BenchResult } from './table.ts'
import type { LoadedAgent, Sandbox } from '../../sandbox/index.ts'

const RUNS = 300

async function warmMedian (sandbox: Sandbox, agent: LoadedAgent, input: string): Promise<number> {
  for (let i = 0; i < 20; i++) await sandbox.run(agent, { input })
  const samples: number[] = []
  for (let i = 0; i < RUNS; i++) {
    await sandbox.settled()
    const t = performance.now()
    await sandbox.run(agent, { input })
    samples.push(performance.now() - t)
  }
  return median(samples)
}

export async function run (): Promise<BenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'hive-bench-sandbox-llm-'))
  const sandbox = createSandbox({ cacheDir: dir, warmWorkers: 1, maxConcurrentRuns: 1 }, {
    llm: {
      chat: async request => ({ text: 'ok', model: request.models[0] ?? 'tiny', tokensIn: 3, tokensOut: 1, finish: 'stop', route: { kind: 'local' } }),
      embed: async (model, texts) => ({ model, vectors: texts.map(() => [0]), tokensIn: 1, route: { kind: 'local' } })
    }
  })
  await sandbox.start()
  try {
    const echo = await sandbox.load(await watAgent(ECHO))
    const one = await sandbox.load(await watAgent(llmChatWat(), { permissions: ['llm'] }))
    const many = await sandbox.load(await watAgent(llmChatWat({ calls: 101 }), { permissions: ['llm'] }))
    const input = 'summarise the hive in one line'
    const echoMs = await warmMedian(sandbox, echo, input)
    const oneMs = await warmMedian(sandbox, one, input)
    const manyMs = await warmMedian(sandbox, many, input)
    const perCall = (manyMs - oneMs) / 100
    return {
      title: 'sandbox: an agent\'s model call through the host bridge (instant port)',
      rows: [
        { metric: 'warm run, echo (no host call)', value: echoMs, unit: 'ms', note: `median of ${RUNS}` },
        { metric: 'warm run, one chat call', value: oneMs, unit: 'ms', baseline: { label: 'echo', value: echoMs }, note: `median of ${RUNS}` },
        { metric: 'warm run, 101 chat calls', value: manyMs, unit: 'ms', baseline: { label: 'echo', value: echoMs }, note: `median of ${RUNS}` },
        { metric: 'per chat call through the bridge', value: perCall, unit: 'ms', baseline: { label: 'echo run', value: echoMs }, note: '(101 calls − 1 call) / 100' }
      ]
    }
  } finally {
    await sandbox.stop()
    await rm(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printTable(await run())
