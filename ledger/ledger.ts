// The ledger service: this device's chain and copies of every peer's, kept up to date over
// libp2p. It appends (signing with the device key), announces signed heads on gossip, fetches
// what peers announce, verifies every copy before storing it, and audits on demand.

import { OPEN_GATE, dialFramed, decodeMessage, encodeMessage, isPeerFault, serveProtocol } from '../protocol/index.ts'
import { verifyAll, verifyChain } from './audit.ts'
import { BadCopyError, BadHeadError, LedgerFetchError, LedgerNotStartedError, LedgerRollbackError, MalformedRecordError } from './errors.ts'
import { LEDGER_OK, appendRefusal, damaged, damagedError, healthOf } from './health.ts'
import {
  DEFAULT_HEADS_TOPIC, HeadsMessage, LEGACY_READS_VERSION, LEDGER_PROTOCOL, LedgerRequest, MAX_HEADS_PER_MESSAGE, MAX_LEDGER_FRAME_BYTES,
  MAX_PUSHED_BYTES, MAX_PUSHED_RECORDS, READS_VERSION, RECORDS_PER_FRAME, RecordsResponseV3, recordFrames
} from './exchange.ts'
import type { PushedRecords } from './exchange.ts'
import { decodeHead } from './record.ts'
import { LedgerStore } from './store.ts'
import type { AuditReport, ChainReport } from './audit.ts'
import type { LedgerDamagedError } from './errors.ts'
import type { LedgerHealth } from './health.ts'
import type { LedgerRecord, RecordSigner, SignedHead } from './record.ts'
import type { AppendInput, HeadOutcome, LedgerDatabase, ListedRecord } from './store.ts'
import type { InboundContext, PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from '../protocol/index.ts'
import type { FramedStream } from '../protocol/index.ts'
import type { PeerId } from '@libp2p/interface'

/** The part of libp2p the ledger uses. */
export interface LedgerHost extends ProtocolHost {
  getPeers: () => PeerId[]
  /** When present, a newly connected peer is asked for its heads at once. */
  addEventListener?: (type: 'peer:connect', listener: (event: CustomEvent<PeerId>) => void) => void
  removeEventListener?: (type: 'peer:connect', listener: (event: CustomEvent<PeerId>) => void) => void
}

export interface LedgerPubSubMessage {
  topic: string
  data: Uint8Array
  /** The originator, for signed gossip. */
  from?: PeerId
}

/** The part of a pubsub service (gossipsub) the ledger uses. */
export interface LedgerPubSub {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  addEventListener: (type: 'message', listener: (event: CustomEvent<LedgerPubSubMessage>) => void) => void
  removeEventListener: (type: 'message', listener: (event: CustomEvent<LedgerPubSubMessage>) => void) => void
}

export interface LedgerComponents {
  /** A LevelDB handle (the node's sublevel for the ledger). */
  db: LedgerDatabase
  /** The device key: its PeerId and an Ed25519 `sign`. */
  signer: RecordSigner
  host: LedgerHost
  pubsub: LedgerPubSub
  /** Who may fetch from this node and whose gossip counts; open when omitted. */
  gate?: PeerGate
  log?: ProtocolLog
  /**
   * True while this device is connected to some members only (a hive beyond all-to-all): a
   * chain is fetched from peers connected now, never by dialling its signer, and reaches a
   * device hop by hop through its neighbours; a fetch that finds no connected peer holding the
   * records yet is tried again after FETCH_RETRY_MIN_MS, doubling up to FETCH_RETRY_MAX_MS.
   * False (the default) fetches from whoever announced the head, connected or not.
   */
  connectedOnly?: () => boolean
  /**
   * Whether a connection to this peer is transient (beyond an all-to-all hive, a member that is
   * not a neighbour): its heads are not asked for when it opens; chains come through neighbours.
   */
  transient?: (peer: string) => boolean
  /**
   * How many members the hive has now: the periodic announcement of every head is spaced by
   * announceIntervalFor(members). Every device's announcement reaches every other, so a fixed
   * interval costs N² deliveries; 30 s when omitted.
   */
  members?: () => number
}

/** Every head held is announced again at least this long apart… */
export const ANNOUNCE_MIN_MS = 30_000
/** …2 s per member… */
export const ANNOUNCE_PER_MEMBER_MS = 2_000
/** …and at most this long apart. */
export const ANNOUNCE_MAX_MS = 120_000

/**
 * The interval of the periodic announcement in a hive of `members`: max(30 s, min(120 s,
 * members × 2 s)). It is only for peers that missed a head (a new head is announced when it is
 * made, and a peer that connects asks for heads at once), so it may grow with the hive: the
 * deliveries each device receives per second stay flat up to 60 members.
 */
export function announceIntervalFor (members: number): number {
  return Math.max(ANNOUNCE_MIN_MS, Math.min(ANNOUNCE_MAX_MS, members * ANNOUNCE_PER_MEMBER_MS))
}

/** A chain no connected peer could give yet is asked for again after this… */
export const FETCH_RETRY_MIN_MS = 1_000
/** …doubling up to this. */
export const FETCH_RETRY_MAX_MS = 30_000

export interface LedgerInit {
  /** Gossip topic for signed heads (per hive). */
  topic?: string
  /**
   * How often every head held is announced again, for peers that missed one. Default
   * announceIntervalFor(the member count), 30 s without one.
   */
  announceIntervalMs?: number
  /**
   * The least time between two announcements of this device's head after appends: the appends
   * of a burst are announced together. Default 2 s.
   */
  headCoalesceMs?: number
  /** Upper bound for one request to a peer. Default 30 s. */
  requestTimeoutMs?: number
  /** How long a peer that sent a bad copy is not asked again. Default 60 s. */
  distrustMs?: number
}

export interface ChainSummary {
  signer: string
  self: boolean
  /** Last sequence number held, -1 when none. */
  end: number
  /** Sequence number of the newest signed head held with the records, if any. */
  headSeq: number | null
  /** A newer head seen on the network whose records are not held yet. */
  seenSeq: number | null
}

export interface FetchResult {
  stored: number
  end: number
  fork?: number
}

export interface RefusedDetail {
  peer: string
  signer?: string
  reason: string
  message: string
}

/**
 * The events a ledger dispatches (as CustomEvents): `chain` when records were added to a chain
 * (`stored` of them, up to `end`), `verified` after each audit, `health` when this device's
 * chain turns damaged or whole again, and `fork`, `rollback`, `restored` and `refused` as their
 * comments below say.
 */
export interface LedgerEventDetails {
  chain: { signer: string, end: number, stored: number }
  verified: { ok: boolean, records: number, chains: number }
  health: LedgerHealth
}

export interface Ledger extends EventTarget {
  readonly store: LedgerStore
  /** This device's PeerId string. */
  readonly self: string
  /** The gossip topic heads go on now. */
  readonly topic: string
  /** Moves heads gossip to another topic (the device joined another hive); announces there. */
  setTopic: (topic: string) => void
  start: () => Promise<void>
  stop: () => Promise<void>
  /**
   * Appends a record to this device's chain; resolves after it is on disk. Refused with
   * LedgerDamagedError while the chain is damaged (see `health`).
   */
  append: (input: AppendInput, options?: { signal?: AbortSignal }) => Promise<LedgerRecord>
  /** Whether this device's chain takes records now; when not, why and how to recover. */
  health: () => LedgerHealth
  /** The error an execution is refused with while the chain cannot take its record; undefined when it can. */
  unwritable: () => LedgerDamagedError | undefined
  /** Audits every chain held, or one signer's; an audit of this device's chain updates `health`. */
  verify: (options?: { signer?: string, signal?: AbortSignal }) => Promise<AuditReport>
  /** Records of one chain (this device's by default), oldest first; `limit` keeps the newest N. */
  list: (options?: { signer?: string, limit?: number, signal?: AbortSignal }) => Promise<ListedRecord[]>
  chains: () => Promise<ChainSummary[]>
  /** Publishes every head held on the gossip topic. */
  announce: (options?: { signal?: AbortSignal }) => Promise<void>
  /** Asks one peer for the heads it holds and fetches every chain it is ahead on. */
  syncWith: (peer: PeerId, options?: { signal?: AbortSignal }) => Promise<void>
  /** Fetches `signer`'s records from `from` on from one peer, verifying before storing. */
  fetchRecords: (peer: PeerId, signer: string, from: number, options?: { to?: number, target?: SignedHead, signal?: AbortSignal }) => Promise<FetchResult>
}

const SILENT: ProtocolLog = { debug: () => {}, warn: () => {} }

class HiveLedger extends EventTarget implements Ledger {
  readonly store: LedgerStore
  readonly self: string
  private currentTopic: string
  private readonly components: LedgerComponents
  private readonly log: ProtocolLog
  private readonly announceIntervalMs?: number
  private readonly requestTimeoutMs: number
  private readonly distrustMs: number
  private readonly gate: PeerGate
  private readonly tasks = new Set<Promise<unknown>>()
  private readonly pulling = new Map<string, { candidates: PeerId[], again: boolean }>()
  /** Chains to fetch again later (connected peers only): failures so far, and the timer. */
  private readonly retries = new Map<string, { failures: number, timer?: NodeJS.Timeout }>()
  private readonly distrusted = new Map<string, number>()
  private served?: ServedProtocol
  private timer?: NodeJS.Timeout
  private readonly headCoalesceMs: number
  private headTimer?: NodeJS.Timeout
  private lastHeadAt = -Infinity
  /** The seq of this device's head last announced since start (its records went with it). */
  private lastAnnouncedSeq?: number
  private stopping = new AbortController()
  private running = false
  private state: LedgerHealth = LEDGER_OK

  constructor (init: LedgerInit, components: LedgerComponents) {
    super()
    if (components.db == null) throw new TypeError('createLedger needs a level database handle (components.db)')
    if (components.signer == null) throw new TypeError('createLedger needs the device signer (components.signer)')
    if (components.host == null) throw new TypeError('createLedger needs a libp2p-like host (components.host)')
    if (components.pubsub == null) throw new TypeError('createLedger needs a pubsub service (components.pubsub)')
    this.components = components
    this.store = new LedgerStore(components.db)
    this.self = components.signer.peerId.toString()
    this.currentTopic = init.topic ?? DEFAULT_HEADS_TOPIC
    this.log = components.log ?? SILENT
    this.gate = components.gate ?? OPEN_GATE
    this.announceIntervalMs = init.announceIntervalMs
    this.headCoalesceMs = init.headCoalesceMs ?? 2000
    this.requestTimeoutMs = init.requestTimeoutMs ?? 30_000
    this.distrustMs = init.distrustMs ?? 60_000
  }

  get topic (): string {
    return this.currentTopic
  }

  setTopic (topic: string): void {
    if (topic === this.currentTopic) return
    if (this.running) this.leaveTopic()
    this.currentTopic = topic
    if (this.running) {
      this.components.pubsub.subscribe(topic)
      this.track(this.announce())
    }
  }

  private leaveTopic (): void {
    try {
      this.components.pubsub.unsubscribe(this.currentTopic)
    } catch {
      // pubsub may already be stopped with libp2p
    }
  }

  // ------------------------------------------------------------------------------------------
  // lifecycle

  async start (): Promise<void> {
    if (this.running) return
    this.stopping = new AbortController()
    await this.store.setSelf(this.self)
    // before anything can execute here: a chain that is damaged takes no more records
    await this.checkSelf()
    this.served = await serveProtocol(this.components.host, LEDGER_PROTOCOL, async (stream, context) => { await this.serve(stream, context) }, {
      log: this.log,
      gate: this.gate,
      maxMessageBytes: MAX_LEDGER_FRAME_BYTES,
      timeoutMs: this.requestTimeoutMs * 4,
      onPeerFault: (peer, err) => { this.refused(peer, undefined, err.name, err.message) }
    })
    this.components.pubsub.addEventListener('message', this.onMessage)
    this.components.pubsub.subscribe(this.topic)
    this.components.host.addEventListener?.('peer:connect', this.onConnect)
    this.running = true
    this.scheduleAnnounce()
    // catch up with whoever is connected already, and tell them what this node holds
    for (const peer of this.components.host.getPeers()) this.track(this.syncWith(peer))
    this.track(this.announce())
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    clearTimeout(this.timer)
    clearTimeout(this.headTimer)
    this.headTimer = undefined
    this.stopping.abort(new LedgerNotStartedError('the ledger is stopping'))
    for (const retry of this.retries.values()) clearTimeout(retry.timer)
    this.retries.clear()
    this.components.host.removeEventListener?.('peer:connect', this.onConnect)
    this.components.pubsub.removeEventListener('message', this.onMessage)
    this.leaveTopic()
    await this.served?.stop().catch(() => {})
    await Promise.allSettled([...this.tasks])
  }

  /** The next periodic announcement, spaced by the hive's size as it is then. */
  private scheduleAnnounce (): void {
    if (!this.running) return
    const interval = this.announceIntervalMs ?? announceIntervalFor(this.components.members?.() ?? 0)
    this.timer = setTimeout(() => {
      this.track(this.announce())
      this.scheduleAnnounce()
    }, interval)
    this.timer.unref()
  }

  private track (promise: Promise<unknown>): void {
    const task = promise.catch((err: Error) => {
      if (!this.stopping.signal.aborted) this.log.debug(`ledger background task failed: ${err.name}: ${err.message}`)
    })
    this.tasks.add(task)
    void task.finally(() => this.tasks.delete(task))
  }

  private requestSignal (signal?: AbortSignal): AbortSignal {
    const signals = [this.stopping.signal, AbortSignal.timeout(this.requestTimeoutMs)]
    if (signal != null) signals.push(signal)
    return AbortSignal.any(signals)
  }

  // ------------------------------------------------------------------------------------------
  // local API

  async append (input: AppendInput, options: { signal?: AbortSignal } = {}): Promise<LedgerRecord> {
    if (this.state.state !== 'ok') throw appendRefusal(this.state)
    let record: LedgerRecord
    try {
      record = await this.store.append(this.components.signer, input, options)
    } catch (err) {
      // the store found its own chain behind a head it signed: say so until it is whole again
      if (err instanceof LedgerRollbackError) await this.checkSelf().catch(() => {})
      throw err
    }
    this.dispatchEvent(new CustomEvent<LedgerEventDetails['chain']>('chain', { detail: { signer: this.self, end: record.seq, stored: 1 } }))
    if (this.running) this.announceOwnHead()
    return record
  }

  async verify (options: { signer?: string, signal?: AbortSignal } = {}): Promise<AuditReport> {
    let report: AuditReport
    if (options.signer == null) {
      report = await verifyAll(this.store, { self: this.self, signal: options.signal })
    } else {
      const started = performance.now()
      const chain: ChainReport = await verifyChain(this.store, options.signer, { self: this.self, signal: options.signal })
      report = { ok: chain.ok, chains: [chain], records: chain.checked, durationMs: Math.round(performance.now() - started) }
    }
    // an audit that disagrees with the state held is checked again with appends held off (an
    // audit that reads while a record lands may see its head before the record)
    const own = report.chains.find(c => c.signer === this.self)
    if (own != null && own.ok !== (this.state.state === 'ok')) await this.checkSelf(options.signal)
    this.dispatchEvent(new CustomEvent<LedgerEventDetails['verified']>('verified', { detail: { ok: report.ok, records: report.records, chains: report.chains.length } }))
    return report
  }

  health (): LedgerHealth {
    return this.state
  }

  unwritable (): LedgerDamagedError | undefined {
    return this.state.state === 'ok' ? undefined : damagedError(this.state)
  }

  /** Audits this device's chain with its writes held off, and takes the result as the health. */
  private async checkSelf (signal?: AbortSignal): Promise<void> {
    const chain = await this.store.withChain(this.self, async () => verifyChain(this.store, this.self, { self: this.self, signal }))
    this.setHealth(healthOf(chain))
  }

  private setHealth (next: LedgerHealth): void {
    const was = this.state
    this.state = next
    if (was.state === next.state && was.reason === next.reason && was.seq === next.seq) return
    if (next.state === 'damaged') {
      this.log.warn(`this device's ledger chain is damaged (${next.reason ?? ''} at seq ${next.seq ?? ''}: ${next.message ?? ''}); no task runs here until it is whole. ${next.recovery ?? ''}`)
    } else {
      this.log.warn('this device\'s ledger chain is whole again; tasks run here again')
    }
    this.dispatchEvent(new CustomEvent<LedgerEventDetails['health']>('health', { detail: next }))
  }

  async list (options: { signer?: string, limit?: number, signal?: AbortSignal } = {}): Promise<ListedRecord[]> {
    return this.store.list(options.signer ?? this.self, options)
  }

  async chains (): Promise<ChainSummary[]> {
    const signers = new Set([this.self, ...await this.store.signers()])
    const out: ChainSummary[] = []
    for (const signer of signers) {
      const end = await this.store.end(signer)
      out.push({
        signer,
        self: signer === this.self,
        end: end?.seq ?? -1,
        headSeq: safeHead(await this.store.headRaw(signer))?.seq ?? null,
        seenSeq: safeHead(await this.store.seenRaw(signer))?.seq ?? null
      })
    }
    return out.sort((a, b) => Number(b.self) - Number(a.self) || a.signer.localeCompare(b.signer))
  }

  // ------------------------------------------------------------------------------------------
  // gossip

  /**
   * Announces this device's new head after an append: at once when none went out within
   * `headCoalesceMs`, else once that time is up, carrying whatever head is newest then. A burst
   * of appends then costs every peer one head, one fetch and one synced write per interval
   * instead of per record; a lone append is announced without delay.
   */
  private announceOwnHead (): void {
    if (this.headTimer != null) return
    const send = (): void => {
      this.headTimer = undefined
      this.lastHeadAt = performance.now()
      this.track((async () => {
        const raw = await this.store.headRaw(this.self)
        if (raw == null || !this.running) return
        const head = decodeHead(raw)
        const records = await this.recordsSinceAnnounced(head)
        this.lastAnnouncedSeq = head.seq
        await this.publishHeads([raw], records)
      })())
    }
    const wait = this.lastHeadAt + this.headCoalesceMs - performance.now()
    if (wait <= 0) {
      send()
      return
    }
    this.headTimer = setTimeout(send, wait)
  }

  async announce (_options: { signal?: AbortSignal } = {}): Promise<void> {
    const heads = await this.store.allHeads()
    if (heads.length === 0) {
      this.lastAnnouncedSeq ??= -1
      return
    }
    // the records after this device's head go with its next announcement
    const own = heads.find(h => h.signer === this.self)
    if (this.lastAnnouncedSeq == null) this.lastAnnouncedSeq = own?.seq ?? -1
    await this.publishHeads(heads.map(h => h.bytes))
  }

  /**
   * This device's records appended since its last announcement, up to `head`, when they fit in
   * one (MAX_PUSHED_RECORDS, MAX_PUSHED_BYTES): peers then store them from the gossip instead of
   * each opening a stream to fetch them. None after a start (peers fetch what they miss) or when
   * more were appended.
   */
  private async recordsSinceAnnounced (head: SignedHead): Promise<PushedRecords | undefined> {
    const last = this.lastAnnouncedSeq
    if (last == null || head.seq <= last || head.seq - last > MAX_PUSHED_RECORDS) return undefined
    const records: Uint8Array[] = []
    let size = 0
    for await (const chunk of this.store.chunks(this.self, { from: last + 1, to: head.seq, chunk: MAX_PUSHED_RECORDS })) {
      for (const entry of chunk) {
        size += entry.bytes.byteLength
        if (entry.seq !== last + 1 + records.length || size > MAX_PUSHED_BYTES) return undefined
        records.push(entry.bytes)
      }
    }
    if (records.length !== head.seq - last) return undefined
    return { signer: this.self, from: last + 1, records }
  }

  private async publishHeads (heads: Uint8Array[], records?: PushedRecords): Promise<void> {
    for (let i = 0; i < heads.length; i += MAX_HEADS_PER_MESSAGE) {
      const data = encodeMessage({ type: 'heads', heads: heads.slice(i, i + MAX_HEADS_PER_MESSAGE), ...(records != null && i === 0 ? { records } : {}) })
      try {
        await this.components.pubsub.publish(this.topic, data)
      } catch (err) {
        // no subscribed peers yet, or a duplicate of the last announcement: the next one will do
        this.log.debug(`announcing ledger heads: ${(err as Error).message}`)
      }
    }
  }

  private readonly onMessage = (event: CustomEvent<LedgerPubSubMessage>): void => {
    const message = event.detail
    if (message.topic !== this.topic || !this.running) return
    const from = message.from
    if (from != null && (!this.gate.allows(from, this.topic) || this.isDistrusted(from))) return
    this.track(this.takeHeads(message.data, from))
  }

  private readonly onConnect = (event: CustomEvent<PeerId>): void => {
    if (!this.running || this.components.transient?.(event.detail.toString()) === true) return
    this.track(this.syncWith(event.detail))
  }

  /** Handles heads from gossip or a heads response; a bad one drops the peer that sent it. */
  private async takeHeads (data: Uint8Array | Uint8Array[], from?: PeerId): Promise<void> {
    let heads: Uint8Array[]
    let pushed: PushedRecords | undefined
    try {
      if (data instanceof Uint8Array) {
        const message = decodeMessage(data, HeadsMessage)
        heads = message.heads
        pushed = message.records
      } else {
        heads = data
      }
    } catch (err) {
      if (from != null) await this.drop(from, undefined, 'malformed-gossip', (err as Error).message)
      return
    }
    for (const bytes of heads) {
      let head: SignedHead
      let outcome: HeadOutcome
      try {
        head = decodeHead(bytes)
        if (pushed != null && pushed.signer === head.signer && pushed.from + pushed.records.length - 1 === head.seq) {
          const taken = await this.takePushed(pushed, head, from)
          pushed = undefined
          if (taken === 'stored') continue
          if (taken === 'refused') return
        }
        outcome = await this.store.acceptHead(head)
      } catch (err) {
        if (err instanceof MalformedRecordError || err instanceof BadHeadError) {
          if (from != null) await this.drop(from, undefined, 'bad-head', err.message)
          return
        }
        throw err
      }
      if (outcome === 'ahead') {
        if (head.signer === this.self) {
          const end = (await this.store.end(this.self))?.seq ?? -1
          this.log.warn(`a peer holds this device's signed head for seq ${head.seq} but the local chain ends at ${end}: the ledger store was restored from an older copy; appends are refused while the missing records are fetched back from peers`)
          this.setHealth(damaged('rollback', end + 1, `this device's chain ends at seq ${end} but this device signed a head for seq ${head.seq}, held by a peer`))
          this.dispatchEvent(new CustomEvent('rollback', { detail: { seq: head.seq, end } }))
        }
        // a peer's chain to catch up on, or this device's own records to take back from a copy
        this.pull(head.signer, from)
      } else if (outcome === 'known' && head.seq > ((await this.store.end(head.signer))?.seq ?? -1)) {
        // a head already seen that a fetch has not caught up with: this peer may hold the records
        this.pull(head.signer, from)
      } else if (outcome === 'conflict' && from != null && head.signer !== this.self) {
        // fetch the other record for that seq: together with ours it proves the fork
        this.track(this.fetchRecords(from, head.signer, head.seq, { to: head.seq }))
      }
    }
  }

  /**
   * Stores the records an announcement carries, checked as a fetched copy is, with their head:
   * 'stored' when the head is now covered, 'refused' when the copy was bad (its sender is
   * dropped), 'skipped' when they do not follow the records held (a fetch fills the gap instead).
   */
  private async takePushed (pushed: PushedRecords, head: SignedHead, from?: PeerId): Promise<'stored' | 'refused' | 'skipped'> {
    if (head.signer === this.self) return 'skipped'
    const end = (await this.store.end(head.signer))?.seq ?? -1
    if (pushed.from > end + 1 || head.seq <= end) return 'skipped'
    try {
      const accepted = await this.store.acceptRecords(head.signer, pushed.from, pushed.records, { head, signal: this.stopping.signal })
      this.copied(head.signer, accepted)
      // a fork is handled here: both records are kept as proof, as a fetch would keep them
      return accepted.headStored || accepted.fork != null ? 'stored' : 'skipped'
    } catch (err) {
      // records that do not follow the ones held, or do not link to the last one held (the
      // signer's chain forked before them): a fetch from the last record held sorts it out,
      // and keeps the proof, as for any announced head
      if (err instanceof BadCopyError && (err.reason === 'gap' || (err.reason === 'broken-link' && err.seq === pushed.from))) return 'skipped'
      if (err instanceof BadCopyError || err instanceof MalformedRecordError || err instanceof BadHeadError) {
        if (from != null) await this.drop(from, head.signer, err instanceof BadCopyError ? err.reason : err.name, err.message)
        return 'refused'
      }
      throw err
    }
  }

  /** Tells of a fork found in `signer`'s chain at `seq`: both records are kept as proof. */
  private forked (signer: string, seq: number): void {
    this.log.warn(signer === this.self
      ? `this device signed two different records for seq ${seq}: its store was restored from an older copy and it appended before a peer told it so. Its chain is forked; both records are kept as proof, appends stay refused, and "hive-node verify" reports it`
      : `${signer} signed two different records for seq ${seq}; both are kept as proof`)
    this.dispatchEvent(new CustomEvent('fork', { detail: { signer, seq } }))
    if (signer === this.self) this.setHealth(damaged('fork', seq, `this device signed two different records for seq ${seq}`))
  }

  /** Tells what a copy added to a chain: a fork found in it, records stored. */
  private copied (signer: string, accepted: { stored: number, end: number, fork?: number }): void {
    if (accepted.fork != null) this.forked(signer, accepted.fork)
    if (accepted.stored > 0) this.dispatchEvent(new CustomEvent<LedgerEventDetails['chain']>('chain', { detail: { signer, end: accepted.end, stored: accepted.stored } }))
  }

  // ------------------------------------------------------------------------------------------
  // fetching

  /** Fetches `signer`'s chain up to the newest head seen, trying `preferred` first. */
  private pull (signer: string, preferred?: PeerId): void {
    const running = this.pulling.get(signer)
    if (running != null) {
      // a newer head arrived meanwhile: look again once this pull ends
      running.again = true
      if (preferred != null && !running.candidates.some(p => p.equals(preferred))) running.candidates.push(preferred)
      return
    }
    const state = { candidates: preferred != null ? [preferred] : [], again: false }
    this.pulling.set(signer, state)
    this.track((async () => {
      let outcome: 'done' | 'behind' = 'done'
      try {
        outcome = await this.pullFrom(signer, state.candidates)
      } finally {
        this.pulling.delete(signer)
      }
      this.retryLater(signer, outcome)
      if (signer === this.self) await this.afterSelfPull()
      if (state.again && this.running) this.pull(signer, state.candidates[state.candidates.length - 1])
    })())
  }

  /** After fetching this device's own records back: say whether the chain is whole again. */
  private async afterSelfPull (): Promise<void> {
    const seen = safeHead(await this.store.seenRaw(this.self))
    const end = (await this.store.end(this.self))?.seq ?? -1
    if (seen == null || seen.seq <= end) {
      this.log.warn(`this device's ledger chain was restored from peers up to seq ${end}; appending again`)
      await this.checkSelf()
      this.dispatchEvent(new CustomEvent('restored', { detail: { end } }))
    } else if (this.running) {
      this.log.warn(`no connected peer gave back this device's records ${end + 1}..${seen.seq}; appends stay refused, and a peer that announces the head is asked again`)
    }
  }

  /**
   * Connected peers only: a chain still behind after a pull is asked for again later, since a
   * neighbour may fetch it meanwhile; one caught up forgets its back-off.
   */
  private retryLater (signer: string, outcome: 'done' | 'behind'): void {
    const known = this.retries.get(signer)
    if (outcome === 'done' || !this.running || this.components.connectedOnly?.() !== true) {
      if (known != null && known.timer == null) this.retries.delete(signer)
      return
    }
    const state = known ?? { failures: 0 }
    if (state.timer != null) return
    this.retries.set(signer, state)
    const delay = Math.min(FETCH_RETRY_MAX_MS, FETCH_RETRY_MIN_MS * 2 ** state.failures)
    state.failures++
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (this.running) this.pull(signer)
    }, delay)
    state.timer.unref()
  }

  private async pullFrom (signer: string, candidates: PeerId[]): Promise<'done' | 'behind'> {
    // peers that failed or had nothing new; a peer that delivered is asked again while newer
    // heads keep arriving during the fetch
    const exhausted = new Set<string>()
    const next = (): PeerId | undefined => {
      const connected = this.components.host.getPeers()
      // beyond an all-to-all hive, whoever announced a head may be a member this device has no
      // connection to: its neighbours fetch the chain and give it on instead
      const named = this.components.connectedOnly?.() === true ? candidates.filter(p => connected.some(c => c.equals(p))) : candidates
      const order = [...named, ...connected.filter(p => p.toString() === signer), ...connected]
      return order.find(p => !exhausted.has(p.toString()) && !this.isDistrusted(p))
    }
    while (this.running) {
      const seen = safeHead(await this.store.seenRaw(signer))
      const end = (await this.store.end(signer))?.seq ?? -1
      if (seen == null || seen.seq <= end) return 'done'
      const peer = next()
      if (peer == null) return 'behind'
      try {
        // from the last record held, not the one after: if the signer signed another record
        // there (a fork), the copy is compared with it and kept as proof, instead of failing to
        // link and being blamed on the peer that sent it
        const result = await this.fetchRecords(peer, signer, Math.max(0, end), { to: seen.seq, target: seen })
        if (result.fork != null) return 'done'
        if (result.stored === 0) exhausted.add(peer.toString())
      } catch (err) {
        exhausted.add(peer.toString())
        this.log.debug(`fetching ${signer}'s chain from ${peer.toString()}: ${(err as Error).message}`)
      }
    }
    return 'done'
  }

  async fetchRecords (peer: PeerId, signer: string, from: number, options: { to?: number, target?: SignedHead, signal?: AbortSignal } = {}): Promise<FetchResult> {
    const signal = this.requestSignal(options.signal)
    let stream: FramedStream
    try {
      stream = await dialFramed(this.components.host, peer, LEDGER_PROTOCOL, { signal, maxMessageBytes: MAX_LEDGER_FRAME_BYTES })
    } catch (err) {
      throw new LedgerFetchError(`could not open ${LEDGER_PROTOCOL} to ${peer.toString()}: ${(err as Error).message}`)
    }
    let result: FetchResult = { stored: 0, end: (await this.store.end(signer))?.seq ?? -1 }
    try {
      await stream.write({ type: 'records', signer, from, ...(options.to != null ? { to: options.to } : {}), reads: READS_VERSION }, { signal })
      let next = from
      for (;;) {
        const message = await stream.read(RecordsResponseV3, { signal })
        if (message.type === 'end') {
          if (message.head != null) {
            const head = decodeHead(message.head)
            if (head.signer !== signer) throw new BadCopyError(`${peer.toString()} answered a request for ${signer} with another signer's head`, next, 'wrong-chain')
            await this.store.acceptHead(head)
          }
          break
        }
        if (message.from !== next) throw new BadCopyError(`${peer.toString()} sent records from ${message.from} where ${next} was due`, next, 'reordered')
        if (options.to != null && message.from + message.records.length - 1 > options.to) {
          throw new BadCopyError(`${peer.toString()} sent records past seq ${options.to}`, options.to + 1, 'reordered')
        }
        const accepted = await this.store.acceptRecords(signer, message.from, message.records, { head: options.target, signal })
        next += message.records.length
        result = { stored: result.stored + accepted.stored, end: accepted.end, ...(accepted.fork != null ? { fork: accepted.fork } : {}) }
        if (accepted.fork != null) {
          this.forked(signer, accepted.fork)
          break
        }
      }
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      const error = err as Error
      stream.abort(error)
      if (err instanceof BadCopyError || err instanceof MalformedRecordError || err instanceof BadHeadError || isPeerFault(err)) {
        await this.drop(peer, signer, err instanceof BadCopyError ? err.reason : error.name, error.message)
      }
      throw err
    }
    if (result.stored > 0) this.dispatchEvent(new CustomEvent<LedgerEventDetails['chain']>('chain', { detail: { signer, end: result.end, stored: result.stored } }))
    return result
  }

  async syncWith (peer: PeerId, options: { signal?: AbortSignal } = {}): Promise<void> {
    if (!this.gate.allows(peer, LEDGER_PROTOCOL) || this.isDistrusted(peer)) return
    const signal = this.requestSignal(options.signal)
    let heads: Uint8Array[]
    const stream = await dialFramed(this.components.host, peer, LEDGER_PROTOCOL, { signal, maxMessageBytes: MAX_LEDGER_FRAME_BYTES })
    try {
      await stream.write({ type: 'heads' }, { signal })
      heads = (await stream.read(HeadsMessage, { signal })).heads
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream.abort(err as Error)
      if (isPeerFault(err)) await this.drop(peer, undefined, (err as Error).name, (err as Error).message)
      throw err
    }
    await this.takeHeads(heads, peer)
  }

  // ------------------------------------------------------------------------------------------
  // serving

  private async serve (stream: FramedStream, context: InboundContext): Promise<void> {
    const request = await stream.read(LedgerRequest, { signal: context.signal })
    if (request.type === 'heads') {
      const heads = await this.store.allHeads()
      await stream.write({ type: 'heads', heads: heads.slice(0, MAX_HEADS_PER_MESSAGE).map(h => h.bytes) }, { signal: context.signal })
      return
    }
    const to = Math.min(request.to ?? Number.MAX_SAFE_INTEGER, request.from + 1_000_000)
    // a peer on an older release reads versions 1 and 2 only: it gets the chain up to the first
    // record it could not decode, rather than a copy it would refuse (and drop this node for)
    const reads = request.reads ?? LEGACY_READS_VERSION
    let next = request.from
    for await (const chunk of this.store.chunks(request.signer, { from: request.from, to, chunk: RECORDS_PER_FRAME, signal: context.signal })) {
      // serve the contiguous part only: a hole in this copy ends the answer there
      let cut = chunk.length
      for (let i = 0; i < chunk.length; i++) {
        const entry = chunk[i] as { seq: number, bytes: Uint8Array }
        if (entry.seq !== next + i || (entry.bytes[0] ?? 0) > reads) { cut = i; break }
      }
      for (const records of recordFrames(chunk.slice(0, cut).map(e => e.bytes))) {
        await stream.write({ type: 'records', from: next, records }, { signal: context.signal })
        next += records.length
      }
      if (cut < chunk.length) break
    }
    const head = await this.store.headRaw(request.signer)
    await stream.write({ type: 'end', ...(head != null ? { head } : {}) }, { signal: context.signal })
  }

  // ------------------------------------------------------------------------------------------
  // misbehaving peers

  private isDistrusted (peer: PeerId): boolean {
    const until = this.distrusted.get(peer.toString())
    if (until == null) return false
    if (Date.now() < until) return true
    this.distrusted.delete(peer.toString())
    return false
  }

  private refused (peer: PeerId, signer: string | undefined, reason: string, message: string): void {
    this.log.warn(`refused ledger data from ${peer.toString()}: ${reason}: ${message}`)
    const detail: RefusedDetail = { peer: peer.toString(), reason, message, ...(signer != null ? { signer } : {}) }
    this.dispatchEvent(new CustomEvent('refused', { detail }))
  }

  /** A peer that sent a bad copy, head or message: refuse it, hang up, and do not ask it again for a while. */
  private async drop (peer: PeerId, signer: string | undefined, reason: string, message: string): Promise<void> {
    this.distrusted.set(peer.toString(), Date.now() + this.distrustMs)
    this.refused(peer, signer, reason, message)
    await this.components.host.hangUp(peer).catch(() => {})
  }
}

function safeHead (bytes: Uint8Array | undefined): SignedHead | undefined {
  if (bytes == null) return undefined
  try {
    return decodeHead(bytes)
  } catch {
    return undefined
  }
}

export function createLedger (init: LedgerInit, components: LedgerComponents): Ledger {
  return new HiveLedger(init, components)
}
