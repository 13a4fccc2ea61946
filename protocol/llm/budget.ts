// Cloud spend: reserve the worst case before a call, settle to what it used after.
//
// Invariant: for every UTC day, this device's settled spend plus its open reservations never
// exceeds its slice of the hive's caps. A reservation is checked and added in one synchronous
// step, so concurrent calls on one device can never overshoot (the check-then-add race of
// budgets that add spend only after the call). A call is refused before anything is sent.
//
// Split rule: the hive has no consensus, and a split hive must not pass the cap either. So each
// device spends only its own slice: slice = floor(cap / n), where n is the largest number of
// members this device has seen in the hive during the day (it never shrinks within a day, so a
// removal cannot grow the slices of the others past the cap). The sum of every device's spend
// is then at most n × floor(cap / n) ≤ cap, whatever the partitions. The same rule holds per
// agent. Spend is kept on disk, so a restart does not reset it.
//
// Amounts are integer micro-USD. A price in USD per million tokens is exactly micro-USD per
// token, which is how prices are written in the node's configuration.

import { BudgetExceededError } from './errors.ts'

/** USD per million tokens (= micro-USD per token), prompt and completion. */
export interface ModelPrice {
  in: number
  out: number
}

/** The hive's caps, replicated to every member (see settings.ts). Absent: no cloud spend. */
export interface BudgetCaps {
  /** Hive-wide cap per UTC day, micro-USD. */
  dayMicroUsd?: number
  /** Per agent digest, per UTC day, micro-USD. */
  agents: Record<string, number>
}

/** This device's spend for one day: what the store keeps. */
export interface DaySpend {
  day: string
  /** Largest member count seen today: the divisor of the slices. */
  members: number
  total: number
  agents: Record<string, number>
}

export interface BudgetStore {
  load: () => Promise<DaySpend | undefined>
  save: (spend: DaySpend) => Promise<void>
}

export interface BudgetComponents {
  caps: () => BudgetCaps
  /** Members of the hive now (this device included). */
  members: () => number
  prices: () => Record<string, ModelPrice>
  store: BudgetStore
  now?: () => number
}

export interface Reservation {
  readonly id: number
  readonly agent?: string
  readonly model: string
  readonly microUsd: number
}

export interface BudgetStatus {
  day: string
  members: number
  capMicroUsd?: number
  sliceMicroUsd: number
  spentMicroUsd: number
  reservedMicroUsd: number
  agents: Array<{ agent: string, capMicroUsd: number, sliceMicroUsd: number, spentMicroUsd: number, reservedMicroUsd: number }>
}

export interface Budget {
  start: () => Promise<void>
  /** Price of a model, or undefined when the configuration names none. */
  price: (model: string) => ModelPrice | undefined
  /** Cost of a call in micro-USD (rounded up). */
  cost: (model: string, tokensIn: number, tokensOut: number) => number
  /** Reserves the worst case of a call, or throws BudgetExceededError. Synchronous: no await between check and add. */
  reserve: (call: { agent?: string, model: string, promptTokens: number, maxTokens: number }) => Reservation
  /** Replaces the reservation by the actual cost; returns that cost. */
  settle: (reservation: Reservation, used: { tokensIn: number, tokensOut: number }) => Promise<number>
  /** Drops a reservation of a call that sent nothing billable. */
  release: (reservation: Reservation) => void
  status: () => BudgetStatus
}

export function utcDay (ms: number): string {
  return new Date(ms).toISOString().slice(0, 10)
}

/** A rough prompt size: ~4 characters per token, rounded up, plus a little per message. */
export function estimatePromptTokens (messages: Array<{ content: string }>): number {
  let chars = 0
  for (const m of messages) chars += m.content.length
  return Math.ceil(chars / 3) + 4 * messages.length
}

