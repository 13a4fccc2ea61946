// The capability service: publishes what this device offers on a hive gossip topic, repeatedly
// and whenever it changes, and keeps a live view of every device from what they publish. An
// entry expires when its device has been quiet for `expireMs`, or for 3.5 times the interval
// its report announced, whichever is longer.
//
// Every periodic report reaches every member, so a hive of N devices reporting every T seconds
// makes each device handle N / T reports a second, and the hive N² / T. The interval therefore
// grows with the hive: at least `intervalMs`, and `perMemberMs` for each member (3 s up to ten
// members, 15 s at fifty), so what one device receives stays near three reports a second. Each
// report says when the next one is due, so receivers that count the members differently (while
// the member list spreads) still agree on when a device has gone quiet.

import { TopicValidatorResult } from '@libp2p/gossipsub'
import { DEFAULT_CAPABILITIES_TOPIC } from '../wire/ids.ts'
import { SILENT_LOG } from '../wire/log.ts'
import { joinTopic } from '../wire/topic.ts'
import { decodeOnce } from '../wire/codec.ts'
import { CapabilitiesNotRunningError, InvalidCapabilityOverrideError } from './errors.ts'
import { createDeviceProbe } from './probe.ts'
import { CapabilityOverrides, MAX_LINKS, MAX_NET_REFUSE, MAX_REPORT_INTERVAL_MS, MIN_REPORT_INTERVAL_MS, decodeCapabilityMessage, encodeCapabilityMessage } from './schema.ts'
import type { DeviceProbe, DeviceProbeInit, DeviceReading } from './probe.ts'
import type { CapabilityMessage, CapabilityReport, OverridableField, Power } from './schema.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { JoinedTopic, TopicPubSub, TopicValidate } from '../wire/topic.ts'
import type { Message } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

export { DEFAULT_CAPABILITIES_TOPIC }

/** The part of gossipsub this service uses. */
export interface CapabilitiesPubSub extends TopicPubSub {
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  addEventListener: {
    (type: 'message', listener: (event: CustomEvent<Message>) => void): void
    (type: 'subscription-change', listener: (event: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>) => void): void
  }
  removeEventListener: {
    (type: 'message', listener: (event: CustomEvent<Message>) => void): void
    (type: 'subscription-change', listener: (event: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>) => void): void
  }
}

export type CapabilitiesLog = ProtocolLog

export interface CapabilitiesInit extends DeviceProbeInit {
  /** This device's node name. */
  name: string
  /** The hive-node version this device runs. */
  version: string
  topic?: string
  /** How often the report is published even when nothing changed, at least. Default 3 s (±20 %). */
  intervalMs?: number
  /** The interval grows by this for each member of the hive, past `intervalMs`. Default 300 ms. */
  perMemberMs?: number
  /** A device quiet for this long leaves the view (longer if its report announced a longer interval). Default 3.5 × intervalMs. */
  expireMs?: number
  /** Delay that coalesces a burst of changes into one message. Default 50 ms. */
  changeDelayMs?: number
  /**
   * Least time between two reports sent for changes. Default 500 ms (a node sets 2 s): under a burst of tasks the
   * running count changes many times a second, and every report is a message to every member
   * (each forwarding it); the count a bid uses is this node's own, never the gossiped one.
   */
  changeIntervalMs?: number
  /** PeerIds of the members this node is connected to; read at every report. */
  links?: () => string[]
  /** Origins this device refuses to agents (`*`: all), reported as they are. */
  netRefuse?: readonly string[]
  /** Agent runtimes this node offers; read at every report. */
  runtimes?: () => string[]
  /**
   * How many hive tasks run here now; read at every report. Call `refresh()` when it changes.
   * Without it, the count is what `setRunning` last said.
   */
  running?: () => number
  /**
   * Fields the user sets instead of what the device reports (e.g. treat this laptop as on
   * battery, or as busy). Shown as overridden in every report.
   */
  overrides?: CapabilityOverrides
  /** Reads the device; defaults to the real one (os, /sys/class/power_supply, Ollama). */
  probe?: DeviceProbe
}

export interface CapabilitiesComponents {
  /** This device's PeerId string. */
  self: string
  pubsub: CapabilitiesPubSub
  /** Whether a device belongs to the hive; reports from others are ignored. Default: all. */
  isMember?: (peerId: string) => boolean
  /** How many members the hive has (this device included); the report interval grows with it. */
  members?: () => number
  log?: CapabilitiesLog
}

