// Kill-switch benchmark on a 3-node loopback hive in one process: from `halt` on one device to
// the moment each other device's endless agent has stopped (its `run-end`, after the worker is
// terminated and the run recorded `cancelled` in its ledger), over 20 halts, against the 1 s
// goal. Baseline, in the same run: cancelling a task whose endless agent runs on the submitting
// device itself (the same stop path: abort, worker terminated, ledger record, no network).

import { ENDLESS_LOOP, watAgent } from '../sandbox/fixtures.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import { percentile } from './table.ts'
import type { BenchResult } from './table.ts'
import type { PlacementEvents } from '../../protocol/placement/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'

const HALTS = 20

async function runEvent<K extends 'run-start' | 'run-end'> (node: HiveNode, type: K, task: string): Promise<PlacementEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${type} for ${task} on ${node.name}`)) }, 60_000)
    const off = node.placement.on(type, (detail) => {
      if ((detail as { task: string }).task !== task) return
      clearTimeout(timer)
      off()
      resolve(detail)
    })
  })
}

async function halted (nodes: HiveNode[], value: boolean): Promise<void> {
  await Promise.all(nodes.map(async n => {
    if (n.control.state().halted === value) return
    await new Promise<void>(resolve => {
      const off = n.control.on('change', (s) => { if (s.halted === value) { off(); resolve() } })
    })
  }))
}

export async function run (): Promise<BenchResult> {
  const hive = await startHive(3)
  try {
    const [a, b, c] = hive.nodes as [HiveNode, HiveNode, HiveNode]
    const agent = await watAgent(ENDLESS_LOOP, { name: 'bench-endless', limits: { timeoutMs: 600_000, memoryMiB: 1 } })

    const local: number[] = []
    for (let i = 0; i < HALTS; i++) {
      const task = await a.placement.submit({ agent, input: `local ${i}`, requirements: { peer: a.peerId.toString() } })
      await runEvent(a, 'run-start', task.id)
      const ended = runEvent(a, 'run-end', task.id)
      const t0 = performance.now()
      await a.placement.cancel(task.id)
      await ended
      local.push(performance.now() - t0)
    }

    const remote: number[] = []
    for (let i = 0; i < HALTS; i++) {
      const tasks = await Promise.all([b, c].map(async (n) => {
        const task = await a.placement.submit({ agent, input: `remote ${i}`, requirements: { peer: n.peerId.toString() } })
        await runEvent(n, 'run-start', task.id)
        return { node: n, task: task.id }
      }))
      const ended = tasks.map(async ({ node, task }) => { await runEvent(node, 'run-end', task); return performance.now() })
      const t0 = performance.now()
      await a.control.halt(`bench ${i}`)
      for (const at of await Promise.all(ended)) remote.push(at - t0)
      await halted(hive.nodes, true)
      await a.control.resume()
      await halted(hive.nodes, false)
    }

    return {
      title: `Kill switch: 3-node loopback hive in one process, endless agents, ${HALTS} halts (${remote.length} remote runs stopped)`,
      rows: [
        { metric: 'halt→run stopped p50, other device', value: percentile(remote, 50), unit: 'ms', baseline: { label: 'local cancel→stopped p50', value: percentile(local, 50) }, note: 'goal < 1000 ms' },
        { metric: 'halt→run stopped p99, other device', value: percentile(remote, 99), unit: 'ms', baseline: { label: 'local cancel→stopped p99', value: percentile(local, 99) }, note: 'goal < 1000 ms' },
        { metric: 'halt→run stopped max, other device', value: Math.max(...remote), unit: 'ms' }
      ]
    }
  } finally {
    await hive.stop()
  }
}
