// A virtual hive spread over worker threads, still one process: each shard is a Worker holding
// some of the hive's nodes (HiveNode, as `start` builds them, on loopback), so the nodes use every
// core instead of one event loop. Nodes in different shards connect over loopback TCP as any two
// devices do. The main thread forms the hive as `startVirtualHive` does (the first device signs
// the member entries one by one, each other adopts its list, knowing the first device's address
// as pairing leaves it knowing its inviter's) by asking the shards, then asks them
// for phases by name; each phase runs on the shard's own nodes and answers by message.
// A shard that throws in a phase, fails or exits rejects what is asked of any shard with
// ShardFailedError naming it, so a caller never waits on a hive that lost part of itself.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker, parentPort, workerData } from 'node:worker_threads'
import { ShardFailedError } from '../errors.ts'
import { adoptList, freePorts, memberLists, openDevice, startDevices } from './virtual-hive.ts'
import type { HiveNode, HiveNodeInit } from '../hive-node.ts'
import type { LogLevel } from '../logger.ts'
import type { DeviceProfile } from './devices.ts'
import type { MemberDetails } from './virtual-hive.ts'
import type { WireEntry } from '../../protocol/membership/index.ts'
import type { ResourceLimits } from 'node:worker_threads'

/** What a shard is given when it starts: its devices (by index in the hive) and how to build their nodes. */
export interface ShardData {
  name: string
  devices: Array<{ index: number, profile: DeviceProfile, port: number }>
  agentsCacheDir: string
  tmpDir?: string
  logLevel: LogLevel
  /** Extra init for every node; plain data, as it crosses to the worker. */
  extra: Partial<HiveNodeInit>
}

/** A device in its shard. */
export interface ShardDevice { index: number, profile: DeviceProfile, node: HiveNode, init: HiveNodeInit, dir: string }

export interface ShardState { data: ShardData, devices: ShardDevice[] }

/** A phase a shard runs on its own nodes; what it returns goes back to the main thread (structured clone). */
export type ShardPhase = (state: ShardState, args: any) => Promise<unknown>

interface Request { id: number, phase: string, args: unknown }
type Reply = { id: number, value: unknown } | { id: number, error: { name: string, message: string } } | { log: string }

const builtin: Record<string, ShardPhase> = {
  open: async (state) => {
    const { data } = state
    for (const d of data.devices) {
      const opened = await openDevice(d.profile, d.port, {
        agentsCacheDir: data.agentsCacheDir,
        ...(data.tmpDir != null ? { tmpDir: data.tmpDir } : {}),
        logLevel: data.logLevel,
        logSink: (line) => { parentPort?.postMessage({ log: line } satisfies Reply) },
        extra: data.extra
      })
      state.devices.push({ index: d.index, profile: d.profile, ...opened })
    }
    return state.devices.map(d => ({ index: d.index, peerId: d.node.peerId.toString() }))
  },
  members: async (state, args: { first: number, others: MemberDetails[], formation: 'together' | 'one-by-one' }) => {
    const first = state.devices.find(d => d.index === args.first)
    if (first == null) throw new RangeError(`device ${args.first} is not in ${state.data.name}`)
    return await memberLists(first.node, args.others, args.formation)
  },
  adopt: async (state, args: { hiveId: string, lists: Array<[number, WireEntry[]]>, inviter: MemberDetails }) => {
    const lists = new Map(args.lists)
    await Promise.all(state.devices.map(async d => {
      const list = lists.get(d.index)
      if (list != null) await adoptList(d.node, args.hiveId, list, args.inviter)
    }))
  },
  start: async (state, args: { concurrency: number }) => {
    await startDevices(state.devices, args.concurrency)
  },
  stop: async (state) => {
    await Promise.all(state.devices.map(async d => { await d.node.stop() }))
    await Promise.all(state.devices.map(async d => { await rm(d.dir, { recursive: true, force: true, maxRetries: 5 }) }))
  }
}

/** The worker side: answers the main thread's requests with `phases` (and the built-in open, members, adopt, start, stop). */
export function serveShard (phases: Record<string, ShardPhase>): void {
  const port = parentPort
  if (port == null) throw new Error('serveShard runs in a worker thread started by startShardedHive')
  const state: ShardState = { data: workerData as ShardData, devices: [] }
  const table = { ...phases, ...builtin }
  port.on('message', (req: Request) => {
    void (async () => {
      try {
        const phase = table[req.phase]
        if (phase == null) throw new RangeError(`no phase ${req.phase}; phases are ${Object.keys(table).join(', ')}`)
        port.postMessage({ id: req.id, value: await phase(state, req.args) } satisfies Reply)
      } catch (err) {
        const e = err instanceof Error ? err : new Error(String(err))
        port.postMessage({ id: req.id, error: { name: e.name, message: e.message } } satisfies Reply)
      }
    })()
  })
}

export interface Shard {
  name: string
  /** Indices in the hive of the devices this shard holds. */
  indices: number[]
  worker: Worker
  ask: <T>(phase: string, args?: unknown) => Promise<T>
}

export interface ShardedHiveInit {
  profiles: DeviceProfile[]
  shards: number
  /** The worker's module: it calls `serveShard` with its phases. */
  worker: URL
  extra?: Partial<HiveNodeInit>
  formation?: 'together' | 'one-by-one'
  /** Nodes each shard starts at once. Default 4. */
  startConcurrency?: number
  logLevel?: LogLevel
  logSink?: (line: string) => void
  tmpDir?: string
  resourceLimits?: ResourceLimits
}

