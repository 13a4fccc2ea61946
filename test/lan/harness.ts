// A private home LAN made of Linux network namespaces: one namespace holds a bridge (the
// "switch"), each host is a namespace with one veth cable plugged into it, and each host runs
// the real `hive-node start` as a process. Nothing is created in the root namespace, and the
// hosts have no route anywhere but the test LAN (plus multicast on it, for mDNS).
//
// Every name carries this run's owner pid and a random tag (`hvl-<pid>-<tag>-…`), so parallel
// runs never collide, and a later run can tell what an earlier, killed run left behind
// (its owner pid is gone) and sweep it. Cleanup removes every namespace, process and data
// directory the run made: from `destroy()`, and synchronously on process exit and on signals.

import { execFile, spawn, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ChildProcess } from 'node:child_process'

export const BIN = fileURLToPath(new URL('../../node/bin.js', import.meta.url))
const MDNS_PROBE = fileURLToPath(new URL('./mdns-probe.ts', import.meta.url))

/** Prefix of every namespace this harness makes; the sweep only ever touches these. */
const NS_PREFIX = 'hvl-'
const NS_PATTERN = /^hvl-(\d+)-([0-9a-f]+)-(br\d*|h\d+|r\d+|pub)$/
const DIR_PREFIX = 'hive-lan-'
const DIR_PATTERN = /^hive-lan-(\d+)-([0-9a-f]+)$/
/** The test LAN. Private, and only reachable from inside this run's namespaces. */
export const DEFAULT_SUBNET = '10.231.77'
/** The port every host's node listens on, as a device on a home LAN would. */
export const P2P_PORT = 4190
const HOST_IFACE = 'lan0'

/** `node -e` script: GET argv[2] of the API whose api.json is in data directory argv[1]. */
const API_GET = `
import { readFile } from 'node:fs/promises'
const [dataDir, path] = process.argv.slice(1)
const { url } = JSON.parse(await readFile(dataDir + '/api.json', 'utf8'))
const response = await fetch(url + path, { signal: AbortSignal.timeout(20000) })
const body = await response.text()
if (!response.ok) { process.stderr.write(response.status + ' ' + body); process.exit(1) }
process.stdout.write(body)
`

export interface CommandResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

export class LanCommandError extends Error {
  override name = 'LanCommandError'
}

/** Runs a command to completion (no shell), with a timeout. */
export async function run (file: string, args: string[], options: { timeoutMs?: number, env?: NodeJS.ProcessEnv, track?: Set<ChildProcess> } = {}): Promise<CommandResult> {
  const { promise, resolve, reject } = Promise.withResolvers<CommandResult>()
  const child = execFile(file, args, {
    timeout: options.timeoutMs ?? 30_000,
    killSignal: 'SIGKILL',
    env: options.env ?? process.env,
    maxBuffer: 16 * 1024 * 1024,
    encoding: 'utf8'
  }, (err, stdout, stderr) => {
    options.track?.delete(child)
    const e = err as (Error & { code?: number | string, signal?: NodeJS.Signals | null, killed?: boolean }) | null
    if (e != null && typeof e.code === 'string') { reject(e); return }
    resolve({ code: e == null ? 0 : (typeof e.code === 'number' ? e.code : null), signal: e?.signal ?? null, stdout, stderr })
  })
  options.track?.add(child)
  return promise
}

/** Runs `ip …` and fails with its stderr when it fails. */
export async function ip (args: string[]): Promise<string> {
  const result = await run('ip', args, { timeoutMs: 15_000 })
  if (result.code !== 0) throw new LanCommandError(`ip ${args.join(' ')} failed (${result.code ?? result.signal}): ${result.stderr.trim()}`)
  return result.stdout
}

