// Pairing: an inviter makes one-time invites; a joiner proves it holds one and becomes a member.
//
// Protocol /hive/pairing/1.0.0, frames from ../wire.ts, the joiner opens the stream:
//   joiner  -> inviter  { t: 'hello', v: 1, hive, invite, nonce: Nj, name, addrs }
//   inviter -> joiner   { t: 'challenge', nonce: Ni }                  or a refusal
//   joiner  -> inviter  { t: 'proof', mac: MAC("joiner") }
//   inviter -> joiner   { t: 'welcome', mac: MAC("inviter"), hive, entries, addrs }  or a refusal
//   refusal:            { t: 'refused', code, message }
//
// MAC(role) = HMAC-SHA256(secret, lp("hive-node/pairing/v1") lp(role) lp(hive id) lp(invite id)
//             lp(inviter PeerId) lp(joiner PeerId) lp(Nj) lp(Ni)), lp(x) = u32be(len x) || x.
// The PeerIds are the ones the encrypted connection proved, not ones either side claims, so a
// proof is bound to this connection and useless anywhere else; each side's fresh nonce makes it
// useless later. The secret itself never crosses the wire.
//
// The inviter burns the invite at the first valid proof, adds the joiner (a signed entry) and
// sends the member list. Wrong proofs count; at 20 the invite is closed. Every refusal has its
// own code, and the joiner raises the same error the inviter reports. Only a live invite (open,
// unexpired) holds the gate's pairing window open: once the last one is used, closed, cancelled
// or expired, strangers' pairing connections are closed and new ones refused. A joiner whose
// frames are malformed is hung up on by serveProtocol, member or not.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { PAIRING_PROTOCOL } from '../wire/ids.ts'
import { SILENT_LOG } from '../wire/log.ts'
import { openFramed, serveProtocol } from '../wire/serve.ts'
import { HIVE_ID_PATTERN, WireEntrySchema, toWire } from '../membership/entries.ts'
import { MAX_ENTRIES } from '../membership/graph.ts'
import {
  AlreadyInHiveError, AlreadyMemberError, InvalidTtlError, InviteClosedError, InviteExpiredError, InviteUnknownError, InviteUsedError,
  InviterNotAuthenticError, InviterUnreachableError, OwnInviteError, PairingFailedError, REFUSALS, WrongSecretError
} from './errors.ts'
import { Invite, decodeInvite, encodeInvite, inviteAddresses, newInviteId, newSecret } from './invite.ts'
import { requestRelayWindow, serveRelayWindows } from './relay-window.ts'
import type { RefusalCode } from './errors.ts'
import type { HiveId } from '../membership/entries.ts'
import type { MembershipGate } from '../membership/gate.ts'
import type { MemberSummary, Membership, MembershipChange } from '../membership/membership.ts'
import type { FramedStream } from '../wire/framing.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { ServedProtocol } from '../wire/serve.ts'
import type { Connection, Libp2p } from '@libp2p/interface'

export { PAIRING_PROTOCOL }
export const PAIRING_DOMAIN = 'hive-node/pairing/v1'
export const DEFAULT_INVITE_TTL_MS = 10 * 60_000
export const MAX_INVITE_TTL_MS = 24 * 60 * 60_000
export const MAX_FAILED_ATTEMPTS = 20
/** The welcome carries the whole member list. */
export const MAX_PAIRING_MESSAGE_BYTES = 12 * 1024 * 1024
/** A used or expired invite is still listed (`invites()`, its state) this long; its window closed when it stopped being live. */
const LISTED_AFTER_MS = 2 * 60_000

const Bytes32 = z.instanceof(Uint8Array).refine(b => b.byteLength === 32, '32 bytes')
const HIVE = z.string().regex(HIVE_ID_PATTERN)
const INVITE_ID = z.string().regex(/^[0-9a-f]{16}$/)
const Addrs = z.array(z.string().min(1).max(256)).max(8)

