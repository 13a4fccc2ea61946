// A workflow's submitter killed mid-fork: `hive-node start` runs as its own process and is killed
// with SIGKILL while the fork's tasks run on the hive, so nothing is written on the way down. The
// node restarted on the same data directory resumes the workflow from the steps done (their
// outputs are on disk) instead of running them again, finishes it with the join's output, and
// every step (each fork element too) has exactly one `ok` ledger record in the whole hive.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, rm } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { ECHO, watAgent } from '../sandbox/fixtures.ts'
import { slowEchoWat } from '../lan/agents.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { connect, makeTempDir, startNode } from '../helpers/mesh.ts'
import { lineMatching, waitFor } from '../helpers/wait.ts'
import { dataPaths } from '../../node/config.ts'
import { assertOneOkPerUnit, okRecords, unitTasks } from '../helpers/flows.ts'
import type { FlowView } from '../../node/flows/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'

const GiB = 1024 ** 3
/** Each element keeps the slow agent busy for about a second on an idle core. */
const ITEMS = Array.from({ length: 12 }, (_, i) => `item-${String(i).padStart(2, '0')}`.padEnd(16, '.'))

let hive: TestHive
let dir: string
let restarted: HiveNode | undefined

before(async () => {
  hive = await startHive(3, { overrides: () => ({ load: 0, freeMemory: 8 * GiB, totalMemory: 16 * GiB }) })
  dir = await makeTempDir('hive-flow-kill-')
})

after(async () => {
  await restarted?.stop()
  await hive?.stop()
  if (dir != null) await rm(dir, { recursive: true, force: true })
})

test('a submitter killed (SIGKILL) mid-fork resumes after a restart without rerunning finished steps; one ok record per step', async () => {
  const fetch_ = await watAgent(ECHO, { name: 'kill-fetch' })
  const summarise = await watAgent(slowEchoWat(2 ** 26), { name: 'kill-summarise', limits: { timeoutMs: 120_000, memoryMiB: 1 } })
  const report = await watAgent(ECHO, { name: 'kill-report' })
  const digest = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

  const child = spawnCli(['--data', dir, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--loopback', '--json',
    '--name', 'submitter', '--capability', 'load=16'])
  const ended = exited(child)
  let before: FlowView
  try {
    const ready = JSON.parse(await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'the submitter is ready', timeoutMs: 60_000 })) as { apiUrl: string, peerId: string }
    const joined = await runCli(['--data', dir, 'join', hive.nodes[0]!.hive.pairing.createInvite().uri, '--json'])
    assert.equal(joined.code, 0, joined.stderr)
    const token = (await readFile(dataPaths(dir).token, 'utf8')).trim()
    const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const res = await fetch(ready.apiUrl + path, { method, headers: { authorization: `Bearer ${token}`, ...(body != null ? { 'content-type': 'application/json' } : {}) }, ...(body != null ? { body: JSON.stringify(body) } : {}) })
      const json = await res.json() as T
      assert.ok(res.ok, `${method} ${path}: ${res.status} ${JSON.stringify(json)}`)
      return json
    }
    await waitFor(async () => (await api<{ capabilities: unknown[] }>('GET', '/capabilities')).capabilities.length === 4, { message: 'the submitter sees the whole hive', timeoutMs: 60_000 })

    const { flow } = await api<{ flow: FlowView }>('POST', '/flows', {
      workflow: {
        version: 1,
        name: 'killed',
        steps: [
          { name: 'fetch', agent: digest(fetch_), input: '${{ input }}' },
          { name: 'summarise', agent: digest(summarise), fork: { over: '${{ steps.fetch.output }}', concurrency: 3 }, input: '${{ item }}' },
          { name: 'report', agent: digest(report), input: 'report: ${{ steps.summarise.output }}' }
        ]
      },
      input: JSON.stringify(ITEMS),
      agents: Object.fromEntries([fetch_, summarise, report].map(b => [digest(b), Buffer.from(b).toString('base64')]))
    })
    // mid-fork: some elements done, others under way on the hive
    before = await waitFor(async () => {
      const view = (await api<{ flow: FlowView }>('GET', `/flows/${flow.id}`)).flow
      const units = view.steps[1]?.units ?? []
      const done = units.filter(u => u.status === 'done').length
      return done >= 3 && done < 10 && units.some(u => u.status === 'running') ? view : undefined
    }, { message: 'the fork is part done', timeoutMs: 120_000, intervalMs: 50 })
    child.kill('SIGKILL')
  } finally {
    child.kill('SIGKILL')
  }
  assert.equal((await ended).signal, 'SIGKILL')

  restarted = await startNode('submitter', { capabilityOverrides: { load: 16 } }, dir)
  for (const node of hive.nodes) await connect(restarted, node)
  const after = await restarted.flows.wait(before.id, { signal: AbortSignal.timeout(180_000) })
  assert.equal(after.status, 'done', JSON.stringify(after.error))
  assert.equal(after.output, `report: ${JSON.stringify(ITEMS)}`)

  // what was done before the kill was not run again: same task, no new attempt
  const beforeUnits = unitTasks(before)
  const afterUnits = unitTasks(after)
  const doneBefore = [before.steps[0]!, before.steps[1]!].flatMap(s => s.units.filter(u => u.status === 'done').map(u => u.index != null ? `${s.name}[${u.index}]` : s.name))
  assert.ok(doneBefore.length >= 4, 'fetch and at least three fork elements were done before the kill')
  for (const unit of doneBefore) assert.deepEqual(afterUnits.get(unit), beforeUnits.get(unit), `${unit} was not run again`)
  // an element under way at the kill ran again under a new task
  const resumed = before.steps[1]!.units.filter(u => u.status === 'running').map(u => `summarise[${u.index ?? -1}]`)
  assert.ok(resumed.some(unit => (afterUnits.get(unit)?.length ?? 0) > (beforeUnits.get(unit)?.length ?? 0)), 'an interrupted element got a new attempt')

  const nodes = [...hive.nodes, restarted]
  await waitFor(async () => (await okRecords(nodes, new Set([...afterUnits.values()].flat()))).size === 14, { message: 'every step\'s ledger record is appended', timeoutMs: 60_000 })
  await assertOneOkPerUnit(nodes, after)
})
