// The hive's policy and budgets on real nodes on loopback: set on one device, they reach every
// member (one cut off learns them as it reconnects, and keeps them over a restart); placement
// obeys the policy and a refused placement names the rule and what to change, in the task's
// error and in `explain`; a local-only task never leaves its device; 20 concurrent submissions
// never pass a budget, and another device refuses once the ledger records reach it; forged and
// malformed entries are refused, their sender dropped, and the node keeps running with what it
// held; `policy` and `budget` from the command line, and the API's statuses.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { encode as cborEncode, decode as cborDecode } from 'cborg'
import { z } from 'zod'
import { main } from '../../../node/cli.ts'
import { dataPaths } from '../../../node/config.ts'
import { CONTROL_PROTOCOL, EMPTY_BUDGETS, EMPTY_POLICY, changeBudgets, changePolicy, controlSigningBytes, createControlEntry } from '../../../protocol/control/index.ts'
import { dialFramed } from '../../../protocol/wire/serve.ts'
import { connect, startNode } from '../../helpers/mesh.ts'
import { waitFor } from '../../helpers/wait.ts'
import { echoAgent, startHive } from '../placement/fixture.ts'
import type { ControlEvents } from '../../../protocol/control/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { TestHive } from '../placement/fixture.ts'
import type { PeerId } from '@libp2p/interface'

const id = (node: HiveNode): string => node.peerId.toString()

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

async function controlEvent<K extends keyof ControlEvents & string> (node: HiveNode, type: K, filter: (d: ControlEvents[K]) => boolean, timeoutMs = 60_000): Promise<ControlEvents[K]> {
  const { promise, resolve, reject } = Promise.withResolvers<ControlEvents[K]>()
  const off = node.control.on(type, (detail) => { if (filter(detail)) resolve(detail) })
  const timer = setTimeout(() => { reject(new Error(`${node.name}: no ${type} within ${timeoutMs} ms`)) }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
    off()
  }
}

/** Keeps `a` from connecting to `b` either way, until the returned function heals it. */
function partition (a: HiveNode, b: HiveNode): () => void {
  const gater = a.hive.gate.connectionGater
  const saved = { ...gater }
  const cut = (peer: PeerId): boolean => peer.equals(b.peerId)
  gater.denyDialPeer = async (peer) => cut(peer) || await saved.denyDialPeer?.(peer) === true
  gater.denyInboundEncryptedConnection = async (peer, conn) => cut(peer) || await saved.denyInboundEncryptedConnection?.(peer, conn) === true
  return () => { Object.assign(gater, saved) }
}