const Hello = z.strictObject({ t: z.literal('hello'), v: z.literal(1), hive: HIVE, invite: INVITE_ID, nonce: Bytes32, name: z.string().min(1).max(64), addrs: Addrs })
const Challenge = z.strictObject({ t: z.literal('challenge'), nonce: Bytes32 })
const Proof = z.strictObject({ t: z.literal('proof'), mac: Bytes32 })
const Refused = z.strictObject({ t: z.literal('refused'), code: z.enum(Object.keys(REFUSALS) as [RefusalCode, ...RefusalCode[]]), message: z.string().max(512) })
const Welcome = z.strictObject({
  t: z.literal('welcome'),
  mac: Bytes32,
  hive: HIVE,
  entries: z.array(WireEntrySchema).max(MAX_ENTRIES),
  addrs: z.record(z.string().min(1).max(128), Addrs).refine(r => Object.keys(r).length <= 256, 'hints for at most 256 peers')
})
const ChallengeOrRefused = z.discriminatedUnion('t', [Challenge, Refused])
const WelcomeOrRefused = z.discriminatedUnion('t', [Welcome, Refused])

export type PairingNetwork = Pick<Libp2p, 'peerId' | 'handle' | 'unhandle' | 'dial' | 'getMultiaddrs' | 'hangUp'>

export type PairingLog = ProtocolLog

export interface PairingInit {
  /** This device's node name, sent to the inviter and recorded in the member list. */
  name: string
  log?: PairingLog
  /** Clock for invite expiry (tests move it); default Date.now. */
  now?: () => number
  maxFailedAttempts?: number
  /** Upper bound of one pairing exchange. Default 20 s. */
  exchangeTimeoutMs?: number
  /** This device relays for its members: it serves their relay windows. */
  relay?: boolean
}

export interface PairingComponents {
  membership: Membership
  gate: Pick<MembershipGate, 'allows' | 'openPairingWindow' | 'expectPairing' | 'endPairing' | 'openRelayWindow' | 'closeRelayWindow'>
  network: PairingNetwork
}

export type InviteState = 'open' | 'used' | 'closed' | 'expired'

/** An invite as status output shows it: never its secret. */
export interface InviteStatus {
  id: string
  hiveId: string
  state: InviteState
  createdAt: number
  expiresAt: number
  failedAttempts: number
  usedBy?: string
}

export interface CreatedInvite extends InviteStatus {
  /** The invite itself (it contains the secret): show it to the user, never log it. */
  uri: string
  inviter: string
  addresses: string[]
}

export interface JoinResult {
  hiveId: HiveId
  inviter: string
  members: MemberSummary[]
}

export interface PairedEvent { peer: string, name: string, inviteId: string }
export interface RefusedEvent { peer: string, inviteId: string, error: Error }

interface HeldInvite {
  id: string
  hiveId: HiveId
  secret: Uint8Array
  createdAt: number
  expiresAt: number
  state: 'open' | 'used' | 'closed'
  failures: number
  usedBy?: string
  /** Exchanges under way on this invite: its window stays open until the last one ends. */
  exchanges: number
  closeWindow: () => void
  timer?: NodeJS.Timeout
  /** Member relays the invite leads through, where it holds a window open. */
  relays: string[]
  relayTimer?: NodeJS.Timeout
  /** Settles once the relays have answered the window request. */
  ready?: Promise<void>
}

/** A relay window is asked again this long before the relay would close it. */
const RELAY_WINDOW_RENEW_MS = 60_000

/** The relay a circuit address goes through (the PeerId before /p2p-circuit). */
function relayIn (address: string): string | undefined {
  const parts = multiaddr(address).getComponents()
  const at = parts.findIndex(c => c.name === 'p2p-circuit')
  return at < 1 ? undefined : parts[at - 1]?.name === 'p2p' ? parts[at - 1]?.value : undefined
}


function lp (bytes: Uint8Array): Uint8Array[] {
  const len = new Uint8Array(4)
  new DataView(len.buffer).setUint32(0, bytes.byteLength)
  return [len, bytes]
}

/** The pairing proof for one side of one exchange. */
export function pairingMac (secret: Uint8Array, role: 'joiner' | 'inviter', t: { hive: string, invite: string, inviter: string, joiner: string, joinerNonce: Uint8Array, inviterNonce: Uint8Array }): Uint8Array {
  const text = (s: string): Uint8Array => new TextEncoder().encode(s)
  const hmac = createHmac('sha256', secret)
  for (const part of [PAIRING_DOMAIN, role, t.hive, t.invite, t.inviter, t.joiner].flatMap(s => lp(text(s)))) hmac.update(part)
  for (const part of [...lp(t.joinerNonce), ...lp(t.inviterNonce)]) hmac.update(part)
  return new Uint8Array(hmac.digest())
}

