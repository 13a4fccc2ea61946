// The one window a workflow's durability leaves to placement: the submitter stops after it wrote a
// step's output and before the step's winner heard "accepted". The winner keeps trying to deliver;
// the restarted submitter no longer holds the task, but its workflow kept this very result, so it
// answers "accepted" again and the winner records the run `ok`: the step has its one `ok` record.
// A result the workflow did not keep (another output) is still refused as an unknown task.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { createFlows } from '../../node/flows/index.ts'
import { ECHO, watAgent } from '../sandbox/fixtures.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import { connect, makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { assertOneOkPerUnit, unitTasks } from '../helpers/flows.ts'
import type { KeptResult, TaskId } from '../../protocol/index.ts'
import type { FlowsComponents } from '../../node/flows/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'

const GiB = 1024 ** 3

let hive: TestHive
let restarted: HiveNode | undefined

before(async () => {
  // the submitter reports a heavy load, so the other device runs the step
  hive = await startHive(2, { overrides: (i) => ({ load: i === 0 ? 16 : 0, freeMemory: 8 * GiB, totalMemory: 16 * GiB }) })
})

after(async () => {
  await restarted?.stop()
  await hive?.stop()
})

test('a submitter stopped between keeping a step\'s output and answering its winner answers "accepted" after its restart; the winner records the run ok', async () => {
  const [submitter, runner] = hive.nodes as [HiveNode, HiveNode]
  const agent = await watAgent(ECHO, { name: 'kept-echo' })
  const digest = createHash('sha256').update(agent).digest('hex')

  // the step's output is written, then the submitter stops before "accepted" goes out
  const keep = submitter.flows.keep.bind(submitter.flows)
  const kept = Promise.withResolvers<KeptResult>()
  const stopped = Promise.withResolvers<void>()
  submitter.flows.keep = async (task) => {
    await keep(task)
    kept.resolve(task)
    await stopped.promise
  }
  const flow = await submitter.flows.run({
    workflow: { version: 1, name: 'kept', steps: [{ name: 'only', agent: digest, input: '${{ input }}' }] },
    input: 'the kept output',
    agents: new Map([[digest, agent]])
  })
  const task = await kept.promise
  assert.equal(task.result?.executor, runner.peerId.toString(), 'the other device ran the step')
  await submitter.stop()
  stopped.resolve()

  // no record yet: the winner never heard "accepted"
  const records = async (): Promise<string[]> => (await runner.ledger.list({ limit: 1000 })).filter(l => l.record?.task === task.id).map(l => l.record!.status)
  assert.deepEqual(await records(), [])

  restarted = await startNode('submitter', { capabilityOverrides: { load: 16, freeMemory: 8 * GiB, totalMemory: 16 * GiB } }, hive.mesh.dirs[0])
  await connect(restarted, runner)
  const view = await restarted.flows.wait(flow.id, { signal: AbortSignal.timeout(60_000) })
  assert.equal(view.status, 'done', JSON.stringify(view.error))
  assert.equal(view.output, 'the kept output')
  assert.deepEqual(unitTasks(view).get('only'), [task.id], 'the step was not run again')

  await waitFor(async () => (await records()).length > 0, { message: 'the winner records its run', timeoutMs: 60_000 })
  assert.deepEqual(await records(), ['ok'], 'the kept result is recorded ok, not discarded')
  await assertOneOkPerUnit([runner, restarted], view)

  // a result the workflow did not keep is not taken for one it did
  assert.equal(await restarted.flows.keptBefore({ id: task.id, executor: runner.peerId.toString(), round: 1, ok: true, output: 'another output' }), false)
  assert.equal(await restarted.flows.keptBefore({ id: task.id, executor: restarted.peerId.toString(), round: 1, ok: true, output: 'the kept output' }), false)
})

test('a workflow engine whose start failed part way answers that nothing was kept, instead of keeping the winner waiting', async (t) => {
  // the bound on the wait is a timer: mocked, it never fires, so only the start's end can answer
  t.mock.timers.enable({ apis: ['setTimeout'] })
  const dir = await makeTempDir('hive-flow-kept-')
  const db = new Level<string, string>(join(dir, 'db'))
  await db.open()
  const unused = (): never => { throw new Error('not used here') }
  const flows = createFlows({
    db: db.sublevel<string, string>('flows', { valueEncoding: 'utf8' }),
    agentsDb: db.sublevel<string, Uint8Array>('flow-agents', { valueEncoding: 'view' }),
    placement: { submit: unused, get: unused, wait: unused, cancel: unused, explain: unused } as unknown as FlowsComponents['placement'],
    archive: { get: async () => undefined },
    agents: { get: () => undefined },
    inspect: unused,
    log: { warn: () => {} }
  })
  await db.close()
  await assert.rejects(flows.start())
  let answer: boolean | undefined
  void flows.keptBefore({ id: 'a'.repeat(32) as TaskId, executor: 'winner', round: 1, ok: true, output: 'out' }).then((kept) => { answer = kept })
  for (let i = 0; i < 50 && answer === undefined; i++) await new Promise(resolve => setImmediate(resolve))
  assert.equal(answer, false)
  await rm(dir, { recursive: true, force: true })
})