function ipSync (args: string[]): { ok: boolean, stdout: string } {
  const result = spawnSync('ip', args, { encoding: 'utf8', timeout: 15_000 })
  return { ok: result.status === 0, stdout: result.stdout ?? '' }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function listNamespaces (): string[] {
  const { ok, stdout } = ipSync(['netns', 'list'])
  if (!ok) return []
  // lines look like "name" or "name (id: 3)"
  return stdout.split('\n').map(line => line.trim().split(/\s+/)[0] ?? '').filter(name => name.length > 0)
}

/** Kills the processes inside a namespace (by pid) and deletes it. Synchronous, for exit paths. */
function removeNamespaceSync (ns: string): void {
  const { stdout } = ipSync(['netns', 'pids', ns])
  for (const pid of stdout.split(/\s+/).map(Number).filter(n => Number.isInteger(n) && n > 0)) {
    try { process.kill(pid, 'SIGKILL') } catch {}
  }
  ipSync(['netns', 'del', ns])
}

/**
 * Why this machine cannot run the LAN test, or undefined when it can: the process must be root
 * and able to create and delete a network namespace (probed with a throwaway one).
 */
export async function lanUnavailable (): Promise<string | undefined> {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`
  if (process.getuid?.() !== 0) return 'network namespaces need root (run npm test as root, as CI does)'
  const probe = `${NS_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}-h0`
  try {
    await ip(['netns', 'add', probe])
  } catch (err) {
    return `"ip netns add" does not work here: ${(err as Error).message}`
  }
  try {
    await ip(['netns', 'del', probe])
  } catch (err) {
    removeNamespaceSync(probe)
    return `"ip netns del" does not work here: ${(err as Error).message}`
  }
  return undefined
}

/**
 * Removes what earlier runs of this harness left behind when they were killed before cleaning
 * up: namespaces (and the processes in them) and data directories whose owner pid is gone.
 * Resources of runs still alive are left alone.
 */
export function sweepStale (): string[] {
  const removed: string[] = []
  for (const ns of listNamespaces()) {
    const match = NS_PATTERN.exec(ns)
    if (match == null) continue
    const owner = Number(match[1])
    if (owner === process.pid || isAlive(owner)) continue
    removeNamespaceSync(ns)
    removed.push(ns)
  }
  let entries: string[] = []
  try {
    entries = readdirSync(tmpdir())
  } catch {}
  for (const entry of entries) {
    const match = DIR_PATTERN.exec(entry)
    if (match == null) continue
    const owner = Number(match[1])
    if (owner === process.pid || isAlive(owner)) continue
    rmSync(join(tmpdir(), entry), { recursive: true, force: true })
    removed.push(join(tmpdir(), entry))
  }
  return removed
}

/** What a run with owner `pid` left behind: its namespaces and data directories. */
export function leftBehindBy (pid: number): string[] {
  const namespaces = listNamespaces().filter(ns => NS_PATTERN.exec(ns)?.[1] === String(pid))
  let entries: string[] = []
  try {
    entries = readdirSync(tmpdir())
  } catch {}
  const dirs = entries.filter(entry => DIR_PATTERN.exec(entry)?.[1] === String(pid)).map(entry => join(tmpdir(), entry))
  return [...namespaces, ...dirs]
}

// ---- cleanup on exit and signals, for every LAN still alive ----

const live = new Set<Lan>()
let exitHooksInstalled = false

function installExitHooks (): void {
  if (exitHooksInstalled) return
  exitHooksInstalled = true
  process.on('exit', () => { for (const lan of live) lan.destroySync() })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = (): void => {
      for (const lan of live) lan.destroySync()
      // then die of the same signal, as if no handler had been installed
      process.off(signal, handler)
      process.kill(process.pid, signal)
    }
    process.on(signal, handler)
  }
}

// ---- the LAN ----

export interface ReadyInfo {
  name: string
  peerId: string
  addresses: string[]
  apiUrl: string
  dataDir: string
}

export interface LogLine {
  host: string
  stream: 'out' | 'err'
  time: number
  text: string
}

export interface Host {
  /** 1-based. */
  readonly index: number
  /** host1, host2, … (also the node's name in the hive). */
  readonly name: string
  readonly ns: string
  /** The port on the bridge this host's cable is plugged into. */
  readonly port: string
  /** Its address on the network it is on (changes when the host moves, see test/lan/world.ts). */
  address: string
  readonly dataDir: string
  /** Set once its node has started (the PeerId stays across restarts). */
  peerId?: string
  node?: ChildProcess
  /** How the last node process ended, when it has. */
  exit?: { code: number | null, signal: NodeJS.Signals | null }
  cut: boolean
}

export interface LanOptions {
  hosts: number
  /** First three octets of the private /24 the hosts live on. */
  subnet?: string
  /** Extra `hive-node start` flags for one host. */
  startArgs?: (host: Host) => string[]
  /** Every output line of every node, as it arrives (e.g. to stream it with HIVE_LAN_VERBOSE). */
  onLine?: (line: LogLine) => void
}

const PRIVATE_SUBNET = /^(10\.\d{1,3}\.\d{1,3}|192\.168\.\d{1,3}|172\.(1[6-9]|2\d|3[01])\.\d{1,3})$/

export class Lan {
  readonly tag: string
  readonly hosts: Host[] = []
  readonly bridgeNs: string
  readonly bridge: string
  readonly root: string
  private readonly options: LanOptions
  private readonly children = new Set<ChildProcess>()
  protected readonly namespaces: string[] = []
  private readonly lines: LogLine[] = []
  private destroyed = false
  /**
   * Environment of every process the LAN runs: no inherited HIVE_DATA (each has --data), and a
   * compile cache of its own, which saves each CLI run about a third of its start-up.
   */
  private readonly env: NodeJS.ProcessEnv

  constructor (options: LanOptions) {
    const subnet = options.subnet ?? DEFAULT_SUBNET
    if (!PRIVATE_SUBNET.test(subnet)) throw new LanCommandError(`the test LAN must be a private /24 (10.x.y, 172.16-31.x, 192.168.x), not ${subnet}`)
    if (options.hosts < 1 || options.hosts > 200) throw new LanCommandError('a test LAN has 1 to 200 hosts')
    this.options = options
    this.tag = randomBytes(2).toString('hex')
    const base = `${NS_PREFIX}${process.pid}-${this.tag}`
    this.bridgeNs = `${base}-br`
    this.bridge = `hvbr${this.tag}`
    this.root = join(tmpdir(), `${DIR_PREFIX}${process.pid}-${this.tag}`)
    this.env = { ...process.env, HIVE_DATA: undefined, NODE_COMPILE_CACHE: join(this.root, 'compile-cache') }
    for (let i = 1; i <= options.hosts; i++) {
      this.hosts.push({
        index: i,
        name: `host${i}`,
        ns: `${base}-h${i}`,
        port: `p${i}`,
        address: `${subnet}.${10 + i}`,
        dataDir: join(this.root, `host${i}`),
        cut: false
      })
    }
  }

  /** Builds the bridge and the hosts' namespaces and cables. Undone by destroy(). */
  async create (): Promise<void> {
    await this.prepare()

    const br = this.bridgeNs
    this.namespaces.push(br)
    await ip(['netns', 'add', br])
    // no IGMP snooping (multicast is flooded like on a plain home switch), no STP delay
    await ip(['-n', br, 'link', 'add', this.bridge, 'type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0'])
    await ip(['-n', br, 'link', 'set', this.bridge, 'up'])

    for (const host of this.hosts) {
      this.namespaces.push(host.ns)
      await ip(['netns', 'add', host.ns])
      // the cable: one end is the host's interface, the other a port of the bridge
      await ip(['-n', br, 'link', 'add', host.port, 'type', 'veth', 'peer', 'name', HOST_IFACE, 'netns', host.ns])
      await ip(['-n', br, 'link', 'set', host.port, 'master', this.bridge])
      await ip(['-n', br, 'link', 'set', host.port, 'up'])
      await ip(['-n', host.ns, 'link', 'set', 'lo', 'up'])
      await ip(['-n', host.ns, 'link', 'set', HOST_IFACE, 'multicast', 'on', 'up'])
      await ip(['-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', HOST_IFACE])
      // mDNS sends to 224.0.0.251; with no default route the host needs a multicast route
      await ip(['-n', host.ns, 'route', 'add', '224.0.0.0/4', 'dev', HOST_IFACE])
    }
  }

  /** What every topology needs first: cleanup hooks, and the data directories. */
  protected async prepare (): Promise<void> {
    live.add(this)
    installExitHooks()
    await mkdir(this.root, { recursive: true, mode: 0o700 })
    for (const host of this.hosts) await mkdir(host.dataDir, { recursive: true, mode: 0o700 })
  }

  host (index: number): Host {
    const host = this.hosts[index - 1]
    if (host == null) throw new LanCommandError(`there is no host${index} (this LAN has ${this.hosts.length})`)
    return host
  }

  /** Starts the host's node (`hive-node start`) and resolves once it printed its ready line. */
  async start (host: Host, options: { timeoutMs?: number } = {}): Promise<ReadyInfo> {
    if (host.node != null && host.exit == null) throw new LanCommandError(`${host.name}'s node is already running`)
    const args = [
      'netns', 'exec', host.ns,
      process.execPath, BIN, '--data', host.dataDir,
      'start', '--listen', `/ip4/0.0.0.0/tcp/${P2P_PORT}`, '--name', host.name, '--json',
      ...(this.options.startArgs?.(host) ?? [])
    ]
    // `ip netns exec` execs the program, so the child's pid is the node's pid
    const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'], env: this.env })
    this.children.add(child)
    host.node = child
    host.exit = undefined
    const { promise: ready, resolve, reject } = Promise.withResolvers<ReadyInfo>()
    this.follow(host, child, 'out', (text) => {
      if (!text.startsWith('{')) return
      try {
        resolve(JSON.parse(text) as ReadyInfo)
      } catch {}
    })
    this.follow(host, child, 'err', () => {})
    child.once('exit', (code, signal) => {
      this.children.delete(child)
      host.exit = { code, signal }
      reject(new LanCommandError(`${host.name}'s node exited (${code ?? signal}) before it was ready:\n${this.tail(host, 15)}`))
    })
    const timeoutMs = options.timeoutMs ?? 120_000
    const timer = setTimeout(() => { reject(new LanCommandError(`${host.name}'s node was not ready within ${timeoutMs} ms:\n${this.tail(host, 15)}`)) }, timeoutMs)
    try {
      const info = await ready
      host.peerId = info.peerId
      return info
    } finally {
      clearTimeout(timer)
    }
  }

  async startAll (): Promise<ReadyInfo[]> {
    return Promise.all(this.hosts.map(async host => this.start(host)))
  }

  /** SIGKILLs the host's node (no clean shutdown: the device is lost) and waits until it is gone. */
  async kill (host: Host): Promise<void> {
    const child = host.node
    if (child == null || host.exit != null) return
    const exited = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
    child.kill('SIGKILL')
    await exited
  }

  /** Starts the host's node again on the same data directory (same PeerId, same stored data). */
  async restart (host: Host): Promise<ReadyInfo> {
    await this.kill(host)
    return this.start(host)
  }

  /** Unplugs the host's cable at the switch: its interface loses carrier, nothing gets through. */
  async cut (host: Host): Promise<void> {
    await ip(['-n', this.bridgeNs, 'link', 'set', host.port, 'down'])
    host.cut = true
  }

  /** Plugs the host's cable back in. */
  async restore (host: Host): Promise<void> {
    await ip(['-n', this.bridgeNs, 'link', 'set', host.port, 'up'])
    host.cut = false
  }

  /** Runs `hive-node --data DIR …args` inside the host's namespace. */
  async cli (host: Host, args: string[], options: { timeoutMs?: number } = {}): Promise<CommandResult> {
    return run('ip', ['netns', 'exec', host.ns, process.execPath, BIN, '--data', host.dataDir, ...args], {
      timeoutMs: options.timeoutMs ?? 60_000,
      env: this.env,
      track: this.children
    })
  }

  /** Runs a CLI command that prints JSON; fails with its stderr when it exits non-zero. */
  async cliJson<T = unknown> (host: Host, args: string[], options: { timeoutMs?: number } = {}): Promise<T> {
    const result = await this.cli(host, [...args, '--json'], options)
    if (result.code !== 0) {
      throw new LanCommandError(`${host.name}: "hive-node ${args.join(' ')} --json" exited ${result.code ?? result.signal}: ${result.stderr.trim()}`)
    }
    try {
      return JSON.parse(result.stdout) as T
    } catch {
      throw new LanCommandError(`${host.name}: "hive-node ${args.join(' ')} --json" printed no JSON: ${result.stdout.slice(0, 200)}`)
    }
  }

  /**
   * GETs a path of the host's local API from inside its namespace and resolves to the JSON
   * answer. A bare Node fetch (no project code loaded), so it costs a fraction of a CLI run:
   * for polling while waiting on a condition. Assertions go through the CLI itself.
   */
  async apiGet<T = unknown> (host: Host, path: string, options: { timeoutMs?: number } = {}): Promise<T> {
    const result = await run('ip', ['netns', 'exec', host.ns, process.execPath, '--input-type=module', '-e', API_GET, host.dataDir, path], {
      timeoutMs: options.timeoutMs ?? 30_000,
      env: this.env,
      track: this.children
    })
    if (result.code !== 0) throw new LanCommandError(`${host.name}: GET ${path} failed: ${result.stderr.trim()}`)
    return JSON.parse(result.stdout) as T
  }

  /**
   * Asks the LAN by mDNS, from inside the host's namespace, who offers `serviceTag`; resolves
   * to each PeerId that answered with the addresses it announced. Returns as soon as every
   * expected PeerId answered, else at the deadline with what did.
   */
  async mdnsQuery (host: Host, serviceTag: string, expected: string[], deadlineMs = 15_000): Promise<Record<string, string[]>> {
    const result = await run('ip', ['netns', 'exec', host.ns, process.execPath, MDNS_PROBE, serviceTag, String(deadlineMs), ...expected], {
      timeoutMs: deadlineMs + 30_000,
      env: this.env,
      track: this.children
    })
    if (result.code !== 0) throw new LanCommandError(`${host.name}: the mDNS probe failed (${result.code ?? result.signal}): ${result.stderr.trim()}`)
    return (JSON.parse(result.stdout) as { peers: Record<string, string[]> }).peers
  }

  /** Every output line so far, or one host's. */
  logs (host?: Host): LogLine[] {
    return host == null ? [...this.lines] : this.lines.filter(l => l.host === host.name)
  }

  /** The last `count` output lines of a host (or of every host), formatted. */
  tail (host?: Host, count = 30): string {
    const lines = this.logs(host).slice(-count)
    return lines.map(l => `  [${l.host} ${l.stream}] ${l.text}`).join('\n')
  }

  /**
   * Stops every node (SIGTERM, then SIGKILL after a grace period), ends any command still
   * running, deletes every namespace (which removes the bridge and the cables with them) and
   * the data directories. Safe to call twice; failures of one part do not stop the rest.
   */
  async destroy (options: { graceMs?: number } = {}): Promise<void> {
    if (this.destroyed) return
    const graceMs = options.graceMs ?? 10_000
    const running = [...this.children].filter(c => c.exitCode == null && c.signalCode == null)
    await Promise.all(running.map(async (child) => {
      const exited = new Promise<void>(resolve => { child.once('exit', () => { resolve() }) })
      child.kill('SIGTERM')
      const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
      await exited
      clearTimeout(timer)
    }))
    for (const ns of [...this.namespaces].reverse()) {
      // anything left inside (there should be nothing) goes with the namespace
      const pids = await run('ip', ['netns', 'pids', ns]).catch(() => undefined)
      for (const pid of (pids?.stdout ?? '').split(/\s+/).map(Number).filter(n => Number.isInteger(n) && n > 0)) {
        try { process.kill(pid, 'SIGKILL') } catch {}
      }
      await run('ip', ['netns', 'del', ns]).catch(() => undefined)
    }
    await rm(this.root, { recursive: true, force: true })
    this.destroyed = true
    live.delete(this)
  }

  /** The same, synchronously and without grace: for process exit and signals. */
  destroySync (): void {
    if (this.destroyed) return
    for (const child of this.children) {
      try { child.kill('SIGKILL') } catch {}
    }
    for (const ns of [...this.namespaces].reverse()) removeNamespaceSync(ns)
    rmSync(this.root, { recursive: true, force: true })
    this.destroyed = true
    live.delete(this)
  }

  /** Namespaces of this LAN that still exist (for tests of the harness itself). */
  existingNamespaces (): string[] {
    const all = new Set(listNamespaces())
    return this.namespaces.filter(ns => all.has(ns))
  }

  get rootExists (): boolean {
    return existsSync(this.root)
  }

  private follow (host: Host, child: ChildProcess, stream: 'out' | 'err', onText: (text: string) => void): void {
    const source = stream === 'out' ? child.stdout : child.stderr
    if (source == null) return
    let buffer = ''
    source.setEncoding('utf8')
    source.on('data', (chunk: string) => {
      buffer += chunk
      let index: number
      while ((index = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, index)
        buffer = buffer.slice(index + 1)
        const line: LogLine = { host: host.name, stream, time: Date.now(), text }
        this.lines.push(line)
        this.options.onLine?.(line)
        onText(text)
      }
    })
  }
}

/** Sweeps what killed runs left, then builds a LAN of `hosts` namespaces on one bridge. */
export async function createLan (options: LanOptions): Promise<Lan> {
  sweepStale()
  const lan = new Lan(options)
  try {
    await lan.create()
  } catch (err) {
    await lan.destroy()
    throw err
  }
  return lan
}