export function createBudget (components: BudgetComponents): Budget {
  const now = components.now ?? Date.now
  let spend: DaySpend = { day: utcDay(now()), members: 1, total: 0, agents: {} }
  const open = new Map<number, Reservation>()
  let nextId = 1
  let saving: Promise<void> = Promise.resolve()

  function today (): DaySpend {
    const day = utcDay(now())
    if (spend.day !== day) {
      spend = { day, members: 1, total: 0, agents: {} }
    }
    spend.members = Math.max(spend.members, components.members(), 1)
    return spend
  }

  function reserved (agent?: string): number {
    let sum = 0
    for (const r of open.values()) if (agent == null || r.agent === agent) sum += r.microUsd
    return sum
  }

  function slice (cap: number, members: number): number {
    return Math.floor(cap / members)
  }

  function price (model: string): ModelPrice | undefined {
    return components.prices()[model]
  }

  function cost (model: string, tokensIn: number, tokensOut: number): number {
    const p = price(model)
    if (p == null) return 0
    return Math.ceil(tokensIn * p.in + tokensOut * p.out)
  }

  async function persist (): Promise<void> {
    const snapshot: DaySpend = { ...spend, agents: { ...spend.agents } }
    saving = saving.then(async () => { await components.store.save(snapshot) })
    await saving
  }

  return {
    async start () {
      const stored = await components.store.load()
      if (stored != null && stored.day === utcDay(now())) spend = stored
    },
    price,
    cost,
    reserve (call) {
      const p = price(call.model)
      if (p == null) throw new BudgetExceededError(`model ${call.model} has no price in this device's configuration (llm.prices in config.json), so no cloud spend can be reserved for it`)
      const worst = cost(call.model, call.promptTokens, call.maxTokens)
      const day = today()
      const caps = components.caps()
      if (caps.dayMicroUsd == null) throw new BudgetExceededError('the hive has no cloud budget; set one with "hive-node budget --day USD"')
      const daySlice = slice(caps.dayMicroUsd, day.members)
      if (day.total + reserved() + worst > daySlice) {
        throw new BudgetExceededError(`a call to ${call.model} may cost up to ${usd(worst)}, and this device has ${usd(Math.max(0, daySlice - day.total - reserved()))} left of its slice ` +
          `(${usd(daySlice)} = ${usd(caps.dayMicroUsd)} / ${day.members} members) of today's cap; raise it with "hive-node budget --day USD" or lower maxTokens`)
      }
      if (call.agent != null) {
        const agentCap = caps.agents[call.agent]
        if (agentCap != null) {
          const agentSlice = slice(agentCap, day.members)
          const used = (day.agents[call.agent] ?? 0) + reserved(call.agent)
          if (used + worst > agentSlice) {
            throw new BudgetExceededError(`agent ${call.agent.slice(0, 12)}… may spend ${usd(agentSlice)} a day on this device (${usd(agentCap)} / ${day.members} members) and has ${usd(Math.max(0, agentSlice - used))} left; ` +
              `this call may cost up to ${usd(worst)}; raise it with "hive-node budget --agent DIGEST=USD"`)
          }
        }
      }
      const reservation: Reservation = { id: nextId++, model: call.model, microUsd: worst, ...(call.agent != null ? { agent: call.agent } : {}) }
      open.set(reservation.id, reservation)
      return reservation
    },
    async settle (reservation, used) {
      if (!open.delete(reservation.id)) return 0
      const actual = cost(reservation.model, used.tokensIn, used.tokensOut)
      const day = today()
      day.total += actual
      if (reservation.agent != null) day.agents[reservation.agent] = (day.agents[reservation.agent] ?? 0) + actual
      await persist()
      return actual
    },
    release (reservation) {
      open.delete(reservation.id)
    },
    status () {
      const day = today()
      const caps = components.caps()
      const agents = new Set([...Object.keys(caps.agents), ...Object.keys(day.agents)])
      return {
        day: day.day,
        members: day.members,
        ...(caps.dayMicroUsd != null ? { capMicroUsd: caps.dayMicroUsd } : {}),
        sliceMicroUsd: caps.dayMicroUsd != null ? slice(caps.dayMicroUsd, day.members) : 0,
        spentMicroUsd: day.total,
        reservedMicroUsd: reserved(),
        agents: [...agents].sort().map(agent => ({
          agent,
          capMicroUsd: caps.agents[agent] ?? 0,
          sliceMicroUsd: caps.agents[agent] != null ? slice(caps.agents[agent], day.members) : 0,
          spentMicroUsd: day.agents[agent] ?? 0,
          reservedMicroUsd: reserved(agent)
        }))
      }
    }
  }
}

export function usd (microUsd: number): string {
  return `$${(microUsd / 1e6).toFixed(microUsd < 10_000 ? 6 : 4)}`
}
