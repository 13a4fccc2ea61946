// A virtual hive: N real nodes (HiveNode, as `start` builds it: libp2p on loopback, LevelDB in
// a temp directory, the sandbox, the ledger) in this one process, each reading a device profile
// instead of this machine. The hive is formed before the nodes start, with the signed entries
// pairing makes (the first device adds every other; each adopts the list), so all N start as
// members of one hive and membership's own dialler connects them, as devices already paired do
// when they come back on.

import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { toWire } from '../../protocol/index.ts'
import { HiveNode } from '../hive-node.ts'
import { createLogger } from '../logger.ts'
import { profileProbe } from './devices.ts'
import type { HiveNodeInit } from '../hive-node.ts'
import type { LogLevel, Logger } from '../logger.ts'
import type { DeviceProfile } from './devices.ts'
import type { PeerId } from '@libp2p/interface'

export type DeviceState = 'up' | 'cut' | 'killed'

export interface VirtualDevice {
  profile: DeviceProfile
  node: HiveNode
  state: DeviceState
}

/** The connection monitor's ping timeout in a virtual hive (libp2p's floor is 5 s). */
export const VIRTUAL_PING_TIMEOUT_MS = 30_000

export interface VirtualHiveInit {
  profiles: DeviceProfile[]
  /** Extra init for each node (tests shorten capability intervals, placement windows). */
  init?: (index: number) => Partial<HiveNodeInit>
  logLevel?: LogLevel
  /** Where the nodes' log lines go (default stderr); each is labelled with its device's name. */
  logSink?: (line: string) => void
  /** Nodes started at once. Default 4. */
  startConcurrency?: number
  /** Parent of the temp data directories. Default the system's temp directory. */
  tmpDir?: string
  /**
   * How the hive is formed before the nodes start. `together` (default): every device adopts the
   * whole member list. `one-by-one`: as pairing each in turn does, a device adopts the list as it
   * stood when it was added, so the earlier ones learn of the later ones only through
   * membership's replication once they run.
   */
  formation?: 'together' | 'one-by-one'
}

export interface VirtualHive {
  devices: VirtualDevice[]
  /** Nodes that are up (not killed; a cut-off device is up, just unreachable). */
  live: () => HiveNode[]
  device: (name: string) => VirtualDevice
  /** Stops a device at once, as one that dies or is switched off. */
  kill: (name: string) => Promise<void>
  /** Cuts a device off the network: it refuses every connection both ways, and its open ones close. */
  cut: (name: string) => Promise<void>
  /** Lets a cut-off device connect again. */
  heal: (name: string) => void
  /** Stops every node and removes every data directory. */
  stop: () => Promise<void>
}

/** Reserves `count` distinct free TCP ports on loopback (held open until all are found). */
async function freePorts (count: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: count }, async () => {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(0, '127.0.0.1', () => { resolve() })
    })
    return server
  }))
  const ports = servers.map(s => (s.address() as { port: number }).port)
  await Promise.all(servers.map(async s => { await new Promise(resolve => s.close(resolve)) }))
  return ports
}

async function pool<T> (items: T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    for (let i = next++; i < items.length; i = next++) await work(items[i]!, i)
  }))
}

/**
 * Makes `nodes` (opened, not started) one hive: the first signs an `add` entry for each other,
 * with its address as a dialling hint, and each other adopts the whole list. The same entries
 * pairing makes, without the invite exchange; and, as a joiner does, each other remembers where
 * its inviter (the first) listens. Without that, in a hive formed one by one, the earliest
 * devices knew an address only of members that knew less than they did and refused every later
 * one, and the one member that could tell them the rest was never dialled: 5 of 24 were left
 * knowing 2–6 members, with no connection at all.
 */
export async function formHive (nodes: HiveNode[], addrs: string[][], formation: 'together' | 'one-by-one' = 'together'): Promise<void> {
  const [first, ...rest] = nodes
  if (first == null) return
  const membership = first.hive.membership
  const lists: Array<ReturnType<typeof toWire>[]> = []
  for (const [i, node] of rest.entries()) {
    const peer = node.peerId.toString()
    if (!membership.isMember(peer)) await membership.add(peer, { name: node.name, addrs: addrs[i + 1] ?? [] })
    if (formation === 'one-by-one') lists.push(membership.entries().map(toWire))
  }
  const whole = membership.entries().map(toWire)
  await Promise.all(rest.map(async (node, i) => {
    if (node.hive.membership.hiveId !== membership.hiveId) await node.hive.membership.adopt(membership.hiveId, lists[i] ?? whole)
    await node.hive.membership.rememberAddresses(first.peerId.toString(), addrs[0] ?? [])
  }))
}

