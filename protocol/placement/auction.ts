// Auctioneer: the submitter's role. It announces a task, collects signed bids, closes the
// auction when every live capable member has bid or at the deadline, elects, publishes the
// signed award, serves the input to the winner, watches the winner (lease and grace), re-elects
// when it is gone, and accepts at most one result. It answers the requests of bidders and
// winners as SubmitterHandlers; whether they come from a stream or from this node is rpc.ts's
// business, not its own.

import { chooseCandidates } from './candidates.ts'
import { canRun } from './cost.ts'
import { ELECTION_RULE, elect } from './election.ts'
import { BiddersExhaustedError, InvalidTaskError, NoBidsError, PlacementNotRunningError, TaskAlreadyEndedError, TaskNotFoundError, TaskWaitAbortedError } from './errors.ts'
import { errorText } from './components.ts'
import { newTaskId, sha256Hex } from './ids.ts'
import { LIVE_LOG_LIMITS, refusal } from './messages.ts'
import { bidFromRecord, bidKey, createAwardRecord, fitBidRecords } from './records.ts'
import { TypedEventTarget } from './events.ts'
import { WinnerWatch } from './lease.ts'
import { announceFields, isEnded } from './views.ts'
import type { CapabilitySource, PlacementComponents, PlacementRecords, PlacementSettings, SubmitOptions } from './components.ts'
import type { CapabilityReport } from '../capabilities/index.ts'
import type { Digest, TaskId } from './ids.ts'
import type { AgentLogLine } from './components.ts'
import type { Announce, AwardPayload, BidPayload, LogsRequest, PlacementGossip, RecordedMessage as Recorded, Refusal, SubmitTask } from './messages.ts'
import type { HeldBid } from './records.ts'
import type { AckAnswer, ClaimAnswer, RenewAnswer, ResultAnswer, ResultRequest, SubmitterHandlers } from './rpc.ts'
import type { BidSource, HistoryEvent, HistoryType, TaskResult, TaskStatus, TaskView } from './views.ts'
import type { RecordSigner } from '../wire/dht-records.ts'
import type { ProtocolLog } from '../wire/serve.ts'
import type { AbortOptions } from '@libp2p/interface'

/** One task submitted here. Round, winner and acceptance are read off its awards and result. */
export interface Auction {
  readonly id: TaskId
  readonly announce: Announce
  /** Served to the winner; dropped when the task ends. */
  input: string
  status: TaskStatus
  readonly createdAt: number
  closedAt?: number
  readonly expected: Set<string>
  readonly bids: Map<string, HeldBid>
  readonly excluded: Set<string>
  readonly awards: AwardPayload[]
  /** The signed record of the newest award. */
  awardRecord?: Uint8Array
  /**
   * Pinned to this node: no other member could bid, so nothing is gossiped about it. Its award
   * is still published in the DHT once it ends.
   */
  readonly solo: boolean
  readonly leaseMs: number
  readonly watch: WinnerWatch
  closing: boolean
  /** The deadline came with no bid while members asked were live, and was put back once. */
  extended?: boolean
  result?: TaskResult
  error?: { code: string, message: string }
  readonly history: HistoryEvent[]
  readonly done: PromiseWithResolvers<void>
  timer?: NodeJS.Timeout
  readonly round: number
  readonly winner: string | undefined
  /** A result was accepted: no other one will be. */
  readonly accepted: boolean
  /** The log lines the current round's winner streamed: the next line's number and the bytes so far. */
  live?: { round: number, next: number, bytes: number }
}

export interface AuctioneerEvents extends Record<string, unknown> {
  task: TaskView
  'winner-disconnected': { task: TaskId, peer: string, round: number }
  'winner-reconnected': { task: TaskId, peer: string, round: number }
  /**
   * A bid on a task submitted here: taken (`accepted`, `dht` when found there at the deadline),
   * refused as invalid (`refused`), or too late for the election (`late`).
   */
  'bid-received': { task: TaskId, bidder: string, outcome: 'accepted' | 'dht' | 'refused' | 'late' }
  /** Log lines the winner of a task submitted here streamed while it runs, numbered from `from` within its round. */
  logs: { task: TaskId, round: number, executor: string, from: number, lines: AgentLogLine[] }
  /** A task reached its outcome (done or failed). */
  decided: { task: TaskId, award?: { payload: AwardPayload, record: Uint8Array }, bids: HeldBid[] }
}

