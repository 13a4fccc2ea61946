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
import type { WireEntry } from '../../protocol/membership/index.ts'
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
export async function freePorts (count: number): Promise<number[]> {
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

/** What the first device needs of another to add it: its PeerId, its name, its addresses. */
export interface MemberDetails { peerId: string, name: string, addrs: string[] }

/**
 * The signed entries pairing makes, without the invite exchange: `first` (opened, not started)
 * signs an `add` entry for each other device in turn, with its addresses as a dialling hint.
 * Returns the list each other device adopts: the whole list (`together`), or the list as it stood
 * when that device was added (`one-by-one`).
 */
export async function memberLists (first: HiveNode, others: MemberDetails[], formation: 'together' | 'one-by-one' = 'together'): Promise<{ hiveId: string, lists: WireEntry[][] }> {
  const membership = first.hive.membership
  const lists: WireEntry[][] = []
  for (const other of others) {
    if (!membership.isMember(other.peerId)) await membership.add(other.peerId, { name: other.name, addrs: other.addrs })
    if (formation === 'one-by-one') lists.push(membership.entries().map(toWire))
  }
  const whole = membership.entries().map(toWire)
  return { hiveId: membership.hiveId, lists: others.map((_, i) => lists[i] ?? whole) }
}

/**
 * A device (opened, not started) adopts the hive's member list, as it does at the end of pairing.
 * Given the `inviter` (the device that added it), it first remembers its addresses, as pairing
 * does: a device that adopted a short list can then reach the inviter, which knows every later
 * member, even when the inviter is not its neighbour and no one else it knows dials it.
 */
export async function adoptList (node: HiveNode, hiveId: string, list: WireEntry[], inviter?: MemberDetails): Promise<void> {
  if (node.hive.membership.hiveId === hiveId) return
  if (inviter != null) await node.hive.membership.rememberAddresses(inviter.peerId, inviter.addrs)
  await node.hive.membership.adopt(hiveId, list)
}

/**
 * Makes `nodes` (opened, not started) one hive: the first signs an `add` entry for each other,
 * with its address as a dialling hint, and each other adopts the list (`memberLists`). The same entries
 * pairing makes, without the invite exchange; and, as a joiner does, each other remembers where
 * its inviter (the first) listens. Without that, in a hive formed one by one, the earliest
 * devices knew an address only of members that knew less than they did and refused every later
 * one, and the one member that could tell them the rest was never dialled: 5 of 24 were left
 * knowing 2–6 members, with no connection at all.
 */
export async function formHive (nodes: HiveNode[], addrs: string[][], formation: 'together' | 'one-by-one' = 'together'): Promise<void> {
  const [first, ...rest] = nodes
  if (first == null) return
  const { hiveId, lists } = await memberLists(first, rest.map((node, i) => ({ peerId: node.peerId.toString(), name: node.name, addrs: addrs[i + 1] ?? [] })), formation)
  const inviter = { peerId: first.peerId.toString(), name: first.name, addrs: addrs[0] ?? [] }
  await Promise.all(rest.map(async (node, i) => { await adoptList(node, hiveId, lists[i]!, inviter) }))
}

/** How a virtual device's node is built: the init `start` builds, on loopback. */
export interface DeviceOptions {
  /** The hive's one transpile cache. */
  agentsCacheDir: string
  /** Parent of the temp data directory. Default the system's temp directory. */
  tmpDir?: string
  logLevel?: LogLevel
  logSink?: (line: string) => void
  extra?: Partial<HiveNodeInit>
}

/** Opens (does not start) the node of one device, listening on `port` of loopback; returns it with its init and data directory. */
export async function openDevice (profile: DeviceProfile, port: number, options: DeviceOptions): Promise<{ node: HiveNode, init: HiveNodeInit, dir: string }> {
  const dir = await mkdtemp(join(options.tmpDir ?? tmpdir(), `hive-sim-${profile.name}-`))
  const logger: Logger = createLogger(profile.name, { level: options.logLevel ?? 'error', ...(options.logSink != null ? { sink: options.logSink } : {}) })
  const extra = options.extra ?? {}
  const init: HiveNodeInit = {
    dataDir: dir,
    listen: [`/ip4/127.0.0.1/tcp/${port}`],
    apiPort: 0,
    mdns: false,
    name: profile.name,
    addressScope: 'loopback',
    // every node dials from 127.0.0.1: lift the per-host inbound rate limit
    inboundConnectionThreshold: 10_000,
    agentsCacheDir: options.agentsCacheDir,
    // many nodes share one event loop: a ping answered late is not a dead device
    pingTimeoutMs: VIRTUAL_PING_TIMEOUT_MS,
    logger,
    ...extra,
    capabilities: { ollamaUrl: null, ...extra.capabilities, probe: profileProbe(profile) }
  }
  try {
    return { node: await HiveNode.open(init), init, dir }
  } catch (err) {
    await rm(dir, { recursive: true, force: true, maxRetries: 5 })
    throw err
  }
}

/** Starts the opened nodes, `concurrency` at a time; a node whose reserved port was taken meanwhile is opened again on another. */
export async function startDevices (devices: Array<{ node: HiveNode, init: HiveNodeInit }>, concurrency: number): Promise<void> {
  await pool(devices, concurrency, async (device) => {
    try {
      await device.node.start()
    } catch (err) {
      // the port reserved for it was taken meanwhile (another node's outgoing connection may
      // get it): start on another; the others learn the new address when it dials them
      if ((err as Error).name !== 'UnsupportedListenAddressesError') throw err
      const [port] = await freePorts(1)
      device.init = { ...device.init, listen: [`/ip4/127.0.0.1/tcp/${port!}`] }
      device.node = await HiveNode.open(device.init)
      await device.node.start()
    }
  })
}

export async function startVirtualHive (init: VirtualHiveInit): Promise<VirtualHive> {
  const { profiles } = init
  const dirs: string[] = []
  const devices: VirtualDevice[] = []
  const restore = new Map<string, () => void>()
  // one transpile cache for the whole hive: each agent is transpiled once, not once per device
  const agentsCache = await mkdtemp(join(init.tmpDir ?? tmpdir(), 'hive-sim-agents-'))
  dirs.push(agentsCache)
  const stop = async (): Promise<void> => {
    await Promise.all(devices.map(async d => { await d.node.stop() }))
    await Promise.all(dirs.map(async dir => { await rm(dir, { recursive: true, force: true, maxRetries: 5 }) }))
  }
  try {
    const ports = await freePorts(profiles.length)
    const opened: Array<{ node: HiveNode, init: HiveNodeInit }> = []
    for (const [i, profile] of profiles.entries()) {
      const one = await openDevice(profile, ports[i]!, {
        agentsCacheDir: agentsCache,
        ...(init.tmpDir != null ? { tmpDir: init.tmpDir } : {}),
        ...(init.logLevel != null ? { logLevel: init.logLevel } : {}),
        ...(init.logSink != null ? { logSink: init.logSink } : {}),
        extra: init.init?.(i) ?? {}
      })
      dirs.push(one.dir)
      opened.push(one)
      devices.push({ profile, node: one.node, state: 'up' })
    }
    const nodes = devices.map(d => d.node)
    await formHive(nodes, ports.map((port, i) => [`/ip4/127.0.0.1/tcp/${port}/p2p/${nodes[i]!.peerId.toString()}`]), init.formation)
    try {
      await startDevices(opened, init.startConcurrency ?? 4)
    } finally {
      for (const [i, one] of opened.entries()) devices[i]!.node = one.node
    }
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