export async function startVirtualHive (init: VirtualHiveInit): Promise<VirtualHive> {
  const { profiles } = init
  const dirs: string[] = []
  const devices: VirtualDevice[] = []
  const restore = new Map<string, () => void>()
  const inits: HiveNodeInit[] = []
  // one transpile cache for the whole hive: each agent is transpiled once, not once per device
  const agentsCache = await mkdtemp(join(init.tmpDir ?? tmpdir(), 'hive-sim-agents-'))
  dirs.push(agentsCache)
  const stop = async (): Promise<void> => {
    await Promise.all(devices.map(async d => { await d.node.stop() }))
    await Promise.all(dirs.map(async dir => { await rm(dir, { recursive: true, force: true, maxRetries: 5 }) }))
  }
  try {
    const ports = await freePorts(profiles.length)
    for (const [i, profile] of profiles.entries()) {
      const dir = await mkdtemp(join(init.tmpDir ?? tmpdir(), `hive-sim-${profile.name}-`))
      dirs.push(dir)
      const logger: Logger = createLogger(profile.name, { level: init.logLevel ?? 'error', ...(init.logSink != null ? { sink: init.logSink } : {}) })
      const extra = init.init?.(i) ?? {}
      const nodeInit: HiveNodeInit = {
        dataDir: dir,
        listen: [`/ip4/127.0.0.1/tcp/${ports[i]!}`],
        apiPort: 0,
        mdns: false,
        name: profile.name,
        addressScope: 'loopback',
        // every node dials from 127.0.0.1: lift the per-host inbound rate limit
        inboundConnectionThreshold: 10_000,
        agentsCacheDir: agentsCache,
        // many nodes share one event loop: a ping answered late is not a dead device
        pingTimeoutMs: VIRTUAL_PING_TIMEOUT_MS,
        logger,
        ...extra,
        capabilities: { ollamaUrl: null, ...extra.capabilities, probe: profileProbe(profile) }
      }
      inits.push(nodeInit)
      const node = await HiveNode.open(nodeInit)
      devices.push({ profile, node, state: 'up' })
    }
    const nodes = devices.map(d => d.node)
    await formHive(nodes, ports.map((port, i) => [`/ip4/127.0.0.1/tcp/${port}/p2p/${nodes[i]!.peerId.toString()}`]), init.formation)
    await pool(devices, init.startConcurrency ?? 4, async (device, i) => {
      try {
        await device.node.start()
      } catch (err) {
        // the port reserved for it was taken meanwhile (another node's outgoing connection may
        // get it): start on another; the others learn the new address when it dials them
        if ((err as Error).name !== 'UnsupportedListenAddressesError') throw err
        const [port] = await freePorts(1)
        const again = { ...inits[i]!, listen: [`/ip4/127.0.0.1/tcp/${port!}`] }
        device.node = await HiveNode.open(again)
        await device.node.start()
      }
    })
  } catch (err) {
    await stop().catch(() => {})
    throw err
  }

  const device = (name: string): VirtualDevice => {
    const found = devices.find(d => d.profile.name === name)
    if (found == null) throw new RangeError(`no device named ${name}; devices are ${devices.map(d => d.profile.name).join(', ')}`)
    return found
  }

  return {
    devices,
    live: () => devices.filter(d => d.state !== 'killed').map(d => d.node),
    device,
    kill: async (name) => {
      const d = device(name)
      if (d.state === 'killed') return
      d.state = 'killed'
      await d.node.stop()
    },
    cut: async (name) => {
      const d = device(name)
      if (d.state !== 'up') return
      d.state = 'cut'
      // libp2p consults this very object on every dial and every inbound connection
      const gater = d.node.hive.gate.connectionGater
      const saved = { ...gater }
      const refuse = async (): Promise<boolean> => true
      gater.denyDialPeer = refuse
      gater.denyInboundEncryptedConnection = refuse
      restore.set(name, () => { Object.assign(gater, saved) })
      const peers = new Map<string, PeerId>()
      for (const c of d.node.libp2p.getConnections()) peers.set(c.remotePeer.toString(), c.remotePeer)
      await Promise.all([...peers.values()].map(async p => { await d.node.libp2p.hangUp(p).catch(() => {}) }))
    },
    heal: (name) => {
      const d = device(name)
      if (d.state !== 'cut') return
      d.state = 'up'
      restore.get(name)?.()
      restore.delete(name)
      d.node.hive.sync.dialMembers()
    },
    stop
  }
}
