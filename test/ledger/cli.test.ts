import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { Level } from 'level'
import { LEDGER_SUBLEVEL, LedgerStore, recordKey } from '../../ledger/index.ts'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { lineMatching } from '../helpers/wait.ts'
import { makeChain } from './make-chain.ts'
import type { AuditReport, ListingJson } from '../../ledger/index.ts'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'

/** The name makeChain's node gives this device. */
const NAME = 'chain-maker'
const START_ARGS = ['start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json']
const RECORDS = 4

interface Running {
  child: ChildProcessWithoutNullStreams
  stop: () => Promise<void>
}

async function startChild (dir: string): Promise<Running> {
  const child = spawnCli(['--data', dir, ...START_ARGS])
  const done = exited(child)
  await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'node ready' })
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM')
      const result = await done
      assert.equal(result.code, 0, result.stderr)
    }
  }
}

/** Flips one bit of a stored record while the node is stopped. */
async function tamper (dir: string, signer: string, seq: number): Promise<void> {
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { valueEncoding: 'view' })
  await db.open()
  try {
    const store = new LedgerStore(db.sublevel(LEDGER_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' }))
    const bytes = Uint8Array.from(await store.getRaw(signer, seq) as Uint8Array)
    bytes[45] = (bytes[45] as number) ^ 0x10 // a bit of the time field
    await store.records.put(recordKey(signer, seq), bytes)
  } finally {
    await db.close()
  }
}

describe('hive-node verify and hive-node ledger', () => {
  let dir: string
  let self: string

  before(async () => {
    dir = await makeTempDir()
    self = await makeChain(dir, RECORDS)
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('with the node stopped: verify exits 0 on a clean ledger and ledger --json lists the records', async () => {
    const verify = await runCli(['--data', dir, 'verify'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.match(verify.stdout, /data directory \(node stopped\)/)
    assert.match(verify.stdout, /clean/)
    const listing = await runCli(['--data', dir, 'ledger', '--json', '--limit', '2'])
    assert.equal(listing.code, 0, listing.stderr)
    const json = JSON.parse(listing.stdout) as ListingJson
    assert.equal(json.signer, self)
    assert.deepEqual(json.records.map(r => r.seq), [RECORDS - 2, RECORDS - 1])
  })

  it('usage errors exit 2 whether or not a node runs', async () => {
    const cases = [['verify', '--peer', 'not-a-peer-id'], ['verify', '--bogus'], ['ledger', '--limit', 'ten']]
    const results = await Promise.all(cases.map(async args => runCli(['--data', dir, ...args])))
    results.forEach((result, i) => { assert.equal(result.code, 2, `${cases[i]?.join(' ')}: ${result.stderr}`) })
  })

  it('with the node running: verify exits 0 through the API, 2 on bad usage; ledger lists through the API', async () => {
    const node = await startChild(dir)
    try {
      const verify = await runCli(['--data', dir, 'verify', '--json'])
      assert.equal(verify.code, 0, verify.stderr)
      const report = JSON.parse(verify.stdout) as AuditReport
      assert.equal(report.ok, true)
      assert.equal(report.records, RECORDS)
      const human = await runCli(['--data', dir, 'verify', '--peer', self])
      assert.equal(human.code, 0, human.stderr)
      assert.match(human.stdout, /the running node/)
      const usage = await runCli(['--data', dir, 'verify', '--peer', 'nope'])
      assert.equal(usage.code, 2, usage.stderr)
      const listing = await runCli(['--data', dir, 'ledger', '--json'])
      assert.equal(listing.code, 0, listing.stderr)
      assert.equal((JSON.parse(listing.stdout) as ListingJson).records.length, RECORDS)
    } finally {
      await node.stop()
    }
  })

  it('with the node stopped: verify and ledger name the chain by device name from the member list on disk, --json keeps both', async () => {
    const verify = await runCli(['--data', dir, 'verify'])
    assert.equal(verify.code, 0, verify.stderr)
    assert.match(verify.stdout, /data directory \(node stopped\)/)
    assert.match(verify.stdout, new RegExp(`^  ok   ${NAME} \\(${self}\\) \\(this device\\)$`, 'm'))
    const json = JSON.parse((await runCli(['--data', dir, 'verify', '--json'])).stdout) as { chains: Array<{ signer: string, name?: string }> }
    assert.deepEqual(json.chains.map(c => [c.signer, c.name]), [[self, NAME]])
    const listing = await runCli(['--data', dir, 'ledger'])
    assert.equal(listing.code, 0, listing.stderr)
    assert.match(listing.stdout, new RegExp(`^chain of ${NAME} \\(${self}\\) \\(this device\\)`))
  })

  it('a tampered record: verify exits 1 and names it, both with the node stopped and running', async () => {
    await tamper(dir, self, 2)
    const stopped = await runCli(['--data', dir, 'verify', '--json'])
    assert.equal(stopped.code, 1, stopped.stderr)
    const offline = JSON.parse(stopped.stdout) as AuditReport
    assert.deepEqual([offline.chains[0]?.firstBad?.seq, offline.chains[0]?.firstBad?.reason], [2, 'bad-signature'])
    assert.match(stopped.stderr, /problems/)

    const node = await startChild(dir)
    try {
      const running = await runCli(['--data', dir, 'verify'])
      assert.equal(running.code, 1, running.stderr)
      assert.match(running.stdout, /the running node/)
      assert.match(running.stdout, /first bad record: seq 2, bad-signature/)
    } finally {
      await node.stop()
    }
  })
})
