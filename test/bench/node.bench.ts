// Foundation benchmark: start→ready time of `hive-node start`, idle RSS of one node, and RSS of a
// 20-node mesh in one process per node. Baseline: a bare Node process in the same run.

import { spawn } from 'node:child_process'
import { readFile, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching } from '../helpers/wait.ts'
import { median } from './table.ts'
import type { BenchResult } from './table.ts'

const RUNS = 5

async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  return kb * 1024
}

const settle = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

async function bareNode (): Promise<{ ms: number, rss: number, exitMs: number }> {
  const t0 = performance.now()
  const child = spawn(process.execPath, ['-e', 'process.stdout.write("ready\\n"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await lineMatching(child.stdout, l => l === 'ready')
  const ms = performance.now() - t0
  await settle(1_000)
  const rss = await rssOf(child.pid!)
  child.kill()
  // a process that starts and exits: the floor under any CLI command
  const t1 = performance.now()
  await exited(spawn(process.execPath, ['-e', ''], { stdio: ['pipe', 'pipe', 'pipe'] }))
  return { ms, rss, exitMs: performance.now() - t1 }
}

async function hiveNode (): Promise<{ ms: number, rss: number, cliMs: number }> {
  const dir = await makeTempDir('hive-bench-')
  try {
    // first start makes the identity; time the steady-state start, as a device restarts
    const t0 = performance.now()
    const child = spawnCli(['--data', dir, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json'])
    const done = exited(child)
    await lineMatching(child.stdout, l => l.startsWith('{'))
    const ms = performance.now() - t0
    await settle(1_000)
    const rss = await rssOf(child.pid!)
    // a CLI command against the running node, as a person or a script runs one
    const t1 = performance.now()
    const peers = await runCli(['--data', dir, 'peers', '--json'])
    const cliMs = performance.now() - t1
    if (peers.code !== 0) throw new Error(`hive-node peers failed: ${peers.stderr}`)
    child.kill('SIGTERM')
    await done
    return { ms, rss, cliMs }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

export async function run (): Promise<BenchResult> {
  const bare: Array<{ ms: number, rss: number, exitMs: number }> = []
  const hive: Array<{ ms: number, rss: number, cliMs: number }> = []
  for (let i = 0; i < RUNS; i++) {
    bare.push(await bareNode())
    hive.push(await hiveNode())
  }
  const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(new URL('mesh-rss.ts', import.meta.url)), '20'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const line = await lineMatching(child.stdout, l => l.startsWith('{'), { timeoutMs: 180_000 })
  const mesh = JSON.parse(line) as { count: number, before: number, after: number }
  const MiB = 1024 * 1024
  const bareRss = median(bare.map(b => b.rss)) / MiB
  return {
    title: `node: start and memory (median of ${RUNS})`,
    rows: [
      { metric: 'start → ready (hive-node start)', value: median(hive.map(h => h.ms)), unit: 'ms', baseline: { label: 'bare node start', value: median(bare.map(b => b.ms)) } },
      { metric: 'a CLI command (hive-node peers --json)', value: median(hive.map(h => h.cliMs)), unit: 'ms', baseline: { label: 'node -e "" to exit', value: median(bare.map(b => b.exitMs)) } },
      { metric: 'idle RSS, one node', value: median(hive.map(h => h.rss)) / MiB, unit: 'MiB', baseline: { label: 'bare node', value: bareRss } },
      { metric: 'RSS per node, 20-node mesh in one process', value: (mesh.after - mesh.before) / mesh.count / MiB, unit: 'MiB', note: `${((mesh.after - mesh.before) / MiB).toFixed(0)} MiB for ${mesh.count}` }
    ]
  }
}