function sameMac (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}

function refusalError (code: RefusalCode, message: string): Error {
  return new REFUSALS[code](message)
}

const MESSAGES: Record<RefusalCode, string> = {
  InviteExpired: 'the invite has expired: make a new one with "hive-node pair" on the inviting device',
  InviteUsed: 'the invite was already used (an invite works once): make a new one with "hive-node pair"',
  InviteClosed: 'the invite was closed after too many wrong attempts, or cancelled: make a new one with "hive-node pair"',
  InviteUnknown: 'the inviting device holds no such invite (it may have restarted, or joined another hive since): make a new one with "hive-node pair"',
  WrongSecret: 'the invite\'s secret does not match: the invite was altered, or is not the one this device made; copy or scan it again',
  AlreadyMember: 'this device is already a member of the hive',
  PairingFailed: 'the inviting device could not add this device; try again with a new invite'
}

export class Pairing extends EventTarget {
  private readonly membership: Membership
  private readonly gate: PairingComponents['gate']
  private readonly network: PairingNetwork
  private readonly name: string
  private readonly log: PairingLog
  private readonly now: () => number
  private readonly maxFailures: number
  private readonly timeoutMs: number
  private readonly held = new Map<string, HeldInvite>()
  private readonly stopping = new AbortController()
  private started = false
  private served?: ServedProtocol
  private servedWindows?: ServedProtocol
  private readonly relay: boolean

  constructor (init: PairingInit, components: PairingComponents) {
    super()
    this.membership = components.membership
    this.gate = components.gate
    this.network = components.network
    this.name = init.name
    this.log = init.log ?? SILENT_LOG
    this.now = init.now ?? Date.now
    this.maxFailures = init.maxFailedAttempts ?? MAX_FAILED_ATTEMPTS
    this.timeoutMs = init.exchangeTimeoutMs ?? 20_000
    this.relay = init.relay ?? false
    this.onMembershipChange = this.onMembershipChange.bind(this)
  }

  async start (): Promise<void> {
    if (this.started) return
    this.started = true
    this.served = await serveProtocol(this.network, PAIRING_PROTOCOL, async (framed, { peer, signal }) => { await this.respond(framed, peer.toString(), signal) }, {
      log: this.log,
      gate: this.gate,
      maxMessageBytes: MAX_PAIRING_MESSAGE_BYTES,
      timeoutMs: this.timeoutMs,
      // the one protocol a pairing connection (marked limited by the gate) may speak
      runOnLimitedConnection: true,
      maxInboundStreams: 4
    })
    if (this.relay) this.servedWindows = await serveRelayWindows(this.network, this.gate, this.log)
    this.membership.addEventListener('change', this.onMembershipChange)
  }

  async stop (): Promise<void> {
    if (!this.started) return
    this.started = false
    this.stopping.abort(new Error('pairing stopped'))
    this.membership.removeEventListener('change', this.onMembershipChange)
    for (const invite of this.held.values()) this.retire(invite)
    this.held.clear()
    await this.served?.stop()
    this.served = undefined
    await this.servedWindows?.stop()
    this.servedWindows = undefined
  }