export interface AuctioneerComponents {
  self: string
  signer: RecordSigner
  records: PlacementRecords
  capabilities: Pick<CapabilitySource, 'view'>
  /** This node and every peer it is connected to now. */
  connected: () => ReadonlySet<string>
  /** Whose bids are expected: `connected`, and members reached through the mesh. `connected` when omitted. */
  reachable?: () => ReadonlySet<string>
  /** Sends a gossip message on the placement topic (best effort). */
  publish: (message: PlacementGossip) => Promise<void>
  /** This node bids on its own task as any member does (gossip does not come back to its author). */
  bidHere: (announce: Announce) => void
  /** Why this node did not bid on a task, when it declined one. */
  declinedHere?: (task: TaskId) => string | undefined
  /** Why a device's own policy keeps it from a task (PlacementComponents.refuses). */
  refuses?: (permissions: readonly string[], caps: CapabilityReport) => string | undefined
  /** Why the hive's policy keeps a device with this report from a task, as far as its report tells (PlacementComponents.policy). */
  policy?: (peer: string, announce: Announce, caps: CapabilityReport) => string | undefined
  /** A round was awarded; its signed record is ready. */
  onAwarded: (award: AwardPayload, record: Uint8Array) => void
  /** Bids missing at the deadline may be in the DHT. */
  lookupBid: (task: TaskId, bidder: string, options: AbortOptions) => Promise<Omit<HeldBid, 'via'> | undefined>
  /** Whether missing bids are looked up there (PlacementComponents.bidsThroughDht); true when omitted. */
  bidsThroughDht?: () => boolean
  agents: { put: (bytes: Uint8Array) => Digest, pin: (digest: Digest) => void, unpin: (digest: Digest) => void }
  /** PlacementComponents.keepResult. */
  keepResult?: PlacementComponents['keepResult']
  /** PlacementComponents.keptBefore. */
  keptBefore?: PlacementComponents['keptBefore']
  log: ProtocolLog
}

const MAX_HISTORY = 200

export class Auctioneer extends TypedEventTarget<AuctioneerEvents> implements SubmitterHandlers {
  private readonly components: AuctioneerComponents
  private readonly settings: PlacementSettings
  private readonly auctions = new Map<TaskId, Auction>()
  private stopping = new AbortController()
  private running = false

  constructor (settings: PlacementSettings, components: AuctioneerComponents) {
    super()
    this.settings = settings
    this.components = components
  }

  start (): void {
    this.running = true
    this.stopping = new AbortController()
  }

  stop (): void {
    this.running = false
    this.stopping.abort(new PlacementNotRunningError('placement stopped'))
    for (const auction of this.auctions.values()) {
      clearTimeout(auction.timer)
      auction.watch.clear()
      if (!isEnded(auction.status)) {
        auction.done.reject(new PlacementNotRunningError(`placement stopped before task ${auction.id} finished`))
      }
    }
  }

  get (id: TaskId): Auction | undefined {
    return this.auctions.get(id)
  }

  all (): IterableIterator<Auction> {
    return this.auctions.values()
  }

  /** Whether a task submitted here is still open. */
  get busy (): boolean {
    for (const a of this.auctions.values()) if (!isEnded(a.status)) return true
    return false
  }