export interface ShardedHive {
  shards: Shard[]
  profiles: DeviceProfile[]
  /** PeerId of each device, by index in the hive. */
  peers: string[]
  shardOf: (index: number) => Shard
  /** Asks every shard for a phase (`args` may be given per shard) and gathers their answers in shard order. */
  all: <T>(phase: string, args?: unknown | ((shard: Shard) => unknown)) => Promise<T[]>
  /** Stops every node, ends every worker and removes every data directory. */
  stop: () => Promise<void>
}

/** Starts a virtual hive of `profiles` over `shards` worker threads, device i in shard i mod shards, formed and started. */
export async function startShardedHive (init: ShardedHiveInit): Promise<ShardedHive> {
  const { profiles } = init
  const count = Math.max(1, Math.min(init.shards, profiles.length))
  const agentsCacheDir = await mkdtemp(join(init.tmpDir ?? tmpdir(), 'hive-sim-agents-'))
  let stopping = false
  // the first shard failure rejects everything asked of the hive from then on
  const failure = Promise.withResolvers<never>()
  failure.promise.catch(() => {})
  let failed: ShardFailedError | undefined
  const fail = (err: ShardFailedError): void => {
    if (failed != null || stopping) return
    failed = err
    failure.reject(err)
  }

  const ports = await freePorts(profiles.length)
  const shards: Shard[] = Array.from({ length: count }, (_, s) => {
    const name = `shard-${s}`
    const indices = profiles.map((_, i) => i).filter(i => i % count === s)
    const data: ShardData = {
      name,
      devices: indices.map(i => ({ index: i, profile: profiles[i]!, port: ports[i]! })),
      agentsCacheDir,
      ...(init.tmpDir != null ? { tmpDir: init.tmpDir } : {}),
      logLevel: init.logLevel ?? 'error',
      extra: init.extra ?? {}
    }
    const worker = new Worker(init.worker, { workerData: data, ...(init.resourceLimits != null ? { resourceLimits: init.resourceLimits } : {}) })
    const pending = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void }>()
    let next = 0
    let gone: ShardFailedError | undefined
    const end = (err: ShardFailedError): void => {
      gone ??= err
      for (const p of pending.values()) p.reject(gone)
      pending.clear()
      fail(gone)
    }
    worker.on('message', (m: Reply) => {
      if ('log' in m) { (init.logSink ?? ((line: string) => { process.stderr.write(line + '\n') }))(m.log); return }
      const p = pending.get(m.id)
      if (p == null) return
      pending.delete(m.id)
      if ('error' in m) {
        const err = new ShardFailedError(name, `${m.error.name}: ${m.error.message}`)
        p.reject(err)
        fail(err)
      } else {
        p.resolve(m.value)
      }
    })
    worker.on('error', (err) => { end(new ShardFailedError(name, `failed: ${err.name}: ${err.message}`)) })
    worker.on('messageerror', (err) => { end(new ShardFailedError(name, `sent a message that could not be read: ${err.message}`)) })
    worker.on('exit', (code) => { end(new ShardFailedError(name, `exited with code ${code}`)) })
    const ask = async <T>(phase: string, args?: unknown): Promise<T> => {
      if (gone != null) throw gone
      if (failed != null && !stopping) throw failed
      const id = next++
      const { promise, resolve, reject } = Promise.withResolvers<unknown>()
      pending.set(id, { resolve, reject })
      worker.postMessage({ id, phase, args } satisfies Request)
      // another shard's failure ends the wait too (except while stopping, when each shard stops its own)
      return await (stopping ? promise : Promise.race([promise, failure.promise])) as T
    }
    return { name, indices, worker, ask }
  })

  const shardOf = (index: number): Shard => {
    const shard = shards[index % count]
    if (shard == null || index < 0 || index >= profiles.length) throw new RangeError(`no device ${index} in a hive of ${profiles.length}`)
    return shard
  }
  const all = async <T>(phase: string, args?: unknown | ((shard: Shard) => unknown)): Promise<T[]> =>
    await Promise.all(shards.map(async s => await s.ask<T>(phase, typeof args === 'function' ? (args as (shard: Shard) => unknown)(s) : args)))
  const stop = async (): Promise<void> => {
    stopping = true
    // a shard that cannot stop its nodes within a minute is ended with them
    await Promise.all(shards.map(async s => {
      await Promise.race([s.ask('stop').catch(() => {}), new Promise(resolve => setTimeout(resolve, 60_000).unref())])
      await s.worker.terminate()
    }))
    await rm(agentsCacheDir, { recursive: true, force: true, maxRetries: 5 })
  }

  const peers: string[] = []
  try {
    for (const opened of await all<Array<{ index: number, peerId: string }>>('open')) {
      for (const { index, peerId } of opened) peers[index] = peerId
    }
    // formed as pairing forms it: the first device adds every other in turn, each adopts its list
    const details = profiles.map((p, i) => ({ peerId: peers[i]!, name: p.name, addrs: [`/ip4/127.0.0.1/tcp/${ports[i]!}/p2p/${peers[i]!}`] }))
    const { hiveId, lists } = await shardOf(0).ask<{ hiveId: string, lists: WireEntry[][] }>('members', { first: 0, others: details.slice(1), formation: init.formation ?? 'together' })
    // each adopts its list knowing where the first device is, as pairing leaves a joiner knowing its inviter's addresses
    await all('adopt', (s: Shard) => ({ hiveId, lists: s.indices.filter(i => i > 0).map(i => [i, lists[i - 1]!]), inviter: details[0]! }))
    await all('start', { concurrency: init.startConcurrency ?? 4 })
  } catch (err) {
    await stop().catch(() => {})
    throw err
  }
  return { shards, profiles, peers, shardOf, all, stop }
}
