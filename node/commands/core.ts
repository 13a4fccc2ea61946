// Core commands: start, stop, status, peers.

import { readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { Option } from 'commander'
import { DEFAULT_API_PORT, DEFAULT_P2P_PORT, parseListen, parsePort } from '../config.ts'
import { table } from '../cli-context.ts'
import { NodeNotRunningError } from '../errors.ts'
import { startMemoryTrim } from '../memory.ts'
import { haltLines } from './control.ts'
import type { HaltView } from '../api/control.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { PeerSummary } from '../hive-node.ts'
import type { MeshMember } from '../api/types.ts'
import { CAPABILITY_COLUMNS, capabilityCells, parseCapabilityFlags } from './tasks.ts'
import type { LogLevel } from '../logger.ts'
import type { LedgerHealth } from '../../ledger/index.ts'
import type { Command } from 'commander'

/** Longest a stop may take before the process exits regardless (the service unit allows 30 s). */
const mib = (bytes: number): number => Math.round(bytes / (1024 * 1024))

export const STOP_BOUND_MS = 20_000

const collect = (value: string, previous: string[] = []): string[] => [...previous, value]

interface StartOptions extends CommonOptions {
  listen?: string[]
  apiPort?: string
  bootstrap?: string[]
  mdns: boolean
  name?: string
  logLevel?: LogLevel
  loopback?: boolean
  capability?: string[]
  netRefuse?: string[]
  relay?: boolean
}

interface Health {
  links?: { lan: number, direct: number, relayed: number }
  name: string
  peerId: string
  version: string
  pid: number
  uptimeMs: number
  dataDir: string
  addresses: string[]
  apiUrl: string
  peerCount: number
  /** Members reached through the mesh without a connection (not neighbours). */
  meshCount?: number
  strangersNearby?: number
  ledger?: LedgerHealth
  halt?: HaltView
}

/** The status line of this device's ledger: ok, or what is damaged and what to do. */
export function ledgerLines (health: LedgerHealth | undefined): string[] {
  if (health === undefined) return []
  if (health.state === 'ok') return ['  ledger     ok']
  return [
    `  ledger     DAMAGED: ${health.reason ?? ''} at seq ${health.seq ?? '?'}: ${health.message ?? ''}`,
    '             no task runs on this device until its chain is whole.',
    `             ${health.recovery ?? ''}`
  ]
}

/** The line that tells the owner about devices nearby that are not in the hive, or nothing. */
/** ` (2 lan, 1 relayed)`: how the connected members are reached, for `status`. */
function linksText (links: Health['links']): string {
  if (links == null) return ''
  const parts = (['lan', 'direct', 'relayed'] as const).filter(k => links[k] > 0).map(k => `${links[k]} ${k}`)
  return parts.length > 0 ? ` (${parts.join(', ')})` : ''
}

/** How a peer is connected, for `peers`: lan, direct, or "relay NAME". */
export function viaText (p: Pick<PeerSummary, 'via' | 'relay'>): string {
  if (p.via === 'relayed') return `relay ${p.relay?.name ?? (p.relay != null ? `…${p.relay.peerId.slice(-8)}` : '')}`.trim()
  return p.via ?? ''
}

/** The members reached through the mesh (beyond a hive of 9, the ones that are not neighbours), by name. */
export function meshLine (mesh: MeshMember[]): string[] {
  if (mesh.length === 0) return []
  return [`${mesh.length} more member${mesh.length === 1 ? '' : 's'} reached through the mesh (not neighbours of this device): ${mesh.map(m => m.name ?? `…${m.peerId.slice(-8)}`).join(', ')}`]
}

export function strangersLine (n: number | undefined): string[] {
  if (n === undefined || n === 0) return []
  return [`${n} device${n === 1 ? '' : 's'} nearby ${n === 1 ? 'is' : 'are'} not in this hive: pair ${n === 1 ? 'it' : 'them'} with "hive-node pair" (then "hive-node join" on ${n === 1 ? 'it' : 'each'})`]
}

/** The names in a folder, or undefined when it does not exist yet. */
async function entriesOf (dir: string): Promise<Set<string> | undefined> {
  try {
    return new Set(await readdir(dir))
  } catch {
    return undefined
  }
}

async function removeCreated (dir: string, before: Set<string> | undefined): Promise<void> {
  if (before === undefined) {
    await rm(dir, { recursive: true, force: true })
    return
  }
  for (const name of await readdir(dir).catch(() => [])) {
    if (!before.has(name)) await rm(join(dir, name), { recursive: true, force: true })
  }
}

/** What a start failure means for the user, for the failures a user can cause and mend. */
function startFailure (err: unknown, apiPort: number): Error {
  const message = err instanceof Error ? err.message : String(err)
  if (/EADDRINUSE/.test(message)) {
    if (new RegExp(`127\\.0\\.0\\.1:${apiPort}\\b`).test(message)) {
      return new Error(`the API port ${apiPort} is in use (another hive-node, with another --data?): choose another with --api-port N, or --api-port 0 to pick a free one`)
    }
    const addr = /(\/ip[46]\/[^\s:]+\/tcp\/\d+)/.exec(message)?.[1] ?? 'the listen address'
    return new Error(`${addr} is in use (another hive-node, with another --data?): choose another port with --listen PORT, or --listen 0 to pick a free one`)
  }
  if (/EADDRNOTAVAIL/.test(message)) {
    return new Error('a --listen address is not one of this device\'s addresses: give a port, or a multiaddr with an address this device has')
  }
  return err instanceof Error ? err : new Error(message)
}

function formatDuration (ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m}m ${s % 60}s`
  return `${Math.floor(m / 60)}h ${m % 60}m`
}

export function register (program: Command, cli: CliContext): void {
  program.command('start')
    .description('start this device\'s node and run until stopped (Ctrl-C, SIGTERM or "hive-node stop")')
    .option('--listen <multiaddr|port>', `libp2p listen address, repeatable (default /ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT})`, collect)
    .option('--api-port <port>', `local API port on 127.0.0.1, 0 picks a free one (default ${DEFAULT_API_PORT})`)
    .option('--bootstrap <multiaddr>', 'a known peer to dial, repeatable', collect)
    .option('--no-mdns', 'do not discover peers on the LAN by mDNS')
    .option('--relay', 'relay for this hive\'s members (only them) on other networks: for a device the others can reach')
    .option('--name <name>', 'this device\'s name in the hive (default: the host name)')
    .option('--capability <field=value>', 'report this instead of what the device measures, repeatable: power=battery[:PERCENT]|ac, load=N, cores=N, freeMemory=BYTES, totalMemory=BYTES, models=A,B, runtimes=A,B', collect)
    .option('--net-refuse <origin|*>', 'refuse agents this origin over http (https://*.example.org refuses its sub-domains), repeatable; * keeps agents off the network on this device', collect)
    .addOption(new Option('--log-level <level>', 'log detail on stderr').choices(['debug', 'info', 'warn', 'error', 'silent']).default('info'))
    .addOption(new Option('--loopback', 'keep loopback addresses in the DHT (for tests on one machine)').hideHelp())
    .option('--json', 'print the ready event as one line of JSON')
    .action(async (options: StartOptions, command: Command) => {
      const all = command.optsWithGlobals<StartOptions>()
      const dataDir = cli.dataDir(all)
      const listen = (options.listen ?? [String(DEFAULT_P2P_PORT)]).map(parseListen)
      const apiPort = options.apiPort != null ? parsePort(options.apiPort, '--api-port') : DEFAULT_API_PORT
      const capabilityOverrides = parseCapabilityFlags(options.capability ?? [])
      // Loading and starting a node allocates in one burst, which grows V8's young generation
      // to its maximum (64 MiB, most of it resident for good); a running node's allocation is
      // small and steady. Keeping the young generation at its initial size saves ~30 MiB of an
      // idle node's memory for a few more, cheap, young-generation collections.
      setFlagsFromString('--semi-space-growth-factor=1')
      // the node itself loads only here: the other commands talk to a running one over its API
      const { HiveNode } = await import('../hive-node.ts')
      const { promise: stopRequested, resolve } = Promise.withResolvers<string>()
      const onSignal = (signal: string) => () => { resolve(signal) }
      process.once('SIGINT', onSignal('SIGINT'))
      process.once('SIGTERM', onSignal('SIGTERM'))
      const before = await entriesOf(dataDir)
      let node: Awaited<ReturnType<typeof HiveNode.open>> | undefined
      try {
        node = await HiveNode.open({
          capabilityOverrides,
          dataDir,
          listen,
          apiPort,
          bootstrap: options.bootstrap ?? [],
          mdns: options.mdns,
          name: options.name,
          addressScope: options.loopback === true ? 'loopback' : 'lan',
          logLevel: options.logLevel,
          relay: options.relay === true,
          ...(options.netRefuse != null ? { net: { refuse: options.netRefuse } } : {})
        })
        node.addEventListener('stop-requested', () => { resolve('API') }, { once: true })
        await node.start()
      } catch (err) {
        // A failed start leaves nothing behind that it created: no identity, no hive, no db.
        await node?.stop().catch(() => {})
        await removeCreated(dataDir, before)
        throw startFailure(err, apiPort)
      }
      const info = {
        name: node.name,
        peerId: node.peerId.toString(),
        addresses: node.listenAddresses(),
        apiUrl: node.apiUrl,
        dataDir
      }
      // --json: one line, so a supervisor can read the ready event line by line
      if (all.json === true) cli.out(JSON.stringify(info) + '\n')
      else cli.print(all, () => [
        `hive-node "${info.name}" is running`,
        `  peer id    ${info.peerId}`,
        ...info.addresses.map((a, i) => `  ${i === 0 ? 'listening' : '         '}  ${a}`),
        `  api        ${info.apiUrl}`,
        `  data       ${info.dataDir}`,
        'Press Ctrl-C to stop.'
      ].join('\n'), undefined)
      // after the ready line, so the collection that returns the start's garbage delays no one
      const started = node
      const trim = startMemoryTrim({ onTrim: (before, after) => { started.log.debug(`memory: ${mib(before)} MiB resident after a burst, ${mib(after)} MiB after a full collection`) } })
      const why = await stopRequested
      node.log.info(`stopping (${why})`)
      // The stop's bound: every step is bounded on its own (the API cuts lingering
      // connections after its grace); should one still hang, the process exits anyway. What
      // was acknowledged is already on disk (synced writes), so exiting loses nothing.
      setTimeout(() => {
        cli.err(`hive-node did not stop within ${STOP_BOUND_MS / 1000} s; exiting\n`)
        process.exit(1)
      }, STOP_BOUND_MS).unref()
      // A second signal while stopping means the user wants out now.
      process.once('SIGINT', () => process.exit(130))
      process.once('SIGTERM', () => process.exit(143))
      trim.stop()
      await node.stop()
      cli.err('hive-node stopped\n')
    })

  program.command('stop')
    .description('stop the running node')
    .option('--json', 'print the result as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      try {
        await cli.api(all).post('/stop')
      } catch (err) {
        if (!(err instanceof NodeNotRunningError)) throw err
        throw new NodeNotRunningError(cli.dataDir(all), undefined, 'nothing to stop')
      }
      cli.print(all, 'hive-node is stopping', { stopping: true })
    })

  program.command('status')
    .description('show the running node: name, peer id, addresses, API, peers')
    .option('--json', 'print as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const health = await cli.api(all).get<Health>('/health')
      cli.print(all, () => [
        `hive-node "${health.name}" ${health.version} is running (pid ${health.pid}, up ${formatDuration(health.uptimeMs)})`,
        `  peer id    ${health.peerId}`,
        ...health.addresses.map((a, i) => `  ${i === 0 ? 'listening' : '         '}  ${a}`),
        `  api        ${health.apiUrl}`,
        `  data       ${health.dataDir}`,
        `  peers      ${health.peerCount} connected${linksText(health.links)}${(health.meshCount ?? 0) > 0 ? `; ${health.meshCount ?? 0} more member${health.meshCount === 1 ? '' : 's'} through the mesh` : ''}`,
        ...ledgerLines(health.ledger),
        ...haltLines(health.halt),
        ...strangersLine(health.strangersNearby)
      ].join('\n'), health)
    })

  program.command('peers')
    .description('list connected peers, by device name')
    .option('--ids', 'show whole PeerIds instead of their last characters')
    .option('--json', 'print as JSON (with names and PeerIds)')
    .action(async (_options: CommonOptions & { ids?: boolean }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions & { ids?: boolean }>()
      const api = cli.api(all)
      const [{ peers, mesh = [] }, health] = await Promise.all([
        api.get<{ peers: PeerSummary[], mesh?: MeshMember[] }>('/peers'),
        api.get<Health>('/health').catch(() => undefined)
      ])
      const id = (peerId: string): string => all.ids === true ? peerId : `…${peerId.slice(-8)}`
      cli.print(all, () => [
        peers.length === 0
          ? 'no peers connected'
          : table(['NAME', 'PEER', 'VIA', 'ADDRESS', 'RTT', ...CAPABILITY_COLUMNS], peers.map(p => [
            p.name ?? '', id(p.peerId), viaText(p), p.addresses[0] ?? '', p.latencyMs != null ? `${p.latencyMs} ms` : '', ...capabilityCells(p.capabilities)
          ])),
        ...meshLine(mesh),
        ...strangersLine(health?.strangersNearby)
      ].join('\n'), { peers, mesh, strangersNearby: health?.strangersNearby ?? 0 })
    })
}
