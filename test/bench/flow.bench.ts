// Workflow overhead on a 3-node loopback hive in one process: a 1×10 fork-join (a fork of ten
// echo tasks, all at once, then a join task reading their outputs) run by the workflow engine,
// against the same work submitted by hand from the same device in the same run: ten independent
// tasks at once, then the join as an eleventh. The difference is what the engine adds: its
// LevelDB writes before each task and after each result, templates, and its bookkeeping.

import { createHash } from 'node:crypto'
import { ECHO, watAgent } from '../sandbox/fixtures.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import { median } from './table.ts'
import type { BenchResult } from './table.ts'
import type { HiveNode } from '../../node/hive-node.ts'

const ROUNDS = 5
const WIDTH = 10

export async function run (): Promise<BenchResult> {
  const hive = await startHive(3)
  try {
    const node = hive.nodes[0] as HiveNode
    const agent = await watAgent(ECHO, { name: 'bench-flow-echo' })
    const digest = createHash('sha256').update(agent).digest('hex')
    const items = Array.from({ length: WIDTH }, (_, i) => `item ${i}`)
    const workflow = {
      version: 1,
      steps: [
        { name: 'each', agent: digest, fork: { over: JSON.stringify(items), concurrency: WIDTH }, input: '${{ item }}' },
        { name: 'join', agent: digest, input: '${{ steps.each.output }}' }
      ]
    }

    const byHand = async (): Promise<number> => {
      const t0 = performance.now()
      const tasks = await Promise.all(items.map(async input => node.placement.submit({ agent, input })))
      const views = await Promise.all(tasks.map(async t => node.placement.wait(t.id)))
      const join = await node.placement.submit({ agent, input: JSON.stringify(views.map(v => v.result?.output ?? '')) })
      const done = await node.placement.wait(join.id)
      if (done.status !== 'done') throw new Error(`the join task ended ${done.status}`)
      return performance.now() - t0
    }
    const independent = async (): Promise<number> => {
      const t0 = performance.now()
      const tasks = await Promise.all(items.map(async input => node.placement.submit({ agent, input })))
      await Promise.all(tasks.map(async t => node.placement.wait(t.id)))
      return performance.now() - t0
    }
    const flow = async (): Promise<number> => {
      const t0 = performance.now()
      const started = await node.flows.run({ workflow, agents: new Map([[digest, agent]]) })
      const ended = await node.flows.wait(started.id)
      if (ended.status !== 'done') throw new Error(`the workflow ended ${ended.status}: ${ended.error?.message ?? ''}`)
      return performance.now() - t0
    }

    // one of each first, unmeasured: agents fetched and compiled everywhere
    await byHand()
    await flow()
    const hand: number[] = []
    const ten: number[] = []
    const flows: number[] = []
    for (let i = 0; i < ROUNDS; i++) {
      // alternating order, so neither always runs on a machine the other just warmed
      if (i % 2 === 0) { flows.push(await flow()); hand.push(await byHand()) } else { hand.push(await byHand()); flows.push(await flow()) }
      ten.push(await independent())
    }
    const f = median(flows)
    const h = median(hand)
    return {
      title: `Workflows: 1×${WIDTH} fork-join on a 3-node loopback hive in one process, echo agent, median of ${ROUNDS} rounds`,
      rows: [
        { metric: `fork-join by the engine (${WIDTH} + 1 tasks)`, value: f, unit: 'ms', baseline: { label: `${WIDTH} independent tasks, then the join, by hand`, value: h } },
        { metric: `fork-join by the engine (${WIDTH} + 1 tasks)`, value: f, unit: 'ms', baseline: { label: `${WIDTH} independent tasks alone`, value: median(ten) } },
        { metric: 'engine overhead per workflow', value: f - h, unit: 'ms', note: 'engine − by hand (medians)' }
      ]
    }
  } finally {
    await hive.stop()
  }
}
