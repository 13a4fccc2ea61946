// Bidder: every member's role on an announcement, the submitter's own included. It works out
// whether this device can run the task at all (only permanent reasons say no), computes the cost
// from its own capabilities, signs the bid and hands it to the submitter. A bid that cannot be
// handed over directly goes into the DHT at once, where the submitter looks at its deadline.
// It also keeps what it saw of other nodes' tasks (their awards and outcome) for views and
// `explain`.

import { errorText } from './components.ts'
import { canRun, makeBid } from './cost.ts'
import { TypedEventTarget } from './events.ts'
import { bidKey, createBidRecord } from './records.ts'
import type { CapabilitySource, PlacementSettings } from './components.ts'
import type { CapabilityReport } from '../capabilities/index.ts'
import type { Digest, TaskId } from './ids.ts'
import type { Announce, AwardPayload, BidPayload } from './messages.ts'
import type { SubmitterClient } from './rpc.ts'
import type { RecordSigner } from '../wire/dht-records.ts'
import type { SyncedOptions } from '../wire/replicated-entries.ts'
import type { ProtocolLog } from '../wire/serve.ts'

/** What this node saw of one task: its announcement, its awards, its outcome, its own bid. */
export interface Observed {
  announce: Announce
  seenAt: number
  awards: Array<{ award: AwardPayload, record: Uint8Array }>
  closed?: { status: 'done' | 'failed' | 'cancelled', executor?: string, round: number }
  myBid?: BidPayload
  declined?: string
}

/**
 * What became of this node's bid on an announcement: handed to the submitter and taken (`sent`)
 * or refused by it (`refused`), put in the DHT because it could not be handed over (`dht`), not
 * made because this device cannot run the task (`declined`), or not made for another reason
 * (`failed`: its capabilities could not be read, the bid could not be signed).
 */
export type BidOutcome = 'sent' | 'refused' | 'dht' | 'declined' | 'failed'

export interface BidderEvents extends Record<string, unknown> {
  bid: { task: TaskId, outcome: BidOutcome }
}

export interface BidderComponents {
  self: string
  signer: RecordSigner
  capabilities: Pick<CapabilitySource, 'local'>
  holdsAgent: (digest: Digest) => boolean
  /** Why this node may not take a task now (its ledger cannot record a run), or undefined. */
  refusal?: () => Error | undefined
  /** Why this device's policy keeps it from a task (PlacementComponents.refuses). */
  refuses?: (permissions: readonly string[], caps: CapabilityReport) => string | undefined
  /** Why the hive's policy keeps this device from the task now (PlacementComponents.policy), or undefined. */
  policy?: (announce: Announce, caps: CapabilityReport) => string | undefined
  /** Resolves once this node holds what the submitter knows of the kill switch. */
  synced?: (peer: string, options: SyncedOptions) => Promise<void>
  submitterFor: (peer: string) => SubmitterClient
  /** Whether this device reaches a peer only through a relay (PlacementComponents.relayedTo). */
  relayedTo?: (peer: string) => boolean
  /** Puts a record in the DHT at once (a bid the submitter did not receive). */
  publishNow: (key: Uint8Array, value: Uint8Array, task: TaskId) => void
  /** Whether a bid not handed over goes into the DHT (PlacementComponents.bidsThroughDht); true when omitted. */
  bidsThroughDht?: () => boolean
  log: ProtocolLog
}

export class Bidder extends TypedEventTarget<BidderEvents> {
  private readonly components: BidderComponents
  private readonly settings: PlacementSettings
  readonly observed = new Map<TaskId, Observed>()
  private stopping = new AbortController()
  private running = false

  constructor (settings: PlacementSettings, components: BidderComponents) {
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
    this.stopping.abort()
  }