  /** Makes a one-time invite to this device's hive. The result's `uri` holds the secret. */
  createInvite (options: { ttlMs?: number } = {}): CreatedInvite {
    if (!this.started) throw new PairingFailedError('pairing is not started')
    const ttlMs = options.ttlMs ?? DEFAULT_INVITE_TTL_MS
    if (!Number.isFinite(ttlMs) || ttlMs < 1_000 || ttlMs > MAX_INVITE_TTL_MS) {
      throw new InvalidTtlError(`an invite lives between 1 second and ${MAX_INVITE_TTL_MS / 60_000} minutes; ${ttlMs} ms is out of range`)
    }
    const addresses = this.reachableAddresses()
    if (addresses.length === 0) throw new InviterUnreachableError('this node listens on no address another device could dial; start it with --listen')
    const createdAt = this.now()
    const closeGateWindow = this.gate.openPairingWindow()
    const invite: HeldInvite = {
      id: newInviteId(),
      hiveId: this.membership.hiveId,
      secret: newSecret(),
      createdAt,
      expiresAt: Math.ceil((createdAt + ttlMs) / 1000) * 1000,
      state: 'open',
      failures: 0,
      exchanges: 0,
      closeWindow: () => {
        closeGateWindow()
        this.closeRelayWindows(invite)
      },
      relays: [...new Set(addresses.map(relayIn).filter((r): r is string => r != null))]
    }
    // at its expiry the invite opens no window any more; it stays listed a little longer
    invite.timer = setTimeout(() => {
      // an exchange under way finishes first; its end closes the window (closeDeadWindows)
      if (invite.exchanges === 0) invite.closeWindow()
      invite.timer = setTimeout(() => { this.retire(invite) }, LISTED_AFTER_MS)
      invite.timer.unref()
    }, invite.expiresAt - createdAt)
    invite.timer.unref()
    this.held.set(invite.id, invite)
    const uri = encodeInvite({ hiveId: invite.hiveId, inviter: this.membership.peerId, id: invite.id, secret: invite.secret, expiresAt: invite.expiresAt, addresses })
    this.log.info?.(`invite ${invite.id} to hive ${invite.hiveId} open until ${new Date(invite.expiresAt).toISOString()}`)
    invite.ready = this.openRelayWindows(invite)
    return { ...this.status(invite), uri, inviter: this.membership.peerId, addresses }
  }

  /**
   * As createInvite, and resolves once every relay the invite leads through has opened its
   * window (a relay that does not answer is logged and left out: the invite still works where
   * the inviter is reached directly).
   */
  async openInvite (options: { ttlMs?: number } = {}): Promise<CreatedInvite> {
    const created = this.createInvite(options)
    await this.held.get(created.id)?.ready
    return created
  }

  /** Asks each relay of the invite to let strangers through to this device while it is open. */
  private async openRelayWindows (invite: HeldInvite): Promise<void> {
    if (invite.relays.length === 0) return
    clearTimeout(invite.relayTimer)
    const ends = await Promise.all(invite.relays.map(async (relay) => {
      try {
        return await requestRelayWindow(this.network, relay, invite.id, invite.expiresAt, { signal: AbortSignal.any([this.stopping.signal, AbortSignal.timeout(10_000)]) })
      } catch (err) {
        this.log.warn(`the relay ${relay} opened no window for invite ${invite.id} (${(err as Error).message}): a device on another network may not reach this one with it`)
        return undefined
      }
    }))
    if (invite.state !== 'open' || invite.relays.length === 0) {
      this.closeRelayWindows(invite)
      return
    }
    // a relay bounds a window's length: ask again before the first one lapses, while the invite lives
    const granted = ends.filter((e): e is number => e != null && e > 0)
    if (granted.length === 0) return
    const first = Math.min(...granted)
    if (first >= invite.expiresAt) return
    invite.relayTimer = setTimeout(() => { invite.ready = this.openRelayWindows(invite) }, Math.max(1_000, first - Date.now() - RELAY_WINDOW_RENEW_MS))
    invite.relayTimer.unref()
  }

  /** Tells each relay of the invite that its window is closed; the relay would close it at its end anyway. */
  private closeRelayWindows (invite: HeldInvite): void {
    clearTimeout(invite.relayTimer)
    const relays = invite.relays
    invite.relays = []
    for (const relay of relays) {
      requestRelayWindow(this.network, relay, invite.id, 0, { signal: AbortSignal.timeout(10_000) }).catch((err: Error) => {
        this.log.debug(`the relay ${relay} was not told that invite ${invite.id} closed: ${err.message}`)
      })
    }
  }

  /** Every invite this node still holds, newest first, without secrets. */
  invites (): InviteStatus[] {
    return [...this.held.values()].map(i => this.status(i)).sort((a, b) => b.createdAt - a.createdAt)
  }

  /**
   * Withdraws an invite at once, used or not: its window closes, so a device still holding it
   * can no longer even connect for pairing.
   */
  cancelInvite (id: string): InviteStatus {
    const invite = this.held.get(id)
    if (invite == null) throw new InviteUnknownError(`no invite ${id} is held by this node`)
    this.retire(invite)
    return this.status(invite)
  }

