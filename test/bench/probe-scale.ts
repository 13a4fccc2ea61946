import { startVirtualHive } from '../../node/simulate/virtual-hive.ts'
import { parseDeviceSpec } from '../../node/simulate/devices.ts'
import { waitFor } from '../helpers/wait.ts'

const count = Number(process.argv[2] ?? 20)
const t0 = performance.now()
const rss0 = process.memoryUsage().rss
const capMs = Number(process.env.CAP_MS ?? 3000)
const hive = await startVirtualHive({ profiles: parseDeviceSpec(`${count}xlaptop`), init: () => ({ capabilities: { intervalMs: capMs, expireMs: capMs * 20 } }), logLevel: (process.env.LOGL ?? 'error') as 'warn', logSink: (l) => { process.stderr.write(l + '\n') } })
console.log('opened+started', Math.round(performance.now() - t0))
const nodes = hive.live()
try {
  const t1 = performance.now()
  console.log('started', Math.round(t1 - t0), 'ms', 'rss MiB', Math.round((process.memoryUsage().rss - rss0) / 2 ** 20))
  const iv = setInterval(() => { { const c = nodes.map(n => new Set(n.libp2p.getConnections().map(c => c.remotePeer.toString())).size); const v = nodes.map(n => n.capabilities.view().length); console.log(Math.round(performance.now() - t1), 'conns min', Math.min(...c), 'sum', c.reduce((a, b) => a + b, 0), 'views min', Math.min(...v), 'sum', v.reduce((a, b) => a + b, 0)) } }, 5000)
  await waitFor(() => nodes.every(n => new Set(n.libp2p.getConnections().map(c => c.remotePeer.toString())).size >= count - 1), { timeoutMs: 300_000, intervalMs: 500 })
  const t3 = performance.now()
  console.log('full mesh', Math.round(t3 - t1))
  await waitFor(() => nodes.every(n => n.capabilities.view().length === count), { timeoutMs: 300_000, intervalMs: 500 }).finally(() => clearInterval(iv))
  const t4 = performance.now()
  console.log('caps', Math.round(t4 - t1), 'rss MiB', Math.round((process.memoryUsage().rss - rss0) / 2 ** 20))
  let lagMax = 0
  for (let i = 0; i < 20; i++) { const a = performance.now(); await new Promise(r => setTimeout(r, 100)); lagMax = Math.max(lagMax, performance.now() - a - 100) }
  console.log('lag max', Math.round(lagMax), 'rss MiB', Math.round((process.memoryUsage().rss - rss0) / 2 ** 20), 'load', (await import('node:os')).loadavg()[0], 'cpu', process.cpuUsage())
} finally {
  const ts = performance.now()
  await hive.stop()
  console.log('stop', Math.round(performance.now() - ts))
}
