// Replication of the member list, and the dialler that keeps members connected.
//
// Protocol /hive/membership/1.0.0, one exchange per stream, frames from ../wire.ts:
//   initiator -> responder  { t: 'have', hive, ids }            ids of every entry it holds
//   responder -> initiator  { t: 'entries', hive, entries, ids, addrs }
//                                                               what the initiator lacks, plus
//                                                               the responder's own ids
//   initiator -> responder  { t: 'entries', hive, entries, addrs }
//                                                               what the responder lacks
// or { t: 'refuse', code, message } when the hives differ. `addrs` are dialling hints (PeerId ->
// multiaddrs) for members; they are never trusted, since a connection proves its PeerId anyway.
//
// An exchange runs when a connection to a member opens (by the side that dialled), and after
// every change to the list with each connected member except the one the change came from: a
// change floods the connected graph, so it reaches members this device has no connection to.
// An exchange that fails (the other side not serving the protocol yet, a timeout on a loaded
// machine) is run again after REDIAL_MIN_MS, doubling up to REDIAL_MAX_MS, for as long as the
// connection stays open; and on start this device runs one with every member already connected
// (a connection can open before the protocol is served, and its dialler's exchange then finds
// no answer). Without both, a device formed early, which knows few members and refuses the
// others, was left with a list that never grew: its one link to a member that knew more had
// carried no exchange, the other side's list did not change again to flood it, and nothing
// else ran one (test/protocol/membership/exchange.test.ts).
//
// The dialler connects this device to its neighbours (./neighbours.ts): every member in a hive
// of at most ALL_TO_ALL_MAX, at most MAX_NEIGHBOURS beyond. There a lost neighbour is dialled
// again after 1 s, doubling up to REDIAL_MAX_MS while it stays away, and so is a neighbour the
// dialler could not reach at all: a member refuses a connection from a device it does not yet
// know is a member, so while a new member's entry spreads its first dials may be refused, and
// waiting a whole tick (15 s) after each made a hive formed one device at a time take minutes
// to learn its own members. A connection that closes within REDIAL_STABLE_MS of opening counts
// as a failed dial: a neighbour that accepts and then drops the link (a loaded peer's ping
// timing out, a member that hangs up on a device it does not know yet) is dialled again later
// each time, not every second; and the periodic tick leaves a neighbour whose redial is pending
// to that redial, so one back-off rules it.
// Every entry received is verified (signature, hive, dependencies, the signer's right to sign);
// one bad entry and the whole message is refused and the sender is hung up on.

