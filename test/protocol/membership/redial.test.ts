// The membership dialler beyond an all-to-all hive, against a network whose dials fail (a
// member that refuses a device it does not know yet, or one not up): a neighbour not reached
// is dialled again after about a second, not at the next tick; a connection that closes within
// REDIAL_STABLE_MS counts as a failed dial, so the back-off goes on doubling; and the tick
// leaves a neighbour whose redial is pending to it.

import assert from 'node:assert/strict'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { afterEach, beforeEach, describe, it, mock } from 'node:test'
import { REDIAL_STABLE_MS, createMembershipSync, neighboursOf } from '../../../protocol/membership/index.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { Membership, MembershipNetwork } from '../../../protocol/membership/index.ts'

async function peers (count: number): Promise<string[]> {
  return await Promise.all(Array.from({ length: count }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()))
}

/** A hive of `ids` seen from the first, over a network where every dial is refused. */
function refusingHive (ids: string[]): { membership: Membership, network: MembershipNetwork, dials: Map<string, number> } {
  const [self] = ids
  const dials = new Map<string, number>()
  const membership = {
    peerId: self,
    hiveId: 'hive',
    members: () => ids.map(peerId => ({ peerId, self: peerId === self })),
    isMember: (peer: string) => ids.includes(peer),
    addressesOf: () => [],
    addEventListener: () => {},
    removeEventListener: () => {}
  } as unknown as Membership
  const network = {
    handle: async () => {},
    unhandle: async () => {},
    hangUp: async () => {},
    getConnections: () => [],
    getMultiaddrs: () => [],
    peerStore: { get: async () => { throw new Error('not known') } },
    addEventListener: () => {},
    removeEventListener: () => {},
    dial: async (target: unknown) => {
      const peer = String(target)
      dials.set(peer, (dials.get(peer) ?? 0) + 1)
      throw new Error('connection refused: not a member here yet')
    }
  } as unknown as MembershipNetwork
  return { membership, network, dials }
}

/**
 * A hive of `ids` seen from the first, over a network where every dial to a neighbour succeeds
 * and its connection closes at once (`linger` 0) or when the test says (`close`).
 */
function droppingHive (ids: string[]): { membership: Membership, network: MembershipNetwork, dials: Map<string, number[]>, close: (peer: string) => void, linger: { ms: number | undefined } } {
  const { membership } = refusingHive(ids)
  const events = new EventTarget()
  const open = new Set<string>()
  const dials = new Map<string, number[]>()
  const linger: { ms: number | undefined } = { ms: 0 }
  const close = (peer: string): void => {
    if (!open.delete(peer)) return
    events.dispatchEvent(new CustomEvent('peer:disconnect', { detail: peerIdFromString(peer) }))
  }
  const network = {
    handle: async () => {},
    unhandle: async () => {},
    hangUp: async () => {},
    getConnections: (peer?: { toString: () => string }) => [...open].filter(p => peer == null || p === peer.toString()).map(p => ({ remotePeer: peerIdFromString(p), limits: undefined, status: 'open', direction: 'outbound' })),
    getMultiaddrs: () => [],
    peerStore: { get: async () => { throw new Error('not known') } },
    addEventListener: (type: string, fn: EventListener) => { events.addEventListener(type, fn) },
    removeEventListener: (type: string, fn: EventListener) => { events.removeEventListener(type, fn) },
    dialProtocol: async () => { throw new Error('no protocols on this stub') },
    dial: async (target: unknown) => {
      const peer = String(target)
      dials.set(peer, [...(dials.get(peer) ?? []), Date.now()])
      open.add(peer)
      events.dispatchEvent(new CustomEvent('connection:open', { detail: { remotePeer: peerIdFromString(peer), limits: undefined, status: 'open', direction: 'outbound', streams: [] } }))
      if (linger.ms === 0) setImmediate(() => { close(peer) })
      return {}
    }
  } as unknown as MembershipNetwork
  return { membership, network, dials, close, linger }
}

/** Lets a dial the timers started run to its end (its steps are promises, not timers). */
async function settle (): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise(resolve => setImmediate(resolve))
}