export interface CapabilityEntry {
  peerId: string
  self: boolean
  caps: CapabilityReport
  seq: number
  /** The author's clock when it sent the report. */
  time: number
  /** This node's clock when the report arrived. */
  receivedAt: number
  /** The interval the author announced for its next report, if it did. */
  every?: number
}

export interface Capabilities extends EventTarget {
  readonly topic: string
  /** Moves to another gossip topic (the hive's topic changes when this device joins a hive). */
  setTopic: (topic: string) => void
  start: () => Promise<void>
  stop: () => Promise<void>
  /** A fresh report of this device: probe, overrides, running tasks. */
  local: (options?: { signal?: AbortSignal }) => Promise<CapabilityReport>
  /** Every device heard from recently, this one included, ordered by PeerId. */
  view: () => CapabilityEntry[]
  get: (peerId: string) => CapabilityEntry | undefined
  /** Whether a device has reported within the expiry time. */
  isLive: (peerId: string) => boolean
  /** Tells the service how many hive tasks run here now; a change is published. */
  setRunning: (count: number) => void
  /** Something a report reads changed (the `running` count): publish soon if the report differs. */
  refresh: () => void
  /** Replaces the overrides (null clears them); the new report is published. */
  setOverrides: (overrides: CapabilityOverrides | null) => void
  /** Publishes a report now. */
  publish: (options?: { signal?: AbortSignal }) => Promise<void>
  /** The periodic report's interval now (ms): it grows with the hive. */
  reportInterval: () => number
}

function checkOverrides (overrides: CapabilityOverrides | null | undefined): CapabilityOverrides {
  if (overrides == null) return {}
  const parsed = CapabilityOverrides.safeParse(overrides)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new InvalidCapabilityOverrideError(`capability override ${issue?.path.join('.') ?? ''} is invalid: ${issue?.message ?? 'unknown'}; ` +
      'overridable fields are cores, load, freeMemory, totalMemory, power (ac|battery|unknown), runtimes and models')
  }
  return parsed.data
}

/** Applies overrides to a reading; returns the report fields and which were overridden. */
export function applyOverrides (reading: DeviceReading, overrides: CapabilityOverrides): { reading: DeviceReading, overridden: OverridableField[] } {
  const out: DeviceReading = { ...reading }
  const overridden: OverridableField[] = []
  if (overrides.cores != null) { out.cores = overrides.cores; overridden.push('cores') }
  if (overrides.load != null) { out.load = overrides.load; overridden.push('load') }
  if (overrides.freeMemory != null) { out.freeMemory = overrides.freeMemory; overridden.push('freeMemory') }
  if (overrides.totalMemory != null) { out.totalMemory = overrides.totalMemory; overridden.push('totalMemory') }
  if (overrides.power != null) {
    out.power = typeof overrides.power === 'string' ? { state: overrides.power } satisfies Power : overrides.power
    overridden.push('power')
  }
  if (overrides.models != null) { out.models = overrides.models; overridden.push('models') }
  if (out.freeMemory > out.totalMemory) out.freeMemory = out.totalMemory
  return { reading: out, overridden }
}

/** Whether two reports differ in a way bidders care about (not the load's last decimal). */
function materiallyDifferent (a: CapabilityReport | undefined, b: CapabilityReport): boolean {
  if (a == null) return true
  return a.running !== b.running || a.cores !== b.cores || a.power.state !== b.power.state ||
    a.runtimes.join() !== b.runtimes.join() || a.models.join() !== b.models.join() || (a.gpus?.length ?? 0) !== (b.gpus?.length ?? 0) ||
    a.overridden.join() !== b.overridden.join() || Math.abs(a.load - b.load) >= 0.5
}

export function createCapabilities (init: CapabilitiesInit, components: CapabilitiesComponents): Capabilities {
  return new CapabilityService(init, components)
}

class CapabilityService extends EventTarget implements Capabilities {
  topic: string
  private readonly init: CapabilitiesInit
  private readonly components: CapabilitiesComponents
  private readonly log: CapabilitiesLog
  private readonly probe: DeviceProbe
  private readonly intervalMs: number
  private readonly perMemberMs: number
  private readonly expireMs: number
  private readonly changeDelayMs: number
  private readonly changeIntervalMs: number
  private lastPublishAt = -Infinity
  private overrides: CapabilityOverrides
  private readonly entries = new Map<string, CapabilityEntry>()
  private running = 0
  private seq = 0
  private started = false
  private lastPublished?: CapabilityReport
  private tickTimer?: NodeJS.Timeout
  private changeTimer?: NodeJS.Timeout
  private joined?: JoinedTopic
  private readonly stopping = new AbortController()