import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { MalformedMessageError, isPeerFault } from '../wire/errors.ts'
import { MEMBERSHIP_PROTOCOL } from '../wire/ids.ts'
import { SILENT_LOG } from '../wire/log.ts'
import { openFramed, serveProtocol } from '../wire/serve.ts'
import { HiveMismatchError, InvalidEntryError, TooManyEntriesError, UnauthorizedEntryError } from './errors.ts'
import { HIVE_ID_PATTERN, WireEntrySchema, toWire } from './entries.ts'
import { MAX_ENTRIES } from './graph.ts'
import { isAllToAll, isTransientLink, neighboursOf } from './neighbours.ts'
import { boundAddresses } from './membership.ts'
import type { Membership, MembershipChange } from './membership.ts'
import type { FramedStream } from '../wire/framing.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { ServedProtocol } from '../wire/serve.ts'
import type { Connection, Libp2p, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'

export { MEMBERSHIP_PROTOCOL }
export const MAX_MEMBERSHIP_MESSAGE_BYTES = 12 * 1024 * 1024
/** Changes of this device's own addresses are told to members at most this often. */
export const SELF_UPDATE_DELAY_MS = 1_000
/** A lost neighbour (beyond an all-to-all hive) is dialled again after this, doubled per failure… */
export const REDIAL_MIN_MS = 1_000
/** …up to this. */
export const REDIAL_MAX_MS = 30_000
/** A connection to a neighbour that closes sooner than this after opening counts as a failed dial. */
export const REDIAL_STABLE_MS = 10_000
/**
 * The dialling hints an exchange sends are gathered (a peer-store read per member) at most this
 * often; a change to the member list or to this device's addresses gathers them anew.
 */
export const HINTS_TTL_MS = 5_000

const ID = z.string().regex(/^[0-9a-f]{64}$/)
const HIVE = z.string().regex(HIVE_ID_PATTERN)
const Addrs = z.record(z.string().min(1).max(128), z.array(z.string().min(1).max(256)).max(8))
  .refine(r => Object.keys(r).length <= 256, 'hints for at most 256 peers')

const HaveMessage = z.strictObject({ t: z.literal('have'), hive: HIVE, ids: z.array(ID).max(MAX_ENTRIES) })
const EntriesMessage = z.strictObject({
  t: z.literal('entries'),
  hive: HIVE,
  entries: z.array(WireEntrySchema).max(MAX_ENTRIES),
  ids: z.array(ID).max(MAX_ENTRIES).optional(),
  addrs: Addrs
})
const RefuseMessage = z.strictObject({ t: z.literal('refuse'), code: z.string().max(64), message: z.string().max(512) })
const ReplyMessage = z.discriminatedUnion('t', [EntriesMessage, RefuseMessage])

export type MembershipNetwork = Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dial' | 'getConnections' | 'getMultiaddrs' | 'hangUp' | 'addEventListener' | 'removeEventListener' | 'peerStore'>

export type SyncLog = ProtocolLog

export interface MembershipSyncInit {
  log?: SyncLog
  /** How often unreachable members are dialled again. Default 15 s. */
  redialIntervalMs?: number
  /** Upper bound of one exchange. Default 10 s. */
  exchangeTimeoutMs?: number
  /**
   * Addresses this device may be reached at besides its listen addresses (where members saw
   * it from outside, with its listen port): told to members with the rest.
   */
  selfAddresses?: () => string[]
}

export interface MembershipSyncComponents {
  membership: Membership
  gate: { allows: (peer: PeerId | string, protocol: string) => boolean }
  network: MembershipNetwork
}

/** A peer was hung up on for sending entries that do not verify. */
export interface SyncFault {
  peer: string
  error: Error
}

function isEntryFault (err: unknown): boolean {
  return isPeerFault(err) || err instanceof InvalidEntryError || err instanceof UnauthorizedEntryError ||
    err instanceof TooManyEntriesError || err instanceof HiveMismatchError
}

export class MembershipSync extends EventTarget {
  private readonly membership: Membership
  private readonly gate: MembershipSyncComponents['gate']
  private readonly network: MembershipNetwork
  private readonly log: SyncLog
  private readonly redialIntervalMs: number
  private readonly timeoutMs: number
  private readonly selfAddresses?: () => string[]
  private readonly stopping = new AbortController()
  private readonly running = new Map<string, Promise<void>>()
  private readonly again = new Set<string>()
  private readonly nextDial = new Map<string, number>()
  /**
   * Lost neighbours being dialled again: failures so far, and the pending attempt. Kept while a
   * new connection proves itself (REDIAL_STABLE_MS), so a short one does not reset the back-off.
   */
  private readonly redials = new Map<string, { failures: number, timer?: NodeJS.Timeout }>()
  /** When this device's connection to each member opened (the first of those open now). */
  private readonly openedAt = new Map<string, number>()
  /** Connected members whose last exchange failed: failures so far, and the pending retry. */
  private readonly retries = new Map<string, { failures: number, timer?: NodeJS.Timeout }>()
  private timer?: NodeJS.Timeout
  private selfTimer?: NodeJS.Timeout
  /** The hints last gathered, and when (see HINTS_TTL_MS). */
  private gathered?: { at: number, hints: Promise<Record<string, string[]>> }
  private served?: ServedProtocol
  private started = false

  constructor (init: MembershipSyncInit, components: MembershipSyncComponents) {
    super()
    this.membership = components.membership
    this.gate = components.gate
    this.network = components.network
    this.log = init.log ?? SILENT_LOG
    this.redialIntervalMs = init.redialIntervalMs ?? 15_000
    this.timeoutMs = init.exchangeTimeoutMs ?? 10_000
    this.selfAddresses = init.selfAddresses
    this.onConnectionOpen = this.onConnectionOpen.bind(this)
    this.onIdentify = this.onIdentify.bind(this)
    this.onChange = this.onChange.bind(this)
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.served = await serveProtocol(this.network, MEMBERSHIP_PROTOCOL, async (framed, { peer, signal }) => { await this.respond(framed, peer.toString(), signal) }, {
      log: this.log,
      gate: this.gate,
      maxMessageBytes: MAX_MEMBERSHIP_MESSAGE_BYTES,
      timeoutMs: this.timeoutMs,
      maxInboundStreams: 8,
      isPeerFault: isEntryFault,
      onPeerFault: (peer, error) => { this.reportFault(peer.toString(), error) }
    })
    this.network.addEventListener('connection:open', this.onConnectionOpen)
    this.network.addEventListener('peer:disconnect', this.onDisconnect)
    this.network.addEventListener('peer:identify', this.onIdentify)
    this.network.addEventListener('self:peer:update', this.onSelfUpdate)
    this.membership.addEventListener('change', this.onChange)
    // members connected before the protocol was served here: their exchange may have found no answer
    this.tellAddresses()
    this.tick()
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    clearTimeout(this.timer)
    this.stopping.abort(new Error('membership sync stopped'))
    this.network.removeEventListener('connection:open', this.onConnectionOpen)
    this.network.removeEventListener('peer:disconnect', this.onDisconnect)
    this.network.removeEventListener('peer:identify', this.onIdentify)
    for (const redial of this.redials.values()) clearTimeout(redial.timer)
    this.redials.clear()
    this.openedAt.clear()
    for (const retry of this.retries.values()) clearTimeout(retry.timer)
    this.retries.clear()
    this.network.removeEventListener('self:peer:update', this.onSelfUpdate)
    clearTimeout(this.selfTimer)
    this.membership.removeEventListener('change', this.onChange)
    await this.served?.stop()
    this.served = undefined
    await Promise.allSettled([...this.running.values()])
  }

  /** Runs one exchange with a connected member (or queues another if one is under way). */
  async syncWith (peer: string): Promise<void> {
    const running = this.running.get(peer)
    if (running != null) {
      this.again.add(peer)
      return running
    }
    const run = (async () => {
      try {
        let done: boolean
        do {
          this.again.delete(peer)
          done = await this.initiate(peer)
        } while (this.again.has(peer) && this.started)
        if (done) this.clearRetry(peer)
        else this.scheduleRetry(peer)
      } finally {
        this.running.delete(peer)
      }
    })()
    this.running.set(peer, run)
    return run
  }

  /** The members this device keeps a connection to (every other member in a small hive). */
  neighbours (): Set<string> {
    return neighboursOf(this.membership.peerId, this.membership.members().map(m => m.peerId))
  }

  /** Whether a connection to `peer` is transient: beyond an all-to-all hive, to a member that is not a neighbour. */
  transient (peer: string): boolean {
    return isTransientLink(this.membership.peerId, this.membership.members().map(m => m.peerId), peer)
  }

  /** Whether every member of this hive keeps a connection to every other (a hive of at most ALL_TO_ALL_MAX). */
  allToAll (): boolean {
    return isAllToAll(this.membership.members().length)
  }

  /** Dials every neighbour without a connection whose back-off has passed. */
  dialMembers (only?: string[]): void {
    if (!this.started) return
    const now = Date.now()
    const neighbours = this.neighbours()
    for (const member of this.membership.members()) {
      const peer = member.peerId
      if (member.self || (only != null && !only.includes(peer)) || !neighbours.has(peer)) continue
      if (this.connectionTo(peer) != null) continue
      if ((this.nextDial.get(peer) ?? 0) > now) continue
      // its own back-off dials it
      if (this.redials.get(peer)?.timer != null) continue
      this.nextDial.set(peer, now + this.redialIntervalMs)
      this.dial(peer).catch((err: Error) => {
        this.log.debug(`could not reach member ${peer}: ${err.message}`)
        if (this.started && !this.allToAll()) this.scheduleRedial(peer)
      })
    }
  }

  /**
   * Dials a member at its direct addresses first and, when none answers, through the relays it
   * was last seen at: a device that woke up on another network finds the hive through a member
   * that relays, with no address typed.
   */
  private async dial (peer: string): Promise<void> {
    const { direct, relayed } = await this.addressesFor(peer)
    const signal = (): AbortSignal => AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.timeoutMs)])
    if (relayed.length === 0) {
      await this.network.dial(direct.length > 0 ? direct : peerIdFromString(peer), { signal: signal() })
      return
    }
    try {
      if (direct.length === 0) throw new Error('no direct address known')
      await this.network.dial(direct, { signal: signal() })
    } catch (err) {
      if (this.stopping.signal.aborted) throw err
      this.log.debug(`member ${peer} not reached directly (${(err as Error).message}); trying its relays`)
      await this.network.dial(relayed, { signal: signal() })
    }
  }

  /** Where a member may be dialled: its direct addresses, and its addresses through relays. */
  async addressesFor (peer: string): Promise<{ direct: Multiaddr[], relayed: Multiaddr[] }> {
    const direct = new Map<string, Multiaddr>()
    const relayed = new Map<string, Multiaddr>()
    const add = (text: string): void => {
      try {
        let ma = multiaddr(text)
        const id = ma.getComponents().findLast(c => c.name === 'p2p')?.value
        const circuit = ma.getComponents().some(c => c.name === 'p2p-circuit')
        // a relay address names the relay before /p2p-circuit and the member after it
        if (circuit && ma.getComponents().at(-1)?.name !== 'p2p') ma = ma.encapsulate(`/p2p/${peer}`)
        else if (id == null) ma = ma.encapsulate(`/p2p/${peer}`)
        else if (id !== peer) return
        if (ma.getComponents().findLast(c => c.name === 'p2p')?.value !== peer) return
        ;(circuit ? relayed : direct).set(ma.toString(), ma)
      } catch { /* a bad hint is ignored */ }
    }
    for (const text of await this.knownAddresses(peer)) add(text)
    for (const text of this.membership.addressesOf(peer)) add(text)
    return { direct: [...direct.values()], relayed: [...relayed.values()] }
  }

  private async knownAddresses (peer: string): Promise<string[]> {
    try {
      const record = await this.network.peerStore.get(peerIdFromString(peer))
      return record.addresses.map(a => a.multiaddr.toString())
    } catch {
      return []
    }
  }

  private connectionTo (peer: string): Connection | undefined {
    return this.network.getConnections().find(c => c.remotePeer.toString() === peer && c.limits == null && c.status === 'open')
  }

  /**
   * Dialling hints for every member, gathered at most every HINTS_TTL_MS: every exchange sends
   * them, and in a burst that opens many connections each would read the peer store once per
   * member (in a virtual hive of 24, 2 % of the CPU). Hints are never trusted, so a few seconds
   * old is as good.
   */
  private async hints (): Promise<Record<string, string[]>> {
    const now = Date.now()
    if (this.gathered != null && now - this.gathered.at < HINTS_TTL_MS) return await this.gathered.hints
    const hints = this.gatherHints()
    const gathered = { at: now, hints }
    this.gathered = gathered
    hints.catch(() => { if (this.gathered === gathered) this.gathered = undefined })
    return await hints
  }

  private async gatherHints (): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {}
    const self = boundAddresses([...this.network.getMultiaddrs().map(ma => ma.toString()), ...(this.selfAddresses?.() ?? [])])
    if (self.length > 0) out[this.membership.peerId] = self
    for (const member of this.membership.members()) {
      if (member.self) continue
      const known = boundAddresses([...(await this.knownAddresses(member.peerId)), ...this.membership.addressesOf(member.peerId)])
      if (known.length > 0) out[member.peerId] = known
    }
    return out
  }

  private async takeHints (from: string, addrs: Record<string, string[]>): Promise<void> {
    for (const [peer, list] of Object.entries(addrs)) {
      if (peer === this.membership.peerId || !this.membership.isMember(peer)) continue
      // what a peer says about itself comes first, then what we already knew
      const mine = this.membership.addressesOf(peer)
      const merged = peer === from ? [...list, ...mine] : [...mine, ...list]
      await this.membership.rememberAddresses(peer, merged).catch(() => {})
    }
  }

  private signal (): AbortSignal {
    return AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.timeoutMs)])
  }

  /**
   * One exchange over the open connection to `peer`. False when it failed and is worth running
   * again on that connection; true when it ran, was declined, or there is none to run it on.
   */
  private async initiate (peer: string): Promise<boolean> {
    const connection = this.connectionTo(peer)
    if (connection == null || !this.membership.isMember(peer)) return true
    const signal = this.signal()
    let framed: FramedStream
    try {
      framed = await openFramed(connection, MEMBERSHIP_PROTOCOL, { signal, maxMessageBytes: MAX_MEMBERSHIP_MESSAGE_BYTES })
    } catch (err) {
      this.log.debug(`membership exchange with ${peer} not started: ${(err as Error).message}`)
      return false
    }
    try {
      const hive = this.membership.hiveId
      await framed.write({ t: 'have', hive, ids: this.membership.entryIds() }, { signal })
      const reply = await framed.read(ReplyMessage, { signal })
      if (reply.t === 'refuse') {
        this.log.debug(`${peer} declined a membership exchange: ${reply.code}: ${reply.message}`)
        await framed.close({ signal }).catch(() => {})
        return true
      }
      if (reply.hive !== hive) throw new MalformedMessageError(`reply names hive ${reply.hive}, not ${hive}`)
      await this.membership.merge(reply.entries, { origin: peer })
      await this.takeHints(peer, reply.addrs)
      const theirs = new Set(reply.ids ?? [])
      const missing = this.membership.hiveId === hive ? this.membership.entries().filter(e => !theirs.has(e.id)).map(toWire) : []
      await framed.write({ t: 'entries', hive, entries: missing, addrs: await this.hints() }, { signal })
      await framed.close({ signal })
      return true
    } catch (err) {
      await this.fail(framed, peer, err)
      // run again later; not on a peer hung up on for bad entries, which has no connection left
      return false
    }
  }

  /**
   * The last exchange with `peer` failed: run another after REDIAL_MIN_MS, twice as long after
   * each failure up to REDIAL_MAX_MS, while the connection stays open and `peer` a member.
   */
  private scheduleRetry (peer: string): void {
    if (!this.started) return
    const state = this.retries.get(peer) ?? { failures: 0 }
    if (state.timer != null) return
    this.retries.set(peer, state)
    const delay = Math.min(REDIAL_MAX_MS, REDIAL_MIN_MS * 2 ** state.failures)
    state.failures++
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (!this.started || this.connectionTo(peer) == null || !this.membership.isMember(peer)) {
        this.retries.delete(peer)
        return
      }
      this.log.debug(`running the membership exchange with ${peer} again (attempt ${state.failures + 1})`)
      this.syncWith(peer).catch(() => {})
    }, delay)
    state.timer.unref()
  }

  private clearRetry (peer: string): void {
    clearTimeout(this.retries.get(peer)?.timer)
    this.retries.delete(peer)
  }

  /** Answering side; serveProtocol has checked the gate, and drops the peer on an entry fault. */
  private async respond (framed: FramedStream, peer: string, signal: AbortSignal): Promise<void> {
    const have = await framed.read(HaveMessage, { signal })
    const hive = this.membership.hiveId
    if (have.hive !== hive) {
      await framed.write({ t: 'refuse', code: HiveMismatchError.code, message: 'this node is in another hive' }, { signal })
      await framed.close({ signal })
      return
    }
    const theirs = new Set(have.ids)
    const missing = this.membership.entries().filter(e => !theirs.has(e.id)).map(toWire)
    await framed.write({ t: 'entries', hive, entries: missing, ids: this.membership.entryIds(), addrs: await this.hints() }, { signal })
    const rest = await framed.read(EntriesMessage, { signal })
    if (rest.hive !== hive) throw new MalformedMessageError(`message names hive ${rest.hive}, not ${hive}`)
    await this.membership.merge(rest.entries, { origin: peer })
    await this.takeHints(peer, rest.addrs)
    await framed.close({ signal }).catch(() => {})
  }

  private reportFault (peer: string, error: Error): void {
    this.log.warn(`dropping ${peer}: it sent membership data that does not verify (${error.name}: ${error.message})`)
    this.dispatchEvent(new CustomEvent<SyncFault>('fault', { detail: { peer, error } }))
  }

  private async fail (framed: FramedStream, peer: string, err: unknown): Promise<void> {
    const error = err instanceof Error ? err : new Error(String(err))
    framed.abort(error)
    if (isEntryFault(error)) {
      this.reportFault(peer, error)
      await this.network.hangUp(peerIdFromString(peer)).catch(() => {})
    } else {
      this.log.debug(`membership exchange with ${peer} ended: ${error.name}: ${error.message}`)
    }
  }

  /**
   * Beyond an all-to-all hive, a neighbour whose last connection closed is dialled again after
   * REDIAL_MIN_MS, then twice as long after each failure up to REDIAL_MAX_MS, until it is
   * connected or no longer a neighbour. (A small hive redials as it always did: at the next
   * tick, and through libp2p's keep-alive reconnects.)
   */
  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    const peer = event.detail.toString()
    this.clearRetry(peer)
    const opened = this.openedAt.get(peer)
    this.openedAt.delete(peer)
    if (!this.started || this.allToAll() || !this.membership.isMember(peer)) {
      this.redials.delete(peer)
      return
    }
    const state = this.redials.get(peer)
    if (opened != null && Date.now() - opened < REDIAL_STABLE_MS) {
      // as good as a failed dial: the back-off goes on doubling
      if (state == null) this.redials.set(peer, { failures: 1 })
      else if (state.timer == null) state.failures++
    } else if (state?.timer == null) {
      this.redials.delete(peer)
    }
    this.scheduleRedial(peer)
  }

  private scheduleRedial (peer: string): void {
    const state = this.redials.get(peer) ?? { failures: 0 }
    if (state.timer != null) return
    this.redials.set(peer, state)
    const delay = Math.min(REDIAL_MAX_MS, REDIAL_MIN_MS * 2 ** state.failures)
    state.timer = setTimeout(() => {
      state.timer = undefined
      if (!this.started || !this.membership.isMember(peer) || !this.neighbours().has(peer)) {
        this.redials.delete(peer)
        return
      }
      // connected again (the failures stay until the connection proves stable)
      if (this.connectionTo(peer) != null) return
      this.dial(peer).catch((err: Error) => {
        this.log.debug(`could not reach neighbour ${peer} (attempt ${state.failures + 1}): ${err.message}`)
        state.failures++
        if (this.started) this.scheduleRedial(peer)
      })
    }, delay)
    state.timer.unref()
  }

  private onConnectionOpen (event: CustomEvent<Connection>): void {
    const connection = event.detail
    const peer = connection.remotePeer.toString()
    if (connection.limits == null && this.membership.isMember(peer)) {
      if (!this.openedAt.has(peer)) this.openedAt.set(peer, Date.now())
      // the pending attempt is not needed; the failures stay until the connection proves stable
      const redial = this.redials.get(peer)
      if (redial != null) {
        clearTimeout(redial.timer)
        redial.timer = undefined
      }
    }
    if (connection.limits != null || connection.direction !== 'outbound' || !this.membership.isMember(peer)) return
    // a connection opened for one request to a member that is not a neighbour exchanges nothing more
    if (this.transient(peer)) return
    this.syncWith(peer).catch(() => {})
  }

  private onIdentify (event: CustomEvent<{ peerId: PeerId, listenAddrs: Multiaddr[], connection: Connection }>): void {
    const peer = event.detail.peerId.toString()
    if (!this.membership.isMember(peer) || event.detail.connection.limits != null) return
    const addrs = event.detail.listenAddrs.map(a => a.toString())
    this.membership.rememberAddresses(peer, [...addrs, ...this.membership.addressesOf(peer)]).catch(() => {})
  }

  /**
   * This device's own addresses changed (a relay reservation made or lost, a network joined):
   * members are told at the next exchange, run at most every SELF_UPDATE_DELAY_MS.
   */
  private readonly onSelfUpdate = (): void => {
    this.gathered = undefined
    if (!this.started || this.selfTimer != null) return
    this.selfTimer = setTimeout(() => {
      this.selfTimer = undefined
      this.tellAddresses()
    }, SELF_UPDATE_DELAY_MS)
    this.selfTimer.unref()
  }

  /** Runs an exchange with every connected member, so they hear this device's addresses. */
  tellAddresses (): void {
    if (!this.started) return
    for (const peer of new Set(this.network.getConnections().filter(c => c.limits == null).map(c => c.remotePeer.toString()))) {
      if (this.membership.isMember(peer)) this.syncWith(peer).catch(() => {})
    }
  }

  private onChange (event: Event): void {
    const change = (event as CustomEvent<MembershipChange>).detail
    this.gathered = undefined
    if (!this.started) return
    for (const connection of this.network.getConnections()) {
      const peer = connection.remotePeer.toString()
      if (peer === change.origin || connection.limits != null || !this.membership.isMember(peer)) continue
      this.syncWith(peer).catch(() => {})
    }
    for (const peer of change.left) this.nextDial.delete(peer)
    // beyond an all-to-all hive, a member joining or leaving moves ring positions: this
    // device's neighbours may be other members now
    if (!this.allToAll() && (change.joined.length > 0 || change.left.length > 0)) this.dialMembers()
    else if (change.joined.length > 0) this.dialMembers(change.joined)
  }

  private tick (): void {
    if (!this.started) return
    this.dialMembers()
    this.timer = setTimeout(() => { this.tick() }, this.redialIntervalMs)
    this.timer.unref()
  }
}

export function createMembershipSync (init: MembershipSyncInit, components: MembershipSyncComponents): MembershipSync {
  return new MembershipSync(init, components)
}
