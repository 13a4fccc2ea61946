// Placement benchmark on a 5-node loopback hive in one process: submit-to-result latency of a
// trivial agent (p50, p99 over 100 tasks, one at a time, submitted from each node in turn) and
// tasks completed per second with 10 in flight. Baseline, in the same run: the same agent run
// directly in one node's sandbox, the same way (one at a time, then 10 in flight).
//
// All five nodes share this process's one JavaScript thread, so the background work of five
// devices (publishing the previous task's bids and award in the DHT, exchanging ledger records)
// competes with each task here; on five real devices it would not. Latency is therefore given
// twice: back to back, and with every node's DHT publication settled between tasks (untimed).

import { echoAgent, startHive } from '../protocol/placement/fixture.ts'
import { percentile, throughput, timed } from './table.ts'
import type { BenchResult } from './table.ts'

const TASKS = 100
const IN_FLIGHT = 10

export async function run (): Promise<BenchResult> {
  const hive = await startHive(5)
  try {
    const agent = await echoAgent('bench-echo')
    const nodes = hive.nodes
    const direct = async (i: number): Promise<void> => {
      const result = await nodes[0]!.sandbox.run(agent, { input: `direct ${i}` })
      if (result.output !== `direct ${i}`) throw new Error(`direct run ${i} answered ${result.output}`)
    }
    const placed = async (i: number): Promise<void> => {
      const submitter = nodes[i % nodes.length]!
      const task = await submitter.placement.submit({ agent, input: `placed ${i}` })
      const done = await submitter.placement.wait(task.id)
      if (done.result?.output !== `placed ${i}`) throw new Error(`task ${i} ended ${done.status}: ${JSON.stringify(done.error ?? done.result)}`)
    }
    // warm up: every node transpiles and loads the agent once
    for (let i = 0; i < nodes.length * 2; i++) await placed(i)
    await timed(10, direct)

    const settle = async (): Promise<void> => { await Promise.all(nodes.map(async n => { await n.placement.settled() })) }
    const directMs = await timed(TASKS, direct)
    const placedMs = await timed(TASKS, placed)
    const settledMs: number[] = []
    for (let i = 0; i < TASKS; i++) {
      await settle()
      settledMs.push(...await timed(1, async () => { await placed(TASKS + i) }))
    }
    const directRate = await throughput(TASKS, IN_FLIGHT, direct)
    const placedRate = await throughput(TASKS, IN_FLIGHT, placed)
    const base50 = percentile(directMs, 50)
    const base99 = percentile(directMs, 99)
    const settled50 = percentile(settledMs, 50)
    return {
      title: `Placement: ${nodes.length}-node loopback hive in one process, trivial agent, ${TASKS} tasks`,
      rows: [
        { metric: 'submit→result p50, back to back', value: percentile(placedMs, 50), unit: 'ms', baseline: { label: 'direct sandbox run p50', value: base50 } },
        { metric: 'submit→result p99, back to back', value: percentile(placedMs, 99), unit: 'ms', baseline: { label: 'direct sandbox run p99', value: base99 } },
        { metric: 'submit→result p50, DHT settled', value: settled50, unit: 'ms', baseline: { label: 'direct sandbox run p50', value: base50 } },
        { metric: 'submit→result p99, DHT settled', value: percentile(settledMs, 99), unit: 'ms', baseline: { label: 'direct sandbox run p99', value: base99 } },
        { metric: 'placement overhead p50, DHT settled', value: settled50 - base50, unit: 'ms', note: 'goal < 100 ms' },
        { metric: `tasks/s, ${IN_FLIGHT} in flight`, value: placedRate, unit: '/s', baseline: { label: 'direct runs/s', value: directRate } }
      ]
    }
  } finally {
    await hive.stop()
  }
}
