import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createBudget, utcDay } from '../../../protocol/llm/index.ts'
import type { BudgetCaps, DaySpend } from '../../../protocol/llm/index.ts'

function memoryStore (): { load: () => Promise<DaySpend | undefined>, save: (s: DaySpend) => Promise<void>, saved: DaySpend[] } {
  const saved: DaySpend[] = []
  return { saved, load: async () => saved.at(-1), save: async (s) => { saved.push(s) } }
}

const prices = { 'gpt-test': { in: 1, out: 10 } }

test('a reservation holds the worst case, and settling keeps only what was used', async () => {
  const store = memoryStore()
  const budget = createBudget({ caps: () => ({ dayMicroUsd: 1000, agents: {} }), members: () => 1, prices: () => prices, store })
  const r = budget.reserve({ model: 'gpt-test', promptTokens: 10, maxTokens: 50 })
  assert.equal(r.microUsd, 510)
  assert.equal(budget.status().reservedMicroUsd, 510)
  assert.throws(() => budget.reserve({ model: 'gpt-test', promptTokens: 10, maxTokens: 50 }), { name: 'BudgetExceeded' })
  assert.equal(await budget.settle(r, { tokensIn: 10, tokensOut: 5 }), 60)
  assert.equal(budget.status().spentMicroUsd, 60)
  assert.equal(budget.status().reservedMicroUsd, 0)
  assert.equal(store.saved.at(-1)?.total, 60)
  budget.reserve({ model: 'gpt-test', promptTokens: 10, maxTokens: 50 })
})

test('no cap, or a model without a price, reserves nothing', () => {
  const none = createBudget({ caps: () => ({ agents: {} }), members: () => 1, prices: () => prices, store: memoryStore() })
  assert.throws(() => none.reserve({ model: 'gpt-test', promptTokens: 1, maxTokens: 1 }), { name: 'BudgetExceeded', message: /no cloud budget/ })
  const capped = createBudget({ caps: () => ({ dayMicroUsd: 1000, agents: {} }), members: () => 1, prices: () => prices, store: memoryStore() })
  assert.throws(() => capped.reserve({ model: 'other', promptTokens: 1, maxTokens: 1 }), { name: 'BudgetExceeded', message: /no price/ })
})

test('each device spends only its slice, the slice never grows within a day, and a new day starts afresh', async () => {
  let members = 4
  let clock = Date.parse('2026-01-01T10:00:00Z')
  const caps: BudgetCaps = { dayMicroUsd: 1000, agents: { ['a'.repeat(64)]: 400 } }
  const budget = createBudget({ caps: () => caps, members: () => members, prices: () => prices, store: memoryStore(), now: () => clock })
  assert.equal(budget.status().sliceMicroUsd, 250)
  members = 2
  assert.equal(budget.status().sliceMicroUsd, 250, 'a removal does not grow the slice today')
  assert.throws(() => budget.reserve({ agent: 'a'.repeat(64), model: 'gpt-test', promptTokens: 0, maxTokens: 11 }), { name: 'BudgetExceeded', message: /agent/ })
  budget.reserve({ agent: 'a'.repeat(64), model: 'gpt-test', promptTokens: 0, maxTokens: 10 })
  clock += 24 * 3600_000
  assert.equal(budget.status().day, utcDay(clock))
  assert.equal(budget.status().sliceMicroUsd, 500)
})

test('spend survives a restart on the same day', async () => {
  const store = memoryStore()
  const make = (): ReturnType<typeof createBudget> => createBudget({ caps: () => ({ dayMicroUsd: 1000, agents: {} }), members: () => 1, prices: () => prices, store })
  const first = make()
  await first.start()
  await first.settle(first.reserve({ model: 'gpt-test', promptTokens: 0, maxTokens: 90 }), { tokensIn: 0, tokensOut: 90 })
  const second = make()
  await second.start()
  assert.equal(second.status().spentMicroUsd, 900)
  assert.throws(() => second.reserve({ model: 'gpt-test', promptTokens: 0, maxTokens: 20 }), { name: 'BudgetExceeded' })
})

test('20 concurrent calls from 3 devices never pass the hive cap', async () => {
  const cap = 3000
  const devices = [0, 1, 2].map(() => createBudget({ caps: () => ({ dayMicroUsd: cap, agents: {} }), members: () => 3, prices: () => prices, store: memoryStore() }))
  let billed = 0
  let asked = 0
  const call = async (i: number): Promise<string> => {
    const budget = devices[i % 3]!
    let r
    try {
      r = budget.reserve({ model: 'gpt-test', promptTokens: 10, maxTokens: 30 })
    } catch (err) {
      return (err as Error).name
    }
    asked++
    await new Promise(resolve => setImmediate(resolve))
    const used = 20 + (i % 10)
    billed += await budget.settle(r, { tokensIn: 10, tokensOut: used })
    return 'ok'
  }
  const outcomes = await Promise.all(Array.from({ length: 20 }, async (_, i) => call(i)))
  assert.ok(outcomes.includes('BudgetExceeded'), 'some calls were refused')
  assert.ok(asked > 0)
  assert.ok(asked * 310 <= cap, `the cloud was asked ${asked} times, whose worst case ${asked * 310} fits the cap ${cap}`)
  assert.ok(billed <= cap)
})