describe('the hive\'s policy and budgets', () => {
  let hive: TestHive
  let a: HiveNode
  let b: HiveNode
  let c: HiveNode

  before(async () => {
    // B runs on a battery at 10 %
    hive = await startHive(3, { overrides: (i) => i === 1 ? { power: { state: 'battery', percent: 10 } } : undefined })
    ;[a, b, c] = hive.nodes as [HiveNode, HiveNode, HiveNode]
  })

  after(async () => { await hive.stop() })

  it('placement obeys the policy: a refused placement names the rule and what to change, in the error and in explain', async () => {
    const policy = changePolicy(EMPTY_POLICY, id(b), { minBattery: 50, tags: ['gpu'] })
    const heard = Promise.all([b, c].map(async n => controlEvent(n, 'policy', (p) => p.value.devices[id(b)]?.minBattery === 50)))
    await a.control.setPolicy(policy)
    await heard

    // only B has the tag, and B is on battery below the policy's bound: nobody may run it
    const agent = await echoAgent('policy-gpu')
    const refused = await a.placement.wait((await a.placement.submit({ agent, input: 'x', requirements: { tags: ['gpu'] } })).id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(refused.status, 'failed')
    assert.equal(refused.error?.code, 'NoBids')
    assert.match(refused.error?.message ?? '', new RegExp(`${id(b)} will not bid: policy rule battery: ${b.name} is on battery at 10%, below the policy's 50%; to change: plug ${b.name} in, or lower the bound`))
    assert.match(refused.error?.message ?? '', new RegExp(`this device did not bid: policy rule tags: the task needs tag gpu, which ${a.name} does not have; to change: give ${a.name} the tag`))
    const explained = await cli('--data', hive.mesh.dirs[0]!, 'explain', refused.id)
    assert.equal(explained.code, 0, explained.err)
    assert.match(explained.out, new RegExp(`Declined: ${b.name} .*will not bid: policy rule battery: .*--min-battery N`))
    assert.match(explained.out, new RegExp(`Declined: ${c.name} .*will not bid: policy rule tags: .*--tags gpu`))

    // what the message said to change, changed: B runs it
    const lifted = controlEvent(b, 'policy', (p) => p.value.devices[id(b)]?.minBattery == null)
    const shown = await cli('--data', hive.mesh.dirs[0]!, 'policy', 'set', '--device', b.name, '--min-battery', 'none', '--json')
    assert.equal(shown.code, 0, shown.err)
    assert.deepEqual((JSON.parse(shown.out) as { policy: { devices: unknown[] } }).policy.devices, [{ device: id(b), name: b.name, tags: ['gpu'] }])
    await lifted
    const done = await a.placement.wait((await a.placement.submit({ agent, input: 'gpu only', requirements: { tags: ['gpu'] } })).id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(done.status, 'done', JSON.stringify(done.error))
    assert.equal(done.result?.executor, id(b))

    // a local-only task runs where it was submitted and is never announced to another device
    const local = await c.placement.wait((await c.placement.submit({ agent, input: 'stays', requirements: { localOnly: true } })).id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(local.status, 'done')
    assert.equal(local.result?.executor, id(c))
    assert.equal(a.placement.get(local.id), undefined, 'A never saw the local-only task')
    assert.equal(b.placement.get(local.id), undefined, 'B never saw the local-only task')
    await assert.rejects(c.placement.submit({ agent, input: 'x', requirements: { localOnly: true, peer: id(a) } }), { name: 'InvalidTask', message: /local-only .* cannot also be pinned/ })

    // bad values are refused with what they take, and nothing changes
    const before = a.control.policy().id
    const bad = await cli('--data', hive.mesh.dirs[0]!, 'policy', 'set', '--device', b.name, '--quiet-hours', '25:00-07:00')
    assert.equal(bad.code, 1)
    assert.match(bad.err, /quietHours.from: a time of day as HH:MM/)
    const badBattery = await cli('--data', hive.mesh.dirs[0]!, 'policy', 'set', '--device', b.name, '--min-battery', '150')
    assert.equal(badBattery.code, 2)
    assert.match(badBattery.err, /--min-battery takes a whole number from 1 to 100/)
    const nobody = await cli('--data', hive.mesh.dirs[0]!, 'policy', 'set', '--device', 'no-such-device', '--max-tasks', '2')
    assert.equal(nobody.code, 1)
    assert.match(nobody.err, /no member of this hive is named "no-such-device".*hive-node members/)
    assert.equal(a.control.policy().id, before)
  })

  it('20 concurrent submissions never pass a budget; another device refuses once the records reach it, saying what was used and when it resets', async () => {
    const set = await cli('--data', hive.mesh.dirs[0]!, 'budget', 'set', '--agent', 'budgeted', '--runs', '5', '--json')
    assert.equal(set.code, 0, set.err)
    await waitFor(() => [b, c].every(n => n.control.budgets().value.agents.budgeted?.runs === 5), { message: 'every member holds the budget', timeoutMs: 60_000 })

    const agent = await echoAgent('budgeted')
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, async (_, i) => a.placement.submit({ agent, input: `run ${i}` })))
    const accepted = outcomes.flatMap(o => o.status === 'fulfilled' ? [o.value] : [])
    const refused = outcomes.flatMap(o => o.status === 'rejected' ? [o.reason as Error] : [])
    assert.equal(accepted.length, 5, 'five runs a day')
    assert.equal(refused.length, 15)
    for (const err of refused) {
      assert.equal(err.name, 'OverBudget')
      assert.match(err.message, /agent budgeted is over its budget of 5 runs per day: 5 of 5 used today \(\d{4}-\d{2}-\d{2} UTC\).*resets at \d{4}-\d{2}-\d{2}T00:00:00.000Z; raise it with "hive-node budget set --agent budgeted --runs N"/)
    }
    for (const task of accepted) assert.equal((await a.placement.wait(task.id, { signal: AbortSignal.timeout(120_000) })).status, 'done')

    // every device counts the same runs, from the ledger records every member holds
    await waitFor(async () => {
      await b.budgets.ready()
      return b.budgets.usage().find(u => u.key === 'budgeted')?.runs === 5
    }, { message: 'B counts the five runs from the ledger', timeoutMs: 120_000 })
    await assert.rejects(b.placement.submit({ agent, input: 'one more' }), { name: 'OverBudget', message: /5 of 5 used today/ })

    // through the API: 429, the error's code, and what to do
    const token = (await readFile(dataPaths(hive.mesh.dirs[1]!).token, 'utf8')).trim()
    const response = await fetch(`${b.apiUrl ?? ''}/task`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: Buffer.from(agent).toString('base64'), input: 'api' })
    })
    assert.equal(response.status, 429)
    const body = await response.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'OverBudget')
    assert.match(body.error.message, /resets at/)

    const shown = await cli('--data', hive.mesh.dirs[1]!, 'budget', 'show')
    assert.equal(shown.code, 0, shown.err)
    assert.match(shown.out, /agent budgeted +5 \/ 5/)
    const bad = await cli('--data', hive.mesh.dirs[1]!, 'budget', 'set', '--context', 'notes', '--cloud-usd', '3')
    assert.equal(bad.code, 1)
    assert.match(bad.err, /cloud spend is capped per agent digest, not per context/)
  })

  it('forged and malformed policy and budget entries are refused, the sender dropped; the node keeps running with what it held', async () => {
    const hiveId = a.hive.membership.hiveId
    const held = { policy: a.control.policy().id, budgets: a.control.budgets().id }
    const linkIds = (): Set<string> => new Set([...a.libp2p.getConnections(b.peerId), ...b.libp2p.getConnections(a.peerId)].map(c => c.id))
    let old = new Set<string>()
    const send = async (entries: unknown[]): Promise<void> => {
      // the connection the last refusal hung up is gone first (the dialler may have made a new one)
      await waitFor(() => [...linkIds()].every(l => !old.has(l)), { message: 'the old connection is gone' })
      await connect(b, a)
      old = linkIds()
      const stream = await dialFramed(b.libp2p, peerIdFromString(id(a)), CONTROL_PROTOCOL, { maxMessageBytes: 1 << 20 })
      await stream.write({ t: 'entries', hive: hiveId, entries })
      await stream.read(z.unknown()).catch(() => {})
      stream.abort(new Error('done'))
    }

    const forged = await createControlEntry({ type: 'policy', hive: hiveId, at: Date.now(), n: 999, policy: changePolicy(EMPTY_POLICY, '*', { maxTasks: 1 }) }, b.signer)
    const sig = new Uint8Array(forged.sig)
    sig[7] = (sig[7] ?? 0) ^ 1
    const refusedForged = controlEvent(a, 'refused', (e) => e.peer === id(b))
    await send([{ b: forged.bytes, s: sig }])
    assert.match((await refusedForged).error, /InvalidControlEntry: .*does not verify/)

    // well signed by a member, but a value no member may set
    const real = await createControlEntry({ type: 'budget', hive: hiveId, at: Date.now(), n: 999, budgets: changeBudgets(EMPTY_BUDGETS, 'agent', 'x', { runs: 1 }) }, b.signer)
    const body = cborDecode(real.bytes) as Record<string, unknown>
    const bytes = cborEncode({ ...body, budgets: { agents: { x: { runs: -3 } }, contexts: {} } })
    const refusedBad = controlEvent(a, 'refused', (e) => e.peer === id(b))
    await send([{ b: bytes, s: await b.signer.sign(controlSigningBytes(bytes)) }])
    assert.match((await refusedBad).error, /InvalidControlEntry: control entry body is invalid: budgets.agents.x.runs/)

    assert.equal(a.running, true)
    assert.deepEqual({ policy: a.control.policy().id, budgets: a.control.budgets().id }, held, 'nothing held changed')
    await waitFor(() => [...linkIds()].every(l => !old.has(l)), { message: 'the old connection is gone' })
    await connect(b, a)
    const done = await a.placement.wait((await a.placement.submit({ agent: await echoAgent('after-forged-policy'), input: 'still here' })).id, { signal: AbortSignal.timeout(60_000) })
    assert.equal(done.status, 'done')
  })

  it('a device cut off while the policy changed learns it as it reconnects, and keeps it over a restart', async () => {
    const heal = [partition(c, a), partition(c, b)]
    await Promise.all([c.libp2p.hangUp(a.peerId), c.libp2p.hangUp(b.peerId)])
    await waitFor(() => c.libp2p.getConnections().length === 0, { message: 'C is cut off' })

    const next = changePolicy(a.control.policy().value, '*', { quietHours: { from: '01:00', to: '02:00' } })
    const heardB = controlEvent(b, 'policy', (p) => p.value.devices['*']?.quietHours != null)
    const set = await a.control.setPolicy(next)
    await heardB
    assert.equal(c.control.policy().value.devices['*'], undefined, 'C has not heard yet')

    const heardC = controlEvent(c, 'policy', (p) => p.id === set.id)
    for (const h of heal.reverse()) h()
    await connect(c, a)
    await heardC

    const dir = hive.mesh.dirs[2] as string
    await hive.kill(c)
    const again = await startNode('hive-2', {}, dir)
    try {
      assert.equal(again.control.policy().id, set.id, 'the policy survives a restart')
      assert.deepEqual(again.control.policy().value, next)
      assert.equal(again.control.budgets().value.agents.budgeted?.runs, 5, 'and so do the budgets')
    } finally {
      await again.stop()
    }
  })
})