/** Advances the mock clock by `ms` in steps of `step`, letting dials run between them. */
async function advance (ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    mock.timers.tick(step)
    await settle()
  }
}

describe('the membership dialler when a connection does not last', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }) })
  afterEach(() => { mock.timers.reset() })

  it('counts a connection closed within REDIAL_STABLE_MS as a failed dial: the back-off doubles, and one that lasted resets it', async () => {
    const ids = await peers(12)
    const { membership, network, dials, close, linger } = droppingHive(ids)
    const sync = createMembershipSync({ redialIntervalMs: 600_000 }, { membership, network, gate: { allows: () => true } })
    const t0 = Date.now()
    await sync.start()
    try {
      await settle()
      const neighbour = [...neighboursOf(ids[0]!, ids)][0]!
      await advance(31_000)
      const gaps = (times: number[]): number[] => times.slice(1).map((t, i) => t - times[i]!)
      const times = dials.get(neighbour) ?? []
      assert.equal(times[0], t0, 'dialled at start')
      // accepted and dropped each time: 2, 4, 8, 16 s (a second each, without the rule)
      assert.deepEqual(gaps(times), [2_000, 4_000, 8_000, 16_000])

      // a connection that stays up REDIAL_STABLE_MS, then closes: dialled again after 1 s
      linger.ms = undefined
      await advance(32_000)
      const before = dials.get(neighbour)!.length
      await advance(REDIAL_STABLE_MS)
      const closedAt = Date.now()
      close(neighbour)
      linger.ms = 0
      await advance(1_000)
      assert.equal(dials.get(neighbour)!.length, before + 1)
      assert.equal(dials.get(neighbour)!.at(-1)! - closedAt, 1_000)
    } finally {
      await sync.stop()
    }
  })
})

describe('the membership dialler\'s tick when a redial is pending', () => {
  beforeEach(() => { mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }) })
  afterEach(() => { mock.timers.reset() })

  it('leaves a neighbour to its back-off: dialled at 0, 1, 3 and 7 s with a tick every 0.9 s', async () => {
    const ids = await peers(12)
    const { membership, network } = refusingHive(ids)
    const times = new Map<string, number[]>()
    const dial = network.dial.bind(network)
    network.dial = (async (target: Parameters<typeof dial>[0], options?: Parameters<typeof dial>[1]) => {
      const peer = String(target)
      times.set(peer, [...(times.get(peer) ?? []), Date.now()])
      return await dial(target, options)
    }) as typeof network.dial
    const sync = createMembershipSync({ redialIntervalMs: 900 }, { membership, network, gate: { allows: () => true } })
    const t0 = Date.now()
    await sync.start()
    try {
      await settle()
      await advance(7_500)
      const neighbours = [...neighboursOf(ids[0]!, ids)]
      for (const peer of neighbours) {
        assert.deepEqual((times.get(peer) ?? []).map(t => t - t0), [0, 1_000, 3_000, 7_000], peer)
      }
    } finally {
      await sync.stop()
    }
  })
})

describe('the membership dialler when a dial fails', () => {
  it('beyond an all-to-all hive, dials an unreached neighbour again within seconds, with the tick 10 minutes away', async () => {
    const ids = await peers(12)
    const { membership, network, dials } = refusingHive(ids)
    const sync = createMembershipSync({ redialIntervalMs: 600_000 }, { membership, network, gate: { allows: () => true } })
    await sync.start()
    try {
      const neighbours = [...neighboursOf(ids[0]!, ids)]
      assert.ok(neighbours.length > 0 && neighbours.length < ids.length - 1)
      await waitFor(() => neighbours.every(n => (dials.get(n) ?? 0) >= 2), { timeoutMs: 20_000, message: 'every neighbour dialled a second time' })
      for (const peer of ids.slice(1)) if (!neighbours.includes(peer)) assert.equal(dials.get(peer) ?? 0, 0, 'a member that is not a neighbour is not dialled')
    } finally {
      await sync.stop()
    }
  })

})