  constructor (init: CapabilitiesInit, components: CapabilitiesComponents) {
    super()
    this.init = init
    this.components = components
    this.log = components.log ?? SILENT_LOG
    this.topic = init.topic ?? DEFAULT_CAPABILITIES_TOPIC
    this.intervalMs = init.intervalMs ?? 3_000
    this.perMemberMs = init.perMemberMs ?? 300
    this.expireMs = init.expireMs ?? Math.round(this.intervalMs * 3.5)
    this.changeDelayMs = init.changeDelayMs ?? 50
    this.changeIntervalMs = init.changeIntervalMs ?? 500
    this.overrides = checkOverrides(init.overrides)
    this.probe = init.probe ?? createDeviceProbe(init)
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    const { pubsub } = this.components
    pubsub.addEventListener('message', this.onMessage)
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange)
    this.join()
    await this.publish().catch((err: Error) => { this.log.debug(`first capability report not sent: ${err.message}`) })
    this.scheduleTick()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.stopping.abort(new CapabilitiesNotRunningError('capability service stopped'))
    clearTimeout(this.tickTimer)
    clearTimeout(this.changeTimer)
    const { pubsub } = this.components
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.removeEventListener('subscription-change', this.onSubscriptionChange)
    this.leave()
  }

  setTopic (topic: string): void {
    if (topic === this.topic) return
    if (this.started) this.leave()
    this.topic = topic
    // what was heard on the old topic came from another hive's view
    for (const [peerId, entry] of this.entries) if (!entry.self) this.entries.delete(peerId)
    if (this.started) {
      this.join()
      this.lastPublished = undefined
      this.publishSoon()
    }
  }

  private join (): void {
    this.joined = joinTopic(this.components.pubsub, this.topic, this.validate)
  }

  private leave (): void {
    this.joined?.leave()
    this.joined = undefined
  }

  async local (options: { signal?: AbortSignal } = {}): Promise<CapabilityReport> {
    const { reading, overridden } = applyOverrides(await this.probe.read(options), this.overrides)
    const runtimes = this.overrides.runtimes ?? this.init.runtimes?.() ?? []
    if (this.overrides.runtimes != null) overridden.push('runtimes')
    return {
      name: this.init.name,
      version: this.init.version,
      cores: reading.cores,
      load: reading.load,
      running: this.init.running?.() ?? this.running,
      freeMemory: reading.freeMemory,
      totalMemory: reading.totalMemory,
      power: reading.power,
      runtimes: [...runtimes].slice(0, 16),
      models: reading.models.slice(0, 64),
      gpus: (reading.gpus ?? []).slice(0, 8),
      ...(this.init.links != null ? { links: this.init.links().slice(0, MAX_LINKS) } : {}),
      ...(this.init.netRefuse != null && this.init.netRefuse.length > 0 ? { netRefuse: this.init.netRefuse.slice(0, MAX_NET_REFUSE) } : {}),
      overridden
    }
  }

  view (): CapabilityEntry[] {
    this.sweep()
    return [...this.entries.values()].sort((a, b) => a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0)
  }

  get (peerId: string): CapabilityEntry | undefined {
    this.sweep()
    return this.entries.get(peerId)
  }

  isLive (peerId: string): boolean {
    return this.get(peerId) != null
  }

  setRunning (count: number): void {
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`running task count must be a non-negative integer, got ${count}`)
    if (count === this.running) return
    this.running = count
    this.publishSoon()
  }

  refresh (): void {
    this.publishSoon()
  }

  setOverrides (overrides: CapabilityOverrides | null): void {
    this.overrides = checkOverrides(overrides)
    this.publishSoon()
  }

  async publish (options: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.started) throw new CapabilitiesNotRunningError('the capability service is not running; start it first')
    const signal = options.signal != null ? AbortSignal.any([options.signal, this.stopping.signal]) : this.stopping.signal
    const caps = await this.local({ signal })
    if (!this.started) return
    const now = Date.now()
    this.seq = Math.max(this.seq + 1, now)
    // the interval is announced once the hive has grown past the floor every member starts from
    const every = this.reportInterval()
    const message: CapabilityMessage = { v: 1, seq: this.seq, time: now, ...(every > this.intervalMs ? { every: Math.max(MIN_REPORT_INTERVAL_MS, every) } : {}), caps }
    const data = encodeCapabilityMessage(message)
    this.remember(this.components.self, message, true)
    this.lastPublished = caps
    this.lastPublishAt = now
    await this.components.pubsub.publish(this.topic, data)
  }

  /** The periodic report's interval now: at least `intervalMs`, `perMemberMs` a member past it. */
  reportInterval (): number {
    const members = this.components.members?.() ?? 0
    return Math.min(MAX_REPORT_INTERVAL_MS, Math.max(this.intervalMs, members * this.perMemberMs))
  }

  private scheduleTick (): void {
    if (!this.started) return
    const jitter = 0.8 + Math.random() * 0.4
    this.tickTimer = setTimeout(() => {
      // an entry expires on time (and says so) even when nothing reads the view
      this.sweep()
      this.publish().catch((err: Error) => { this.log.debug(`capability report not sent: ${err.message}`) })
        .finally(() => { this.scheduleTick() })
    }, Math.round(this.reportInterval() * jitter))
    this.tickTimer.unref()
  }

  /**
   * Publishes shortly after a change, once for a burst, no sooner than `changeIntervalMs` after
   * the last report, and only when the report really changed.
   */
  private publishSoon (): void {
    if (!this.started || this.changeTimer != null) return
    const wait = Math.max(this.changeDelayMs, this.lastPublishAt + this.changeIntervalMs - Date.now())
    this.changeTimer = setTimeout(() => {
      this.changeTimer = undefined
      this.local().then(async (caps) => {
        if (!this.started || !materiallyDifferent(this.lastPublished, caps)) return
        await this.publish()
      }).catch((err: Error) => { this.log.debug(`capability change not sent: ${err.message}`) })
    }, wait)
    this.changeTimer.unref()
  }

  private sweep (): void {
    const now = Date.now()
    for (const [peerId, entry] of this.entries) {
      if (entry.self) continue
      if (now - entry.receivedAt > this.expiryOf(entry)) {
        this.entries.delete(peerId)
        this.dispatchEvent(new CustomEvent('expire', { detail: peerId }))
      }
    }
  }

  /** How long a device may stay quiet before it leaves the view. */
  private expiryOf (entry: CapabilityEntry): number {
    return entry.every == null ? this.expireMs : Math.max(this.expireMs, Math.round(entry.every * 3.5))
  }

  private remember (peerId: string, message: CapabilityMessage, self: boolean): void {
    const old = this.entries.get(peerId)
    if (old != null && old.seq >= message.seq) return
    const entry: CapabilityEntry = {
      peerId, self, caps: message.caps, seq: message.seq, time: message.time, receivedAt: Date.now(), ...(message.every != null ? { every: message.every } : {})
    }
    this.entries.set(peerId, entry)
    this.dispatchEvent(new CustomEvent('change', { detail: entry }))
  }

  /** The validator decodes a report, its listener takes the same decoding. */
  private readonly decode = decodeOnce(decodeCapabilityMessage)

  private readonly validate: TopicValidate = (_peer, message) => {
    if (message.type !== 'signed') return TopicValidatorResult.Reject
    const author = message.from.toString()
    if (this.components.isMember != null && !this.components.isMember(author)) return TopicValidatorResult.Reject
    try {
      this.decode(message.data)
    } catch (err) {
      this.log.warn(`rejecting capability report from ${author}: ${(err as Error).message}`)
      return TopicValidatorResult.Reject
    }
    return TopicValidatorResult.Accept
  }

  private readonly onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== this.topic || message.type !== 'signed') return
    const author = message.from.toString()
    if (author === this.components.self) return
    if (this.components.isMember != null && !this.components.isMember(author)) return
    try {
      this.remember(author, this.decode(message.data), false)
    } catch (err) {
      this.log.debug(`ignored capability report from ${author}: ${(err as Error).message}`)
    }
  }

  private readonly onSubscriptionChange = (event: CustomEvent<{ peerId: PeerId, subscriptions: Array<{ topic: string, subscribe: boolean }> }>): void => {
    // a device that just joined the topic hears from us at once rather than at the next tick
    if (event.detail.subscriptions.some(s => s.topic === this.topic && s.subscribe)) {
      this.lastPublished = undefined
      this.publishSoon()
    }
  }
}
