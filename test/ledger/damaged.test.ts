// A node whose own ledger chain cannot take a record runs nothing: every execution it accepts
// leaves a record, or it refuses with LedgerDamaged, says why and how to recover, and `status`
// (CLI and API) shows the chain's state. The chains are damaged on real LevelDB in a stopped
// node's data directory, as a failing disk or a careless restore would.

import assert from 'node:assert/strict'
import { cp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Level } from 'level'
import { LEDGER_SUBLEVEL, LedgerStore, recordKey } from '../../ledger/index.ts'
import { HiveNode } from '../../node/hive-node.ts'
import { runCli } from '../helpers/cli.ts'
import { connect, loopbackInit, makeTempDir, startMesh, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import { ECHO, watAgent } from '../sandbox/fixtures.ts'
import { content } from './fixtures.ts'
import { makeChain } from './make-chain.ts'
import type { LedgerHealth } from '../../ledger/index.ts'

const RECORDS = 4

/** Opens a stopped node's ledger store and hands it to `change`. */
async function withStore (dir: string, change: (store: LedgerStore) => Promise<void>): Promise<void> {
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
  await db.open()
  try {
    await change(new LedgerStore(db.sublevel(LEDGER_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' })))
  } finally {
    await db.close()
  }
}

/** The last record is gone; the signed head written with it stays. */
async function truncate (dir: string, signer: string): Promise<void> {
  await withStore(dir, async (store) => { await store.records.del(recordKey(signer, RECORDS - 1)) })
}

/** One bit of record 1's time field flipped. */
async function flipBit (dir: string, signer: string): Promise<void> {
  await withStore(dir, async (store) => {
    const bytes = Uint8Array.from(await store.getRaw(signer, 1) as Uint8Array)
    bytes[45] = (bytes[45] as number) ^ 0x10
    await store.records.put(recordKey(signer, 1), bytes)
  })
}

interface ErrorBody { error: { code: string, message: string } }

describe('a node whose own ledger chain is damaged runs nothing, says why, and status shows it', () => {
  let clean: string
  let self: string
  const dirs: string[] = []

  before(async () => {
    clean = await makeTempDir()
    self = await makeChain(clean, RECORDS)
  })

  after(async () => {
    await Promise.all([clean, ...dirs].map(async d => { await rm(d, { recursive: true, force: true }) }))
  })

  const cases = [
    { name: 'a truncated chain (the last record gone, its signed head kept)', damage: truncate, reason: 'truncated', seq: RECORDS - 1, held: RECORDS - 1, appendRefusal: 'LedgerRollback', recovery: /takes the missing records back from any member/ },
    { name: 'a chain its own audit finds damaged (a flipped bit in record 1)', damage: flipBit, reason: 'bad-signature', seq: 1, held: RECORDS, appendRefusal: 'LedgerDamaged', recovery: /from a backup/ }
  ]

  for (const c of cases) {
    it(`${c.name}: runs, bids and appends are refused with LedgerDamaged; status says so`, async () => {
      const dir = await makeTempDir()
      dirs.push(dir)
      await cp(clean, dir, { recursive: true })
      await c.damage(dir, self)

      const node = await startNode('damaged', { placement: { bidWindowMs: 300 } }, dir)
      try {
        const token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
        const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
        // a run pinned to this node: refused at once, with what is wrong and what to do
        const agent = Buffer.from(await watAgent(ECHO)).toString('base64')
        const local = await fetch(`${node.apiUrl}/task`, { method: 'POST', headers: auth, body: JSON.stringify({ agent, input: 'hi', local: true }) })
        const refusal = await local.json() as ErrorBody
        assert.equal(local.status, 503, JSON.stringify(refusal))
        assert.equal(refusal.error.code, 'LedgerDamaged')
        assert.match(refusal.error.message, new RegExp(`${c.reason} at seq ${c.seq}`))
        assert.match(refusal.error.message, /runs no task/)
        assert.match(refusal.error.message, c.recovery)

        // a direct run in this node's sandbox: refused the same way
        const direct = await fetch(`${node.apiUrl}/agents/run`, { method: 'POST', headers: auth, body: JSON.stringify({ agent, input: 'hi' }) })
        assert.equal(direct.status, 503)
        assert.equal((await direct.json() as ErrorBody).error.code, 'LedgerDamaged')

        // a task for the hive: this node does not bid, and the failure says why
        const placed = await node.placement.submit({ agent: await watAgent(ECHO), input: 'hi' })
        const ended = await node.placement.wait(placed.id, { signal: AbortSignal.timeout(30_000) })
        assert.equal(ended.status, 'failed')
        assert.match(ended.error?.message ?? '', /this device did not bid: .*damaged/)
        assert.equal(ended.history.some(h => h.type === 'bid'), false)

        await assert.rejects(node.ledger.append(content(99)), { name: c.appendRefusal })
        assert.equal((await node.ledger.list()).length, c.held, 'no record was appended')

        const health = node.ledger.health()
        assert.deepEqual([health.state, health.reason, health.seq], ['damaged', c.reason, c.seq])

        // status, through the API and the CLI
        const api = await (await fetch(`${node.apiUrl}/health`)).json() as { ledger: LedgerHealth }
        assert.deepEqual([api.ledger.state, api.ledger.reason, api.ledger.seq], ['damaged', c.reason, c.seq])
        assert.match(api.ledger.recovery ?? '', c.recovery)
        const json = await runCli(['--data', dir, 'status', '--json'])
        assert.equal(json.code, 0, json.stderr)
        assert.equal((JSON.parse(json.stdout) as { ledger: LedgerHealth }).ledger.state, 'damaged')
        const human = await runCli(['--data', dir, 'status'])
        assert.match(human.stdout, new RegExp(`ledger +DAMAGED: ${c.reason} at seq ${c.seq}`))
        assert.match(human.stdout, /no task runs on this device/)
      } finally {
        await node.stop()
      }
    })
  }

  it('a member\'s copy heals a truncated chain: the chain is whole again and tasks run and are recorded', async () => {
    const mesh = await startMesh(2, { label: 'heal', init: { placement: { bidWindowMs: 300 } } })
    const [a, b] = mesh.nodes as [HiveNode, HiveNode]
    const dir = mesh.dirs[0] as string
    let reopened: HiveNode | undefined
    try {
      for (let i = 0; i < RECORDS; i++) await a.ledger.append(content(i))
      const signer = a.peerId.toString()
      await waitFor(async () => (await b.ledger.chains()).find(c => c.signer === signer && c.headSeq === RECORDS - 1), { message: 'the member holds a copy of the chain' })
      await a.stop()
      await truncate(dir, signer)

      reopened = await HiveNode.open({ ...loopbackInit(dir, 'heal-0'), placement: { bidWindowMs: 300 } })
      const seen: LedgerHealth[] = []
      reopened.ledger.addEventListener('health', (e) => { seen.push((e as CustomEvent<LedgerHealth>).detail) })
      await reopened.start()
      // damaged from its start (a member that reconnects first may say it holds more: rollback)
      assert.equal(seen[0]?.state, 'damaged')
      assert.ok(['truncated', 'rollback'].includes(seen[0]?.reason ?? ''), seen[0]?.reason)
      await connect(reopened, b)
      await waitFor(() => reopened?.ledger.health().state === 'ok', { message: 'the chain is whole again', timeoutMs: 30_000 })

      const task = await reopened.placement.submit({ agent: await watAgent(ECHO), input: 'again', requirements: { runtime: 'wasm-component', models: [], peer: signer } })
      const done = await reopened.placement.wait(task.id, { signal: AbortSignal.timeout(30_000) })
      assert.equal(done.status, 'done', JSON.stringify(done.error))
      await waitFor(() => reopened?.placement.get(task.id)?.result?.ledger?.seq, { message: 'the run is recorded' })
      assert.equal(reopened.placement.get(task.id)?.result?.ledger?.seq, RECORDS)
      assert.equal((await reopened.ledger.verify({ signer })).ok, true)
    } finally {
      await reopened?.stop()
      await mesh.stop()
    }
  })
})
