// `npm run bench -- relay`: the hive beyond one LAN, in network namespaces (test/lan/world.ts):
// host1 on the "public" segment relays (--relay), host2 and host3 on LAN 1, host4 on LAN 2, each
// LAN behind its own NAT. From host2, submit→result of a task pinned to another device, through
// host2's local API (POST /task, then GET /task/:id?waitMs), measured inside host2's namespace:
// - to host3, on the same LAN: the baseline;
// - to host4, through the relay (no NAT lets host2 in to host4);
// - to host4 again once LAN 2's router forwards the hive's port to host4 and the relayed link
//   has been upgraded to a direct one.
// One run, the same processes; the same-LAN figure is taken again at the end, to show drift.
// The namespaces add no latency of their own: what differs is the relay's hop and the streams
// it splices. Needs root and network namespaces, as the LAN tests do.

import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { waitFor } from '../helpers/wait.ts'
import { writeAgents } from '../lan/agents.ts'
import { lanUnavailable, run as runCommand } from '../lan/harness.ts'
import { createWorld } from '../lan/world.ts'
import { percentile } from './table.ts'
import type { BenchResult } from './table.ts'
import type { Host } from '../lan/harness.ts'
import type { World } from '../lan/world.ts'

const TASKS = 30
const WARMUP = 3

/** `node -e` script: submits argv[3] tasks pinned to argv[4] through the API of data dir argv[1], agent file argv[2]; prints the times in ms. */
const SUBMITTER = `
import { readFile } from 'node:fs/promises'
const [dataDir, agentFile, count, on] = process.argv.slice(1)
const { url } = JSON.parse(await readFile(dataDir + '/api.json', 'utf8'))
const token = (await readFile(dataDir + '/api.token', 'utf8')).trim()
const agent = (await readFile(agentFile)).toString('base64')
const times = []
let digest
for (let i = 0; i < Number(count); i++) {
  const t0 = performance.now()
  const body = digest == null ? { agent, input: 'bench ' + i, on } : { digest, input: 'bench ' + i, on }
  const submitted = await fetch(url + '/task', { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token }, body: JSON.stringify(body) })
  if (!submitted.ok) throw new Error('POST /task: ' + submitted.status + ' ' + await submitted.text())
  const { task } = await submitted.json()
  digest = task.agent ?? digest
  let view = task
  while (!['done', 'failed', 'cancelled'].includes(view.status)) {
    const r = await fetch(url + '/task/' + task.id + '?waitMs=30000')
    view = (await r.json()).task
  }
  if (view.result?.ok !== true) throw new Error('task ' + task.id + ' ended ' + view.status + ': ' + JSON.stringify(view.result))
  times.push(performance.now() - t0)
}
process.stdout.write(JSON.stringify(times))
`

interface PeerEntry { peerId: string, via?: string }

async function timed (world: World, from: Host, to: Host, agentFile: string): Promise<number[]> {
  const result = await runCommand('ip', ['netns', 'exec', from.ns, process.execPath, '--input-type=module', '-e', SUBMITTER, from.dataDir, agentFile, String(TASKS + WARMUP), to.peerId!], { timeoutMs: 600_000 })
  if (result.code !== 0) throw new Error(`submitting from ${from.name} to ${to.name} failed: ${result.stderr.trim()}\n${world.tail(undefined, 30)}`)
  return (JSON.parse(result.stdout) as number[]).slice(WARMUP)
}

export async function run (): Promise<BenchResult> {
  const unavailable = await lanUnavailable()
  if (unavailable != null) throw new Error(`the relay bench needs network namespaces: ${unavailable}`)
  const world = await createWorld({
    hosts: 4,
    place: (host) => host.index === 1 ? 'public' : host.index === 4 ? 'lan2' : 'lan1',
    startArgs: (host) => host.index === 1 ? ['--relay'] : []
  })
  try {
    const [h1, h2, h3, h4] = [1, 2, 3, 4].map(i => world.host(i)) as [Host, Host, Host, Host]
    const dir = join(world.root, 'agents')
    await mkdir(dir)
    const [, agents] = await Promise.all([world.startAll(), writeAgents(dir)])
    await readFile(agents.echo)
    // the hive: everyone joins host1's, across the NATs, as a user would with the relay's invites
    for (const joiner of [h2, h3, h4]) {
      const invite = await world.cliJson<{ uri: string }>(h1, ['pair'])
      await world.cliJson(joiner, ['join', invite.uri])
    }
    const via = async (from: Host, to: Host): Promise<string | undefined> =>
      (await world.apiGet<{ peers: PeerEntry[] }>(from, '/peers')).peers.find(p => p.peerId === to.peerId)?.via
    const until = async (what: string, check: () => Promise<boolean>): Promise<void> => {
      await waitFor(async () => (await check()) ? true : undefined, { timeoutMs: 180_000, intervalMs: 1_000, message: what })
    }
    await until('host2 reaches host3 on the LAN and host4 through the relay', async () =>
      (await via(h2, h3)) === 'lan' && (await via(h2, h4)) === 'relayed')
    const lan = await timed(world, h2, h3, agents.echo)
    if ((await via(h2, h4)) !== 'relayed') throw new Error('host2 no longer reaches host4 through the relay')
    const relayed = await timed(world, h2, h4, agents.echo)
    const stillRelayed = (await via(h2, h4)) === 'relayed'
    await world.forward('lan2', h4)
    await until('host2 reaches host4 directly after the port forward', async () => (await via(h2, h4)) === 'direct')
    const upgraded = await timed(world, h2, h4, agents.echo)
    // the baseline once more, so drift over the run (a warming process, a busy machine) shows
    const lanAgain = await timed(world, h2, h3, agents.echo)

    const baseline = { label: 'same LAN p50', value: percentile(lan, 50) }
    return {
      title: `Beyond one LAN: 4 hive-node processes in namespaces, two NATed LANs and a relay, ${TASKS} tasks pinned to another device each way (through the local API)`,
      rows: [
        { metric: 'submit→result p50, same LAN', value: percentile(lan, 50), unit: 'ms' },
        { metric: 'submit→result p50, through the relay', value: percentile(relayed, 50), unit: 'ms', baseline, note: stillRelayed ? '' : 'the link changed during the run' },
        { metric: 'submit→result p50, after the upgrade to direct', value: percentile(upgraded, 50), unit: 'ms', baseline },
        { metric: 'submit→result p50, same LAN, again at the end', value: percentile(lanAgain, 50), unit: 'ms', baseline },
        { metric: 'submit→result p99, through the relay', value: percentile(relayed, 99), unit: 'ms', baseline: { label: 'same LAN p99', value: percentile(lan, 99) } }
      ]
    }
  } finally {
    await world.destroy()
  }
}
