// The policy's rules and the budgets' counting as pure functions: each refusal names its rule and
// what to change; bad values are refused naming the field; policy and budget entries are signed
// like halts, and a forged or malformed one does not open; 20 submissions at once never pass a
// run budget, and a quantity budget is passed by at most one task.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encode as cborEncode, decode as cborDecode } from 'cborg'
import {
  EMPTY_BUDGETS, EMPTY_POLICY, MAX_SETTING_BODY_BYTES, changeBudgets, changePolicy, controlSigningBytes, createBudgetKeeper, createControlEntry, inQuietHours, openControlEntry,
  policyRefusal, refusalText, runClauses, runFacts
} from '../../../protocol/control/index.ts'
import type { Budgets, CountedRecord, DeviceState, Policy } from '../../../protocol/control/index.ts'
import type { Signer } from '../../../protocol/wire/signing.ts'

const HIVE = 'abcdefghijklmnopqrstuvwxyz'
const A = '12D3KooWAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'
const B = '12D3KooWBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB'
const AC: DeviceState = { power: { state: 'ac' }, running: 0, localMinutes: 12 * 60 }

async function signer (): Promise<Signer> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
}

describe('the policy', () => {
  const policy: Policy = {
    devices: {
      '*': { maxTasks: 2 },
      [B]: { minBattery: 30, quietHours: { from: '22:00', to: '07:00' }, tags: ['gpu'] }
    }
  }

  it('names the rule that refuses a device and what to change, in a fixed order', () => {
    const battery = policyRefusal(policy, B, 'laptop', { submitter: A }, { ...AC, power: { state: 'battery', percent: 12 } })
    assert.equal(battery?.rule, 'battery')
    assert.match(refusalText(battery!), /^policy rule battery: laptop is on battery at 12%, below the policy's 30%; to change: plug laptop in, or lower the bound with "hive-node policy set --device laptop --min-battery N"/)
    assert.equal(policyRefusal(policy, B, 'laptop', { submitter: A }, { ...AC, power: { state: 'battery', percent: 30 } }), undefined, 'at the bound is allowed')

    const quiet = policyRefusal(policy, B, 'laptop', { submitter: A }, { ...AC, localMinutes: 23 * 60 + 5 })
    assert.equal(quiet?.rule, 'quiet-hours')
    assert.match(quiet!.reason, /it is 23:05 on laptop, inside its quiet hours 22:00-07:00/)
    assert.match(quiet!.fix, /--quiet-hours HH:MM-HH:MM/)
    // another device's local time is its own to apply
    assert.equal(policyRefusal(policy, B, 'laptop', { submitter: A }, { power: { state: 'ac' }, running: 0 }), undefined)

    const busy = policyRefusal(policy, A, 'desk', { submitter: A }, { ...AC, running: 2 })
    assert.equal(busy?.rule, 'max-tasks', 'the * default applies to a device without rules of its own')
    assert.match(busy!.fix, /--max-tasks N/)

    const tags = policyRefusal(policy, A, 'desk', { submitter: A, tags: ['gpu'] }, AC)
    assert.equal(tags?.rule, 'tags')
    assert.match(refusalText(tags!), /needs tag gpu, which desk does not have.*--device desk --tags gpu/)
    assert.equal(policyRefusal(policy, B, 'laptop', { submitter: A, tags: ['gpu'] }, AC), undefined)

    const local = policyRefusal(policy, B, 'laptop', { submitter: A, localOnly: true }, AC)
    assert.equal(local?.rule, 'local-only')
    assert.equal(policyRefusal(policy, A, 'desk', { submitter: A, localOnly: true }, AC), undefined)
  })

  it('quiet hours span midnight when they start after they end', () => {
    assert.equal(inQuietHours({ from: '22:00', to: '07:00' }, 23 * 60), true)
    assert.equal(inQuietHours({ from: '22:00', to: '07:00' }, 6 * 60 + 59), true)
    assert.equal(inQuietHours({ from: '22:00', to: '07:00' }, 7 * 60), false)
    assert.equal(inQuietHours({ from: '09:00', to: '17:00' }, 12 * 60), true)
    assert.equal(inQuietHours({ from: '09:00', to: '17:00' }, 8 * 60), false)
  })

  it('refuses bad values naming the field and what it takes; null removes a rule', () => {
    const bad: Array<[Parameters<typeof changePolicy>[2], RegExp]> = [
      [{ minBattery: 150 }, /minBattery: /],
      [{ minBattery: 12.5 }, /minBattery: /],
      [{ quietHours: { from: '25:00', to: '07:00' } }, /quietHours.from: a time of day as HH:MM/],
      [{ quietHours: { from: '07:00', to: '07:00' } }, /the same time/],
      [{ maxTasks: 0 }, /maxTasks: /],
      [{ tags: ['GPU!'] }, /tags.0: a tag: 1 to 32 lowercase letters/]
    ]
    for (const [change, message] of bad) {
      assert.throws(() => changePolicy(EMPTY_POLICY, A, change), (err: Error) => err.name === 'PolicyValue' && message.test(err.message), JSON.stringify(change))
    }
    assert.throws(() => changePolicy(EMPTY_POLICY, 'not a peer!', { maxTasks: 1 }), { name: 'PolicyValue', message: /is not a device/ })
    const set = changePolicy(EMPTY_POLICY, A, { maxTasks: 3, tags: ['gpu'] })
    assert.deepEqual(set.devices[A], { maxTasks: 3, tags: ['gpu'] })
    const unset = changePolicy(set, A, { maxTasks: null, tags: null })
    assert.deepEqual(unset.devices, {}, 'a device left with no rule leaves the policy')
  })

  it('is a signed entry like a halt: a forged, malformed or oversized one does not open', async () => {
    const s = await signer()
    const entry = await createControlEntry({ type: 'policy', hive: HIVE, at: 1, n: 3, policy: changePolicy(EMPTY_POLICY, '*', { minBattery: 20 }) }, s)
    assert.deepEqual(openControlEntry({ b: entry.bytes, s: entry.sig }).body, entry.body)

    const sig = new Uint8Array(entry.sig)
    sig[3] = (sig[3] ?? 0) ^ 1
    assert.throws(() => openControlEntry({ b: entry.bytes, s: sig }), { name: 'InvalidControlEntry', message: /does not verify/ })

    // a bad value under a valid signature is still refused: every member checks the policy itself
    const body = cborDecode(entry.bytes) as Record<string, unknown>
    const badBytes = cborEncode({ ...body, policy: { devices: { '*': { minBattery: 500 } } } })
    const badSig = await s.sign(controlSigningBytes(badBytes))
    assert.throws(() => openControlEntry({ b: badBytes, s: badSig }), { name: 'InvalidControlEntry', message: /policy.devices.*minBattery/ })
    // and a budget may not pass for a policy
    const mixed = cborEncode({ ...body, type: 'budget' })
    const mixedSig = await s.sign(controlSigningBytes(mixed))
    assert.throws(() => openControlEntry({ b: mixed, s: mixedSig }), { name: 'InvalidControlEntry' })

    // too large to sign: the setting's body is bounded
    const devices: Policy['devices'] = {}
    const B58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'
    for (let i = 0; i < 64; i++) devices[`12D3KooW${'z'.repeat(42)}${B58[i % 58] ?? ''}${B58[Math.floor(i / 58)] ?? ''}`] = { tags: Array.from({ length: 16 }, (_, t) => `tag-${t}-${'y'.repeat(20)}`) }
    await assert.rejects(createControlEntry({ type: 'policy', hive: HIVE, at: 1, n: 1, policy: { devices } }, s), {
      name: 'InvalidControlEntry', message: new RegExp(`at most ${MAX_SETTING_BODY_BYTES} are allowed`)
    })
  })
})

describe('budgets', () => {
  const DIGEST = 'a'.repeat(64)
  const NOW = Date.parse('2026-03-01T12:00:00Z')

  function record (task: string, extra: Partial<CountedRecord> & { ranMs?: number, context?: string, name?: string } = {}): CountedRecord {
    return {
      time: extra.time ?? NOW - 1000,
      task,
      agent: extra.agent ?? DIGEST,
      placement: `round 1 of task by x; won with cost 1 among 1 bid${runClauses({ ranMs: extra.ranMs ?? 100, ...(extra.context != null ? { context: extra.context } : {}), ...(extra.name != null ? { name: extra.name } : {}) })}`,
      ...(extra.llm != null ? { llm: extra.llm } : {})
    }
  }

  it('reads what a run counts for from its ledger record', () => {
    const facts = runFacts({ ...record('t1', { ranMs: 1234, context: 'notes', name: 'summarise' }), llm: [{ tokensIn: 10, tokensOut: 5 }, { tokensIn: 1, tokensOut: 1 }] })
    assert.deepEqual(facts, { task: 't1', time: NOW - 1000, digest: DIGEST, name: 'summarise', context: 'notes', ranMs: 1234, tokens: 17 })
    assert.deepEqual(runFacts({ time: 1, task: 't', agent: DIGEST, placement: 'an older record' }), { task: 't', time: 1, digest: DIGEST, ranMs: 0, tokens: 0 })
  })

  it('refuses bad values naming the field', () => {
    assert.throws(() => changeBudgets(EMPTY_BUDGETS, 'agent', 'summarise', { runs: 0 }), { name: 'BudgetValue', message: /runs: / })
    assert.throws(() => changeBudgets(EMPTY_BUDGETS, 'agent', 'Bad Name', { runs: 1 }), { name: 'BudgetValue', message: /manifest name or 64-hex digest/ })
    assert.throws(() => changeBudgets(EMPTY_BUDGETS, 'context', 'notes', { cloudMicroUsd: 5 }), { name: 'BudgetValue', message: /per agent digest, not per context/ })
    assert.throws(() => changeBudgets(EMPTY_BUDGETS, 'agent', 'summarise', { cloudMicroUsd: 5 }), { name: 'BudgetValue', message: /not by name/ })
    assert.deepEqual(changeBudgets(EMPTY_BUDGETS, 'agent', DIGEST, { cloudMicroUsd: 5, runs: 2 }).agents[DIGEST], { cloudMicroUsd: 5, runs: 2 })
  })

  it('20 concurrent submissions never pass a run budget: the check and the reservation are one step', async () => {
    const budgets: Budgets = { agents: { summarise: { runs: 5 } }, contexts: {} }
    // two runs already in the ledger (one of them twice: a discarded late result counts once)
    const records = [record('r1', { name: 'summarise' }), record('r2', { name: 'summarise' }), record('r2', { name: 'summarise' }), record('old', { name: 'summarise', time: NOW - 86_400_000 })]
    const keeper = createBudgetKeeper({ budgets: () => budgets, records: async () => records, now: () => NOW })
    const outcomes = await Promise.all(Array.from({ length: 20 }, async () => {
      await keeper.ready()
      try {
        return keeper.admit({ digest: 'b'.repeat(64), name: 'summarise' }) != null ? 'ok' : 'none'
      } catch (err) {
        return err as Error
      }
    }))
    assert.equal(outcomes.filter(o => o === 'ok').length, 3, 'five a day, two already run')
    const refused = outcomes.filter(o => o instanceof Error)
    assert.equal(refused.length, 17)
    assert.equal(refused[0]?.name, 'OverBudget')
    assert.match(refused[0]!.message, /agent summarise is over its budget of 5 runs per day: 5 of 5 used today \(2026-03-01 UTC\), 3 tasks submitted here still running; it resets at 2026-03-02T00:00:00.000Z; raise it with "hive-node budget set --agent summarise --runs N"/)
  })

  it('a task that never ran gives its reservation back; one that ran counts once, in the ledger', async () => {
    const budgets: Budgets = { agents: {}, contexts: { notes: { runs: 1 } } }
    const records: CountedRecord[] = []
    const keeper = createBudgetKeeper({ budgets: () => budgets, records: async () => records, now: () => NOW })
    await keeper.ready()
    const first = keeper.admit({ digest: DIGEST, context: 'notes' })!
    first.bind('t1')
    assert.throws(() => keeper.admit({ digest: DIGEST, context: 'notes' }), { name: 'OverBudget', message: /context notes .* 1 of 1 used/ })
    first.release()
    const second = keeper.admit({ digest: DIGEST, context: 'notes' })!
    second.bind('t2')
    records.push(record('t2', { context: 'notes' }))
    keeper.invalidate()
    await keeper.ready()
    assert.equal(keeper.usage()[0]?.runs, 1, 'the reservation and the record of the same task count once')
    assert.equal(keeper.admit({ digest: DIGEST }), undefined, 'no budget applies to a task outside the context')
  })

  it('a CPU budget is passed by at most one task: one at a time until a run shows its size, then as many as fit', async () => {
    const budgets: Budgets = { agents: { [DIGEST]: { cpuSeconds: 10 } }, contexts: {} }
    const records: CountedRecord[] = []
    const keeper = createBudgetKeeper({ budgets: () => budgets, records: async () => records, now: () => NOW })
    await keeper.ready()
    const t1 = keeper.admit({ digest: DIGEST })!
    t1.bind('t1')
    assert.throws(() => keeper.admit({ digest: DIGEST }), { name: 'OverBudget', message: /0.0 s of 10 s used today.*1 task submitted here still running/ })
    records.push(record('t1', { ranMs: 3000 }))
    keeper.invalidate()
    await keeper.ready()
    // 3 s used, runs of up to 3 s: two more fit (3 + 2×3 ≤ 10), not a third
    const more = [keeper.admit({ digest: DIGEST }), keeper.admit({ digest: DIGEST })]
    assert.equal(more.filter(t => t != null).length, 2)
    assert.throws(() => keeper.admit({ digest: DIGEST }), { name: 'OverBudget', message: /CPU-seconds/ })
  })
})