  /** Announces a validated task and opens its auction. */
  async submit (task: SubmitTask, options: SubmitOptions = {}, name?: string): Promise<TaskView> {
    if (!this.running) throw new PlacementNotRunningError('placement is not running; start the node first')
    options.signal?.throwIfAborted()
    if (options.taskId != null && this.auctions.has(options.taskId)) throw new InvalidTaskError(`task ${options.taskId} was already submitted here; a task id is used once`)
    const { self } = this.components
    const agent = this.components.agents.put(task.agent)
    this.components.agents.pin(agent)
    const id = options.taskId ?? newTaskId()
    const bidWindowMs = task.bidWindowMs ?? this.settings.bidWindowMs
    const announce: Announce = {
      v: 1,
      t: 'announce',
      task: id,
      submitter: self,
      agent,
      agentSize: task.agent.byteLength,
      input: sha256Hex(task.input),
      inputSize: Buffer.byteLength(task.input, 'utf8'),
      requirements: task.requirements ?? { runtime: 'wasm-component', models: [] },
      permissions: task.permissions ?? [],
      ...(task.contextId != null ? { context: task.contextId } : {}),
      ...(name != null ? { name } : {}),
      bidWindowMs
    }
    const capable: Array<{ peerId: string, caps: CapabilityReport }> = []
    const refusing: Array<{ peer: string, why: string }> = []
    const connected = this.components.connected()
    const reachable = this.components.reachable?.() ?? connected
    for (const entry of this.components.capabilities.view()) {
      if (!reachable.has(entry.peerId)) continue
      if (!canRun(announce.requirements, entry.caps, entry.peerId).ok) continue
      const why = this.components.refuses?.(announce.permissions, entry.caps) ?? this.components.policy?.(entry.peerId, announce, entry.caps)
      if (why != null) refusing.push({ peer: entry.peerId, why })
      else capable.push({ peerId: entry.peerId, caps: entry.caps })
    }
    // in a large hive only some are asked to bid, and the announcement names them
    const choice = announce.requirements.peer != null
      ? { cheapest: 0, drawn: 0 }
      : chooseCandidates(id, announce.requirements, announce.agentSize, capable, this.settings.maxBidders, (peer) => this.underWay(peer), (peer) => connected.has(peer))
    if (choice.named != null) announce.candidates = choice.named
    const expected = new Set(choice.named ?? capable.map(c => c.peerId))
    const auction = this.open(id, announce, task.input, expected, task.leaseMs ?? this.settings.leaseMs)
    this.note(auction, 'submitted', `agent ${agent.slice(0, 12)}…, ${expected.size} live capable member${expected.size === 1 ? '' : 's'} expected to bid within ${bidWindowMs} ms` +
      (choice.named != null ? ` (candidates of ${capable.length}: the ${choice.cheapest} cheapest by their reports and ${choice.drawn} drawn by the task id; the other ${capable.length - expected.size} were not asked)` : ''))
    // a device whose policy refuses what the task needs will not bid: explain says so, and why
    for (const r of refusing) this.note(auction, 'bid-declined', `will not bid: ${r.why}`.slice(0, 500), { peer: r.peer })
    auction.timer = setTimeout(() => { void this.close(auction, 'deadline') }, bidWindowMs)
    // the task is seen before any bid on it, this device's own included
    this.emitTask(auction)
    this.components.bidHere(announce)
    if (!auction.solo) await this.components.publish(announce)
    return this.view(auction)
  }

  private open (id: TaskId, announce: Announce, input: string, expected: Set<string>, leaseMs: number): Auction {
    const awards: AwardPayload[] = []
    const holder: { result?: TaskResult } = {}
    const auction: Auction = {
      id,
      announce,
      input,
      status: 'bidding',
      createdAt: Date.now(),
      expected,
      bids: new Map(),
      excluded: new Set(),
      awards,
      leaseMs,
      solo: announce.requirements.peer === this.components.self,
      watch: new WinnerWatch({
        graceMs: this.settings.winnerGraceMs,
        connected: (peer) => this.components.connected().has(peer),
        onLost: (reason, winner, round) => { this.lost(auction, reason, winner, round) },
        onGrace: (state, peer, round) => {
          if (state === 'started') {
            this.components.log.debug(`winner ${peer} of ${id} round ${round} is disconnected; re-electing unless it reconnects within ${this.settings.winnerGraceMs} ms`)
            this.emit('winner-disconnected', { task: id, peer, round })
          } else {
            this.components.log.debug(`winner ${peer} of ${id} round ${round} reconnected within the grace`)
            this.emit('winner-reconnected', { task: id, peer, round })
          }
        }
      }),
      closing: false,
      history: [],
      done: Promise.withResolvers<void>(),
      get round () { return awards.at(-1)?.round ?? 0 },
      get winner () { return awards.at(-1)?.winner },
      get accepted () { return holder.result != null },
      get result () { return holder.result },
      set result (r) { holder.result = r }
    }
    auction.done.promise.catch(() => {})
    this.auctions.set(id, auction)
    this.trim()
    return auction
  }

  async wait (taskId: string, options: AbortOptions = {}): Promise<TaskView> {
    const auction = this.auctions.get(taskId as TaskId)
    if (auction == null) throw new TaskNotFoundError(`no task ${taskId} was submitted on this node`)
    const { signal } = options
    if (signal == null) {
      await auction.done.promise
    } else {
      signal.throwIfAborted()
      const aborted = Promise.withResolvers<never>()
      const onAbort = (): void => { aborted.reject(new TaskWaitAbortedError(`stopped waiting for task ${taskId}; it continues`)) }
      signal.addEventListener('abort', onAbort, { once: true })
      try {
        await Promise.race([auction.done.promise, aborted.promise])
      } finally {
        signal.removeEventListener('abort', onAbort)
      }
    }
    return this.view(auction)
  }