  /** Bids on an announced task, once. */
  async onAnnounce (announce: Announce): Promise<void> {
    if (this.observed.has(announce.task) || !this.running) return
    const seen: Observed = { announce, seenAt: Date.now(), awards: [] }
    this.observed.set(announce.task, seen)
    this.trim()
    const { self } = this.components
    if (announce.candidates != null && !announce.candidates.includes(self)) {
      // the submitter asked others (candidates.ts): this device stays out of the auction,
      // without so much as the halt check below
      seen.declined = `not a candidate: the submitter asked ${announce.candidates.length} other members to bid`
      this.emit('bid', { task: announce.task, outcome: 'declined' })
      return
    }
    // a device back from offline hears of a halt from the submitter before it bids
    if (announce.submitter !== self && this.components.synced != null) {
      await this.components.synced(announce.submitter, { signal: this.stopping.signal, timeoutMs: 5_000 }).catch(() => {})
      if (!this.running) return
    }
    const refused = this.components.refusal?.()
    if (refused != null) {
      seen.declined = refused.message
      this.components.log.debug(`not bidding for ${announce.task}: ${refused.message}`)
      return
    }
    try {
      const caps = await this.components.capabilities.local({ signal: this.stopping.signal })
      const able = canRun(announce.requirements, caps, self)
      const policy = able.ok ? this.components.refuses?.(announce.permissions, caps) : undefined
      if (!able.ok || policy != null) {
        const reason = able.ok ? policy as string : able.reason
        seen.declined = reason
        this.components.log.debug(`not bidding for ${announce.task}: ${reason}`)
        this.emit('bid', { task: announce.task, outcome: 'declined' })
        return
      }
      const ruled = this.components.policy?.(announce, caps)
      if (ruled != null) {
        seen.declined = ruled
        this.components.log.debug(`not bidding for ${announce.task}: ${ruled}`)
        this.emit('bid', { task: announce.task, outcome: 'declined' })
        // the submitter stops waiting for this device, and explain cites the rule
        await this.components.submitterFor(announce.submitter).decline?.(announce.task, ruled, {
          signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(announce.bidWindowMs + 5_000)])
        }).catch((err: unknown) => { this.components.log.debug(`decline of ${announce.task} not delivered: ${errorText(err)}`) })
        return
      }
      const relayed = announce.submitter !== self && this.components.relayedTo?.(announce.submitter) === true
      const bid = makeBid({ task: announce.task, submitter: announce.submitter, requirements: announce.requirements, agentSize: announce.agentSize, inputSize: announce.inputSize }, caps, this.components.holdsAgent(announce.agent), relayed)
      seen.myBid = bid
      const record = await createBidRecord(bid, this.components.signer)
      if (!this.running) return
      try {
        const answer = await this.components.submitterFor(announce.submitter).bid(announce.task, self, record, {
          signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(announce.bidWindowMs + 5_000)])
        })
        if (!answer.ok) this.components.log.debug(`bid for ${announce.task} not taken: ${answer.message}`)
        this.emit('bid', { task: announce.task, outcome: answer.ok ? 'sent' : 'refused' })
      } catch (err) {
        if (!this.running) return
        if (this.components.bidsThroughDht?.() === false) {
          this.components.log.debug(`bid for ${announce.task} not delivered: ${errorText(err)}`)
          this.emit('bid', { task: announce.task, outcome: 'failed' })
          return
        }
        // the submitter enumerates the DHT for missing bids when its deadline comes
        this.components.log.debug(`bid for ${announce.task} not delivered directly, publishing it in the DHT now: ${errorText(err)}`)
        this.components.publishNow(bidKey(announce.task, self), record, announce.task)
        this.emit('bid', { task: announce.task, outcome: 'dht' })
      }
    } catch (err) {
      if (this.running) {
        this.components.log.debug(`no bid for ${announce.task}: ${errorText(err)}`)
        this.emit('bid', { task: announce.task, outcome: 'failed' })
      }
    }
  }

  /** An award seen on gossip (or made here). */
  noteAward (award: AwardPayload, record: Uint8Array): void {
    const seen = this.observed.get(award.task)
    if (seen == null || seen.awards.some(a => a.award.round === award.round)) return
    seen.awards.push({ award, record })
    seen.awards.sort((a, b) => a.award.round - b.award.round)
  }

  /** The submitter said the task is over. */
  noteClosed (task: TaskId, author: string, closed: NonNullable<Observed['closed']>): boolean {
    const seen = this.observed.get(task)
    if (seen == null || seen.announce.submitter !== author) return false
    seen.closed = closed
    return true
  }

  decided (task: TaskId): boolean {
    return this.observed.get(task)?.closed != null
  }

  /** Whether a task this device bid on recently (and did not submit) is still undecided. */
  busy (now: number, submittedHere: (task: TaskId) => boolean): boolean {
    for (const [id, seen] of this.observed) {
      if (seen.myBid != null && seen.closed == null && !submittedHere(id) && now - seen.seenAt < seen.announce.bidWindowMs + this.settings.leaseMs) return true
    }
    return false
  }

  private trim (): void {
    for (const id of this.observed.keys()) {
      if (this.observed.size <= this.settings.maxTasks) break
      this.observed.delete(id)
    }
  }
}