  /**
   * Joins the hive an invite leads to: dials the inviter, proves the secret, and adopts the
   * member list it sends. `force` leaves a hive this device shares with others, and lets the
   * inviter rather than this device's own list decide whether it is already a member.
   */
  async join (input: string | Invite, options: { signal?: AbortSignal, force?: boolean } = {}): Promise<JoinResult> {
    const invite = typeof input === 'string' ? decodeInvite(input) : input
    const self = this.membership.peerId
    if (invite.inviter === self) throw new OwnInviteError('this invite was made by this device; use it on the device that should join')
    if (invite.expiresAt <= this.now()) throw new InviteExpiredError(`the invite expired at ${new Date(invite.expiresAt).toISOString()}: make a new one with "hive-node pair" on the inviting device`)
    // with force the inviter decides: a device removed without hearing of it still thinks it is in
    if (options.force !== true && invite.hiveId === this.membership.hiveId && this.membership.isMember(self)) throw new AlreadyMemberError(`this device is already a member of hive ${invite.hiveId}`)
    const others = this.membership.members().filter(m => !m.self)
    if (others.length > 0 && options.force !== true) {
      throw new AlreadyInHiveError(`this device is in hive ${this.membership.hiveId} with ${others.length} other device(s); joining another hive leaves it (use --force to do so)`)
    }
    if (invite.addresses.length === 0) throw new InviterUnreachableError('the invite lists no address for the inviting device')

    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(this.timeoutMs), ...(options.signal != null ? [options.signal] : [])])
    // the relays the invite leads through: this device reaches them only to be put through
    const relays = [...new Set(invite.addresses.map(relayIn).filter((r): r is string => r != null && r !== self))]
    const release = [this.gate.expectPairing(invite.inviter), ...relays.map(relay => this.gate.expectPairing(relay, { relay: true }))]
    let framed: FramedStream | undefined
    try {
      const addrs = invite.addresses.map(a => multiaddr(a).encapsulate(`/p2p/${invite.inviter}`))
      let connection: Connection
      try {
        // a fresh connection: an old one may be on its way out (this device removed unawares)
        connection = await this.network.dial(addrs, { signal, force: true })
        framed = await openFramed(connection, PAIRING_PROTOCOL, { signal, runOnLimitedConnection: true, maxMessageBytes: MAX_PAIRING_MESSAGE_BYTES })
      } catch (err) {
        options.signal?.throwIfAborted()
        throw new InviterUnreachableError(`could not reach the inviting device at ${invite.addresses.join(', ')} (${(err as Error).message}); check that its node is running, that both devices are on the same network${relays.length > 0 ? ' or that the relay it names is running' : ''}, and that the invite is still open: a device whose invites are all used, cancelled or expired accepts no connection from outside its hive`)
      }
      const joinerNonce = new Uint8Array(randomBytes(32))
      const ownAddrs = this.network.getMultiaddrs().map(a => a.toString()).slice(0, 8)
      await framed.write({ t: 'hello', v: 1, hive: invite.hiveId, invite: invite.id, nonce: joinerNonce, name: this.name, addrs: ownAddrs }, { signal })
      const challenge = await this.readReply(framed, ChallengeOrRefused, signal)
      if (challenge.t === 'refused') throw refusalError(challenge.code, challenge.message)
      const transcript = { hive: invite.hiveId, invite: invite.id, inviter: invite.inviter, joiner: self, joinerNonce, inviterNonce: challenge.nonce }
      await framed.write({ t: 'proof', mac: pairingMac(invite.revealSecret(), 'joiner', transcript) }, { signal })
      const welcome = await this.readReply(framed, WelcomeOrRefused, signal)
      if (welcome.t === 'refused') throw refusalError(welcome.code, welcome.message)
      if (!sameMac(welcome.mac, pairingMac(invite.revealSecret(), 'inviter', transcript))) {
        throw new InviterNotAuthenticError('the device at the invite\'s address could not prove it made the invite; nothing was changed')
      }
      if (welcome.hive !== invite.hiveId) throw new PairingFailedError(`the inviter sent the member list of hive ${welcome.hive}, not ${invite.hiveId}`)
      // addresses first, so the dialler can reach every member as soon as the list is adopted
      await this.membership.rememberAddresses(invite.inviter, invite.addresses)
      for (const [peer, list] of Object.entries(welcome.addrs)) {
        if (peer !== self) await this.membership.rememberAddresses(peer, list)
      }
      try {
        await this.membership.adopt(invite.hiveId, welcome.entries)
      } catch (err) {
        throw new PairingFailedError(`the member list the inviter sent does not verify (${(err as Error).message}); nothing was changed`)
      }
      await framed.close({ signal }).catch(() => {})
      this.log.info?.(`joined hive ${invite.hiveId} through ${invite.inviter}`)
      return { hiveId: invite.hiveId, inviter: invite.inviter, members: this.membership.members() }
    } catch (err) {
      framed?.abort(err as Error)
      throw err
    } finally {
      for (const r of release) r()
      this.gate.endPairing(invite.inviter)
      // the limited connection to a relay served its purpose; as a member this device dials it anew
      for (const relay of relays) this.gate.endPairing(relay)
    }
  }

  private async readReply<S extends z.ZodType> (framed: FramedStream, schema: S, signal: AbortSignal): Promise<z.infer<S>> {
    try {
      return await framed.read(schema, { signal })
    } catch (err) {
      if (this.stopping.signal.aborted) throw err
      throw new PairingFailedError(`the inviting device broke off the pairing (${(err as Error).message})`)
    }
  }

  /**
   * Inviter side of the exchange. serveProtocol has checked the gate (only a joiner this
   * device expects may speak pairing) and bounds the exchange in time; a joiner that sends
   * something malformed is hung up on there.
   */
  private async respond (framed: FramedStream, joiner: string, signal: AbortSignal): Promise<void> {
    try {
      await this.exchange(framed, joiner, signal)
    } finally {
      // an invite used or closed by this exchange opens no window any more: with no live
      // invite left, the gate closes every stranger's pairing connection
      this.closeDeadWindows()
    }
  }

  private async exchange (framed: FramedStream, joiner: string, signal: AbortSignal): Promise<void> {
    let inviteId = '?'
    const refuse = async (code: RefusalCode): Promise<void> => {
      const error = refusalError(code, MESSAGES[code])
      this.log.warn(`pairing with ${joiner} on invite ${inviteId} refused: ${code}`)
      this.dispatchEvent(new CustomEvent<RefusedEvent>('refused', { detail: { peer: joiner, inviteId, error } }))
      await framed.write({ t: 'refused', code, message: error.message }, { signal })
      await framed.close({ signal }).catch(() => {})
    }
    const hello = await framed.read(Hello, { signal })
    inviteId = hello.invite
    const invite = this.held.get(hello.invite)
    const early = this.check(invite, hello.hive, joiner)
    if (early != null || invite == null) {
      await refuse(early ?? 'InviteUnknown')
      return
    }
    // the invite's window stays open while this exchange runs, even once the invite is burnt:
    // the welcome still has to reach this joiner over its pairing connection
    invite.exchanges++
    try {
      await this.proveAndWelcome(framed, joiner, hello, invite, refuse, signal)
    } finally {
      invite.exchanges--
    }
  }

  private async proveAndWelcome (framed: FramedStream, joiner: string, hello: z.infer<typeof Hello>, invite: HeldInvite, refuse: (code: RefusalCode) => Promise<void>, signal: AbortSignal): Promise<void> {
    const inviterNonce = new Uint8Array(randomBytes(32))
    await framed.write({ t: 'challenge', nonce: inviterNonce }, { signal })
    const proof = await framed.read(Proof, { signal })
    // the invite may have been used, closed or expired while this joiner was answering
    const late = this.check(invite, hello.hive, joiner)
    if (late != null) {
      await refuse(late)
      return
    }
    const transcript = { hive: invite.hiveId, invite: invite.id, inviter: this.membership.peerId, joiner, joinerNonce: hello.nonce, inviterNonce }
    if (!sameMac(proof.mac, pairingMac(invite.secret, 'joiner', transcript))) {
      invite.failures++
      if (invite.failures >= this.maxFailures) {
        invite.state = 'closed'
        this.log.warn(`invite ${invite.id} closed after ${invite.failures} wrong attempts`)
      }
      await refuse('WrongSecret')
      return
    }
    // burnt before anything else can run: a second proof finds it used
    invite.state = 'used'
    invite.usedBy = joiner
    try {
      await this.membership.add(joiner, { name: hello.name, addrs: hello.addrs, invite: invite.id })
      await this.membership.rememberAddresses(joiner, hello.addrs)
    } catch (err) {
      this.log.warn(`could not add ${joiner} after a valid proof: ${(err as Error).message}`)
      await refuse('PairingFailed')
      return
    }
    await framed.write({
      t: 'welcome',
      mac: pairingMac(invite.secret, 'inviter', transcript),
      hive: invite.hiveId,
      entries: this.membership.entries().map(toWire),
      addrs: this.hints(joiner)
    }, { signal })
    await framed.close({ signal }).catch(() => {})
    this.log.info?.(`paired ${hello.name} (${joiner}) on invite ${invite.id}`)
    this.dispatchEvent(new CustomEvent<PairedEvent>('paired', { detail: { peer: joiner, name: hello.name, inviteId: invite.id } }))
    this.gate.endPairing(joiner)
  }

  /** Closes the window of every invite that can no longer be used (used, closed, expired). */
  private closeDeadWindows (): void {
    for (const invite of this.held.values()) {
      if (invite.exchanges > 0) continue
      if (invite.state !== 'open' || this.now() >= invite.expiresAt) invite.closeWindow()
    }
  }

  /** Why an invite cannot be used now by this joiner, or undefined when it can. */
  private check (invite: HeldInvite | undefined, hive: string, joiner: string): RefusalCode | undefined {
    if (invite == null || invite.hiveId !== hive || invite.hiveId !== this.membership.hiveId) return 'InviteUnknown'
    if (this.membership.isMember(joiner)) return 'AlreadyMember'
    if (invite.state === 'used') return 'InviteUsed'
    if (invite.state === 'closed') return 'InviteClosed'
    if (this.now() >= invite.expiresAt) return 'InviteExpired'
    return undefined
  }

  private hints (joiner: string): Record<string, string[]> {
    const out: Record<string, string[]> = {}
    out[this.membership.peerId] = this.reachableAddresses()
    for (const member of this.membership.members()) {
      if (member.self || member.peerId === joiner) continue
      const addrs = this.membership.addressesOf(member.peerId).slice(0, 8)
      if (addrs.length > 0) out[member.peerId] = addrs
    }
    return out
  }

  /**
   * Listen addresses another device could dial, LAN ones first, loopback last, then this
   * device's addresses through member relays it holds a reservation on.
   */
  private reachableAddresses (): string[] {
    const all = this.network.getMultiaddrs()
    const list = all
      .filter(ma => !ma.getComponents().some(c => c.name === 'p2p-circuit'))
      .map(ma => multiaddr(ma.getComponents().filter(c => c.name !== 'p2p')).toString())
    const relayed = all
      .map(ma => ma.toString())
      .filter(a => a.includes('/p2p-circuit') && relayIn(a) != null && this.membership.isMember(relayIn(a)!))
    const loopback = (a: string): boolean => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/')
    return inviteAddresses([...list.filter(a => !loopback(a)), ...list.filter(loopback), ...relayed])
  }

  private status (invite: HeldInvite): InviteStatus {
    const state: InviteState = invite.state === 'open' && this.now() >= invite.expiresAt ? 'expired' : invite.state
    return { id: invite.id, hiveId: invite.hiveId, state, createdAt: invite.createdAt, expiresAt: invite.expiresAt, failedAttempts: invite.failures, usedBy: invite.usedBy }
  }

  /** Forgets an invite: its window closes, so non-members can no longer connect for it. */
  private retire (invite: HeldInvite): void {
    clearTimeout(invite.timer)
    invite.closeWindow()
    if (invite.state === 'open') invite.state = 'closed'
    this.held.delete(invite.id)
  }

  private onMembershipChange (event: Event): void {
    const change = (event as CustomEvent<MembershipChange>).detail
    if (!change.hiveChanged) return
    // invites lead into the hive this node has just left
    for (const invite of this.held.values()) this.retire(invite)
  }
}

export function createPairing (init: PairingInit, components: PairingComponents): Pairing {
  return new Pairing(init, components)
}

export { Invite, decodeInvite, encodeInvite }