  /** Tasks submitted here, awarded to `peer` and not ended: load its capability report does not show yet. */
  private underWay (peer: string): number {
    let n = 0
    for (const a of this.auctions.values()) if (a.winner === peer && !isEnded(a.status)) n++
    return n
  }

  // ---- connections ----

  peerConnected (peer: string): void {
    for (const auction of this.auctions.values()) auction.watch.reconnected(peer)
  }

  peerDisconnected (peer: string): void {
    if (!this.running || peer === this.components.self) return
    for (const auction of this.auctions.values()) auction.watch.disconnected(peer)
  }

  // ---- the auction ----

  private async close (auction: Auction, why: 'all-bids' | 'deadline'): Promise<void> {
    if (auction.status !== 'bidding' || auction.closing) return
    if (why === 'deadline' && this.extend(auction)) return
    auction.closing = true
    clearTimeout(auction.timer)
    const missing = [...auction.expected].filter(p => !auction.bids.has(p))
    if (missing.length > 0 && this.components.bidsThroughDht?.() !== false) {
      // bids may have reached the DHT without reaching us: enumerate them by member
      const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.settings.dhtLookupMs)])
      await Promise.all(missing.map(async (bidder) => {
        const found = await this.components.lookupBid(auction.id, bidder, { signal }).catch(() => undefined)
        if (found != null && !auction.bids.has(bidder)) {
          auction.bids.set(bidder, { ...found, via: 'dht' })
          this.note(auction, 'bid', `cost ${found.payload.cost} (found in the DHT)`, { peer: bidder })
          this.emit('bid-received', { task: auction.id, bidder, outcome: 'dht' })
        }
      }))
    }
    if (!this.running || isEnded(auction.status)) return
    const stillMissing = [...auction.expected].filter(p => !auction.bids.has(p))
    this.note(auction, 'auction-closed', why === 'all-bids'
      ? `every live capable member bid or declined (${auction.bids.size} bid${auction.bids.size === 1 ? '' : 's'})`
      : `deadline reached with ${auction.bids.size} bid${auction.bids.size === 1 ? '' : 's'}${stillMissing.length > 0 ? `; no bid from ${stillMissing.join(', ')}` : ''}`)
    if (auction.bids.size === 0) {
      const here = this.components.declinedHere?.(auction.id)
      // the policy's refusals say which rule kept each device away and what would let it
      const declined = auction.history.filter(h => h.type === 'bid-declined' && h.peer != null && h.peer !== this.components.self && h.detail.includes('policy rule'))
      this.fail(auction, new NoBidsError((`no member bid for task ${auction.id}: none that is live can meet its requirements (${JSON.stringify(auction.announce.requirements)})` +
        (here != null ? `; this device did not bid: ${here}` : '') +
        declined.map(h => `; ${h.peer as string} ${h.detail}`).join('')).slice(0, 4096)))
      return
    }
    await this.award(auction, 'lowest cost')
  }

  /**
   * A deadline that finds no bid at all while members asked are still live: the hive is busy,
   * not unable (each bid is a round trip to a device that may have a queue of its own), so the
   * auction waits one more window before it fails NoBids. Once per task; a bid in that window
   * is held as any other, and the auction closes at the new deadline or once all have bid.
   */
  private extend (auction: Auction): boolean {
    if (auction.extended === true || auction.bids.size > 0 || auction.solo) return false
    const live = this.liveMembers()
    const waiting = [...auction.expected].filter(p => live.has(p))
    if (waiting.length === 0) return false
    auction.extended = true
    const ms = auction.announce.bidWindowMs
    this.note(auction, 'deadline-extended', `no bid by the deadline from the ${waiting.length} live member${waiting.length === 1 ? '' : 's'} asked; waiting ${ms} ms more`)
    auction.timer = setTimeout(() => { void this.close(auction, 'deadline') }, ms)
    this.emitTask(auction)
    return true
  }

  private async award (auction: Auction, why: string): Promise<void> {
    if (isEnded(auction.status)) return
    const candidates = [...auction.bids.values()].map(b => ({ bidder: b.bidder, cost: b.payload.cost }))
    const result = elect(auction.id, candidates, auction.excluded)
    if (result == null) {
      // say why each one failed: a reason they share (a permission no device grants) is the fix
      const reasons = auction.history
        .filter(h => (h.type === 'abandoned' || h.type === 'lease-lapsed' || h.type === 'winner-lost') && h.peer != null)
        .map(h => h.detail)
      this.fail(auction, new BiddersExhaustedError(`every bidder for task ${auction.id} was tried and none delivered a result: ${reasons.length > 0 ? reasons.join('; ') : [...auction.excluded].join(', ')}`.slice(0, 2048)))
      return
    }
    const listed = [...auction.bids.values()].slice(0, 128)
    // the award carries the signed bids, the winner's first, so one record explains it all
    const byRank = result.ranking.map(r => auction.bids.get(r.bidder)!.record)
    const round = auction.round + 1
    const payload: AwardPayload = {
      v: 1,
      task: auction.id,
      submitter: this.components.self,
      round,
      winner: result.winner,
      cost: result.cost,
      rule: ELECTION_RULE,
      bids: listed.map(b => ({ bidder: b.bidder, cost: b.payload.cost, hash: b.hash })),
      excluded: [...auction.excluded],
      agent: auction.announce.agent,
      input: auction.announce.input,
      leaseMs: auction.leaseMs,
      bidRecords: fitBidRecords(byRank)
    }
    auction.awards.push(payload)
    auction.status = 'awarded'
    auction.awardRecord = undefined
    auction.watch.arm(result.winner, round, auction.leaseMs)
    this.note(auction, 'awarded', `${why}: cost ${result.cost} of ${auction.bids.size} bid${auction.bids.size === 1 ? '' : 's'}`, { peer: result.winner, round })
    this.emitTask(auction)
    let record: Uint8Array
    let told: Uint8Array
    try {
      record = await createAwardRecord(payload, this.components.signer)
      // gossip tells every member the award without the signed bids: they are most of its bytes,
      // and only a member that explains or recomputes the election needs them, which it reads
      // from the record in the DHT. The members would otherwise each receive and forward them.
      const { bidRecords, ...withoutBids } = payload
      told = bidRecords == null || bidRecords.length === 0 ? record : await createAwardRecord(withoutBids, this.components.signer)
    } catch (err) {
      this.fail(auction, err as Error)
      return
    }
    if (auction.round !== round || !this.running || isEnded(auction.status)) return
    auction.awardRecord = record
    this.components.onAwarded(payload, record)
    if (!auction.solo) await this.components.publish({ v: 1, t: 'award', task: auction.id, record: told })
  }

  private lost (auction: Auction, reason: 'lapsed' | 'disconnected', winner: string, round: number): void {
    if (!this.running || auction.accepted || auction.round !== round || (auction.status !== 'awarded' && auction.status !== 'running')) return
    if (reason === 'lapsed') {
      this.note(auction, 'lease-lapsed', `${winner} ${auction.status === 'awarded' ? 'never claimed the task' : 'stopped renewing its lease'}; re-electing among the remaining bidders`, { peer: winner, round })
    } else {
      this.note(auction, 'winner-lost', `${winner} disconnected from this device ${auction.status === 'awarded' ? 'before claiming the task' : 'while running it'} ` +
        `and did not reconnect within ${this.settings.winnerGraceMs} ms; re-electing among the remaining bidders`, { peer: winner, round })
    }
    auction.excluded.add(winner)
    void this.award(auction, reason === 'lapsed' ? `re-election after ${winner}'s lease lapsed` : `re-election after ${winner} disconnected`)
  }

  private fail (auction: Auction, err: Error): void {
    if (isEnded(auction.status)) return
    auction.error = { code: err.name, message: err.message }
    this.note(auction, 'failed', err.message)
    this.finish(auction, 'failed')
  }

  private finish (auction: Auction, status: 'done' | 'failed' | 'cancelled'): void {
    if (isEnded(auction.status)) return
    auction.status = status
    auction.closedAt = Date.now()
    // the input may be megabytes; nobody needs it once the task is over
    auction.input = ''
    clearTimeout(auction.timer)
    auction.watch.clear()
    this.components.agents.unpin(auction.announce.agent)
    auction.done.resolve()
    this.emitTask(auction)
    const last = auction.awards.at(-1)
    this.emit('decided', {
      task: auction.id,
      ...(last != null && auction.awardRecord != null ? { award: { payload: last, record: auction.awardRecord } } : {}),
      bids: [...auction.bids.values()]
    })
    if (!auction.solo) void this.components.publish({ v: 1, t: 'closed', task: auction.id, status, round: auction.round, ...(auction.result != null ? { executor: auction.result.executor } : {}) })
  }

  private note (auction: Auction, type: HistoryType, detail: string, extra: { peer?: string, round?: number } = {}): void {
    if (auction.history.length >= MAX_HISTORY) auction.history.splice(1, 1)
    auction.history.push({ at: Date.now(), type, detail, ...extra })
  }

  /**
   * Ends a task submitted here as cancelled: no bid, claim, renewal or result is taken for it
   * afterwards. Returns the winner whose run must be stopped, if one was awarded it.
   */
  cancel (id: TaskId, reason: string, code = 'Cancelled'): { winner?: string, round: number } {
    const auction = this.auctions.get(id)
    if (auction == null) throw new TaskNotFoundError(`no task ${id} was submitted on this node`)
    if (isEnded(auction.status)) throw new TaskAlreadyEndedError(`task ${id} is already ${auction.status}; there is nothing to cancel`)
    const winner = auction.status === 'awarded' || auction.status === 'running' ? auction.winner : undefined
    const round = auction.round
    auction.error = { code, message: reason }
    this.note(auction, 'cancelled', winner != null ? `${reason}; telling ${winner} to stop round ${round}` : `${reason} (while ${auction.status})`, winner != null ? { peer: winner, round } : {})
    this.finish(auction, 'cancelled')
    return { ...(winner != null ? { winner } : {}), round }
  }

  /** Notes on a cancelled task what its winner answered. */
  noteCancelAnswer (id: TaskId, detail: string): void {
    const auction = this.auctions.get(id)
    if (auction == null) return
    this.note(auction, 'cancelled', detail)
    this.emitTask(auction)
  }

  // ---- SubmitterHandlers ----

  readonly bid = async (_from: string, task: TaskId, bidder: string, value: Uint8Array, via: BidSource): Promise<AckAnswer> => {
    const auction = this.auctions.get(task)
    if (auction == null) return refusal('UnknownTask', `task ${task} was not submitted on this node`)
    let payload: BidPayload
    try {
      const record = await this.components.records.open(bidKey(task, bidder), value)
      payload = bidFromRecord(record)
      if (payload.submitter !== this.components.self) throw new Error(`the bid names ${payload.submitter} as submitter`)
    } catch (err) {
      this.note(auction, 'bid-refused', `bid claiming to be from ${bidder} ignored: ${errorText(err)}`, { peer: bidder })
      this.emit('bid-received', { task, bidder, outcome: 'refused' })
      this.emitTask(auction)
      return refusal('InvalidBid', `bid refused: ${(err as Error).message}`)
    }
    if (auction.status !== 'bidding' || auction.closing) {
      this.note(auction, 'late-bid', `bid arrived after the auction closed (cost ${payload.cost}); kept for the record only`, { peer: bidder })
      this.emit('bid-received', { task, bidder, outcome: 'late' })
      return refusal('Closed', `the auction for task ${task} has closed`)
    }
    if (!auction.bids.has(bidder)) {
      auction.bids.set(bidder, { bidder, payload, record: value, hash: sha256Hex(value), via })
      this.note(auction, 'bid', `cost ${payload.cost}`, { peer: bidder })
      this.emit('bid-received', { task, bidder, outcome: 'accepted' })
    }
    const live = this.liveMembers()
    const waiting = [...auction.expected].filter(p => !auction.bids.has(p) && live.has(p))
    if (waiting.length === 0) void this.close(auction, 'all-bids')
    return { ok: true }
  }

  /** Members that reported capabilities recently and are still connected (or reached through the mesh). */
  private liveMembers (): Set<string> {
    const reachable = this.components.reachable?.() ?? this.components.connected()
    return new Set(this.components.capabilities.view().map(e => e.peerId).filter(p => reachable.has(p)))
  }

  private current (from: string, task: TaskId, round: number): { auction: Auction } | { refusal: Refusal } {
    const auction = this.auctions.get(task)
    if (auction == null) return { refusal: refusal('UnknownTask', `task ${task} was not submitted on this node`) }
    if (auction.status === 'cancelled') return { refusal: refusal('Cancelled', `task ${task} was cancelled: ${auction.error?.message ?? 'by its submitter'}`) }
    if (auction.accepted || auction.status === 'done' || auction.status === 'failed') return { refusal: refusal('Closed', `task ${task} already has its result`) }
    if (auction.round !== round || auction.winner !== from) {
      return { refusal: refusal('Lapsed', `round ${round} of task ${task} is over: round ${auction.round} is awarded to ${auction.winner ?? 'nobody yet'}`) }
    }
    return { auction }
  }

  readonly claim = (from: string, task: TaskId, round: number): ClaimAnswer => {
    const found = this.current(from, task, round)
    if ('refusal' in found) return found.refusal
    const { auction } = found
    auction.watch.renewed()
    if (auction.status === 'awarded') {
      auction.status = 'running'
      this.note(auction, 'claimed', `${from} claimed round ${round} and holds a ${auction.leaseMs} ms lease`, { peer: from, round })
      this.emitTask(auction)
    }
    return { ok: true, input: auction.input, leaseMs: auction.leaseMs }
  }

  readonly renew = (from: string, task: TaskId, round: number): RenewAnswer => {
    const found = this.current(from, task, round)
    if ('refusal' in found) return found.refusal
    found.auction.watch.renewed()
    return { ok: true, leaseMs: found.auction.leaseMs }
  }

  readonly abandon = (from: string, task: TaskId, round: number, reason: string): AckAnswer => {
    const found = this.current(from, task, round)
    if ('refusal' in found) return found.refusal
    const { auction } = found
    this.note(auction, 'abandoned', `${from} gave the task up: ${reason}`, { peer: from, round })
    auction.excluded.add(from)
    auction.watch.clear()
    void this.award(auction, `re-election after ${from} gave the task up`)
    return { ok: true }
  }

  readonly decline = (from: string, task: TaskId, reason: string): AckAnswer => {
    const auction = this.auctions.get(task)
    if (auction == null) return refusal('UnknownTask', `task ${task} was not submitted on this node`)
    const detail = `will not bid: ${reason}`.slice(0, 500)
    if (!auction.history.some(h => h.type === 'bid-declined' && h.peer === from && h.detail === detail)) {
      // what the device says of itself replaces what its report let this node guess
      const guessed = auction.history.findIndex(h => h.type === 'bid-declined' && h.peer === from)
      if (guessed >= 0) auction.history.splice(guessed, 1)
      this.note(auction, 'bid-declined', detail, { peer: from })
      this.emitTask(auction)
    }
    if (auction.status !== 'bidding' || auction.closing) return { ok: true }
    auction.expected.delete(from)
    const live = this.liveMembers()
    if ([...auction.expected].every(p => auction.bids.has(p) || !live.has(p))) void this.close(auction, 'all-bids')
    return { ok: true }
  }

  readonly logs = (from: string, request: LogsRequest): AckAnswer => {
    const found = this.current(from, request.task, request.round)
    if ('refusal' in found) return found.refusal
    const { auction } = found
    if (auction.live == null || auction.live.round !== request.round) auction.live = { round: request.round, next: 1, bytes: 0 }
    const live = auction.live
    if (request.from < live.next) {
      return refusal('OutOfOrder', `log lines from ${request.from} of task ${request.task} come after line ${live.next - 1} was received; send each line once, in order`)
    }
    const last = request.from + request.lines.length - 1
    const bytes = request.lines.reduce((n, l) => n + Buffer.byteLength(l.message) + Buffer.byteLength(l.level), 0)
    if (last > LIVE_LOG_LIMITS.linesPerTask || live.bytes + bytes > LIVE_LOG_LIMITS.bytesPerTask) {
      return refusal('TooManyLines', `a task streams at most ${LIVE_LOG_LIMITS.linesPerTask} log lines and ${LIVE_LOG_LIMITS.bytesPerTask} bytes of them; the rest go with its result`)
    }
    live.next = last + 1
    live.bytes += bytes
    this.emit('logs', { task: request.task, round: request.round, executor: from, from: request.from, lines: request.lines })
    return { ok: true }
  }

  readonly result = (from: string, request: ResultRequest): ResultAnswer => {
    const auction = this.auctions.get(request.task)
    if (auction == null) return refusal('UnknownTask', `task ${request.task} was not submitted on this node`)
    if (auction.status === 'cancelled') {
      const reason = `the task was cancelled before its result came (${auction.error?.message ?? 'by its submitter'})`
      this.note(auction, 'late-result', `result from ${from} (round ${request.round}) discarded: ${reason}`, { peer: from, round: request.round })
      this.emitTask(auction)
      return { ok: true, accepted: false, reason }
    }
    // the accepted result again, the same from its executor for its round: the answer to its
    // delivery was lost and the executor tries again; the same delivery is accepted again
    // (nothing changes here), so that the executor records the run `ok`, not as a discarded one
    const held = auction.result
    const { output, error } = resultText(request)
    if (auction.accepted && held != null && held.executor === from && held.round === request.round && held.ok === request.ok &&
      held.output === output && held.error === error) return { ok: true, accepted: true }
    if (auction.accepted) {
      const reason = `task already has an accepted result from ${auction.result?.executor ?? 'another executor'}`
      this.note(auction, 'late-result', `result from ${from} (round ${request.round}) discarded: ${reason}`, { peer: from, round: request.round })
      this.emitTask(auction)
      return { ok: true, accepted: false, reason }
    }
    if (auction.round !== request.round || auction.winner !== from || (auction.status !== 'running' && auction.status !== 'awarded')) {
      const reason = `its lease for round ${request.round} lapsed; round ${auction.round} is awarded to ${auction.winner ?? 'nobody'}`
      this.note(auction, 'late-result', `result from ${from} discarded: ${reason}`, { peer: from, round: request.round })
      this.emitTask(auction)
      return { ok: true, accepted: false, reason }
    }
    auction.watch.clear()
    auction.result = {
      ok: request.ok,
      ...resultText(request),
      executor: from,
      round: request.round,
      durationMs: request.durationMs,
      ...(request.logs != null && request.logs.length > 0 ? { logs: request.logs } : {})
    }
    this.note(auction, 'result-accepted', `${request.ok ? 'result' : 'agent error'} from ${from} accepted (ran ${Math.round(request.durationMs)} ms)`, { peer: from, round: request.round })
    return { ok: true, accepted: true }
  }

  readonly kept = async (task: TaskId): Promise<void> => {
    const auction = this.auctions.get(task)
    const keep = this.components.keepResult
    if (auction == null || keep == null) return
    try {
      await keep(this.view(auction))
    } catch (err) {
      this.components.log.warn(`the accepted result of ${task} could not be kept: ${err instanceof Error ? err.message : String(err)}`)
    }
  }

  readonly keptBefore = async (from: string, request: ResultRequest): Promise<boolean> => {
    const ask = this.components.keptBefore
    if (ask == null || this.auctions.has(request.task)) return false
    try {
      const kept = await ask({ id: request.task, executor: from, round: request.round, ok: request.ok, ...resultText(request) })
      if (kept) this.components.log.info?.(`result of ${request.task} from ${from}: kept before this node restarted; accepted again`)
      return kept
    } catch (err) {
      this.components.log.warn(`whether the result of ${request.task} was kept could not be read: ${errorText(err)}`)
      return false
    }
  }

  readonly recorded = (from: string, request: ResultRequest, recorded: Recorded | null, accepted: boolean): void => {
    const auction = this.auctions.get(request.task)
    if (auction == null) return
    if (!accepted) {
      if (recorded != null) this.note(auction, 'recorded', `${from} recorded its discarded run${recorded.seq != null ? ` at ledger seq ${recorded.seq}` : ''}`, { peer: from, round: request.round })
      return
    }
    if (auction.result != null) {
      auction.result.ledger = recorded == null
        ? { error: 'the executor did not confirm a ledger record' }
        : {
            ...(recorded.seq != null ? { seq: recorded.seq } : {}),
            ...(recorded.hash != null ? { hash: recorded.hash } : {}),
            ...(recorded.error != null ? { error: recorded.error } : {})
          }
    }
    this.note(auction, 'recorded', recorded == null
      ? `${from} did not confirm its ledger record in time`
      : recorded.error != null ? `${from} could not append its ledger record: ${recorded.error}` : `${from} appended ledger record seq ${recorded.seq ?? '?'}`, { peer: from, round: request.round })
    this.finish(auction, request.ok ? 'done' : 'failed')
  }

  // ---- views ----

  private emitTask (auction: Auction): void {
    this.emit('task', this.view(auction))
  }

  view (auction: Auction): TaskView {
    return {
      id: auction.id,
      role: 'submitter',
      submitter: this.components.self,
      status: auction.status,
      ...announceFields(auction.announce),
      createdAt: auction.createdAt,
      ...(auction.closedAt != null ? { closedAt: auction.closedAt } : {}),
      round: auction.round,
      ...(auction.winner != null ? { winner: auction.winner } : {}),
      ...(auction.result != null ? { result: structuredClone(auction.result) } : {}),
      ...(auction.error != null ? { error: { ...auction.error } } : {}),
      history: auction.history.map(h => ({ ...h }))
    }
  }

  private trim (): void {
    for (const [id, a] of this.auctions) {
      if (this.auctions.size <= this.settings.maxTasks) break
      if (isEnded(a.status)) this.auctions.delete(id)
    }
  }
}

/** A result's text as the submitter keeps it: the output of a success, the error of a failure. */
function resultText (request: ResultRequest): { output?: string, error?: string } {
  return request.ok ? { output: request.output ?? '' } : { error: request.error ?? 'the agent failed without a message' }
}
