// Child process of node.bench.ts: starts N nodes in this one process and prints the RSS they
// added, so the figure is not mixed with the benchmark runner's own memory.

import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'

const count = Number(process.argv[2] ?? 20)
globalThis.gc?.()
const before = process.memoryUsage().rss
const mesh = await startMesh(count, { connect: 'star', label: 'rss' })
try {
  await waitFor(() => mesh.nodes.every(n => n.libp2p.getConnections().length > 0), { timeoutMs: 60_000 })
  // let start-up allocations settle before reading
  await new Promise(resolve => setTimeout(resolve, 2_000))
  globalThis.gc?.()
  const after = process.memoryUsage().rss
  process.stdout.write(JSON.stringify({ count, before, after }) + '\n')
} finally {
  await mesh.stop()
}
