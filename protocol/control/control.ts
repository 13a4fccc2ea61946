// The hive's kill switch: a grow-only set of signed halt and resume entries, kept in LevelDB and
// replicated to every member as the member list is. The set's greatest entry (entries.ts,
// `compareControlEntries`) says whether the hive is halted. Set union is commutative,
// associative and idempotent, and the order is total, so every member that holds the same
// entries reaches the same state, whatever order they came in.
//
// Protocol /hive/control/1.0.0, one exchange per stream:
//   initiator -> responder  { t: 'entries', hive, entries }   every entry it holds
//   responder -> initiator  { t: 'entries', hive, entries }   every entry it holds
// Each side merges what it got. When exchanges run is ../wire/replicated-entries.ts: with every
// member when a connection opens, and after a change with every connected member but the one it
// came from (so a change travels once). One entry that does not verify and the whole message is
// refused, and the sender hung up on. A bidder asks `synced(submitter)` first: a device back
// from offline hears of a halt before it bids on anything.
//
// Invariant: persist, then apply, then forward (as crdt/store.ts): an entry this node forwarded
// or acted on is on its disk.

import { z } from 'zod'
import { CONTROL_PROTOCOL } from '../wire/ids.ts'
import { SILENT_LOG } from '../wire/log.ts'
import { createReplicatedEntries } from '../wire/replicated-entries.ts'
import { toWireSignedEntry } from '../wire/signed-entries.ts'
import { TypedEventTarget } from '../placement/events.ts'
import { ControlRefusedError, HaltedError, InvalidControlEntryError } from './errors.ts'
import {
  MAX_REASON_CHARS, WireControlEntrySchema, compareControlEntries, createControlEntry, decodeControlEntry, encodeControlEntry, kindOf, openControlEntry
} from './entries.ts'
import { EMPTY_BUDGETS } from './budgets.ts'
import { EMPTY_POLICY } from './policy.ts'
import type { ControlEntry, ControlKind } from './entries.ts'
import type { Budgets } from './budgets.ts'
import type { Policy } from './policy.ts'
import type { ReplicaHost, ReplicatedEntries, SyncedOptions } from '../wire/replicated-entries.ts'
import type { ProtocolLog, PeerGate } from '../wire/serve.ts'
import type { Signer } from '../wire/signing.ts'
import type { AbortOptions } from '@libp2p/interface'

/** Entries held at most; beyond it the least are dropped, which never changes the state (the greatest decides). */
export const MAX_CONTROL_ENTRIES = 256
/** Policy entries held at most, and budget entries: only the greatest of each decides. */
export const MAX_SETTING_ENTRIES = 4
/**
 * Bytes of one exchange message: at most 248 halt or resume entries of 2 KiB and 8 settings of
 * 8 KiB (568 KiB), and their framing.
 */
export const MAX_CONTROL_MESSAGE_BYTES = 640 * 1024
/** Longest one exchange may take, either side. */
export const CONTROL_EXCHANGE_TIMEOUT_MS = 10_000
/** Exchange streams one peer may have open here at once. */
export const MAX_CONTROL_STREAMS = 8
const EXCHANGE_TIMEOUT_MS = CONTROL_EXCHANGE_TIMEOUT_MS

const EntriesMessage = z.strictObject({
  t: z.literal('entries'),
  hive: z.string().regex(/^[a-z2-7]{26}$/),
  entries: z.array(WireControlEntrySchema).max(MAX_CONTROL_ENTRIES)
})

/** Whether the hive is halted, and by which entry (the greatest one held). */
export interface HaltState {
  halted: boolean
  /** The entry that decides: who halted or resumed, when, why. */
  by?: string
  at?: number
  reason?: string
  id?: string
  /** Lamport counter of the deciding entry. */
  n?: number
}

/** A setting in force (the policy or the budgets) and the entry it comes from. */
export interface Setting<T> {
  value: T
  /** The entry that decides; absent while no member has set one. */
  by?: string
  at?: number
  n?: number
  id?: string
}

export interface ControlEvents extends Record<string, unknown> {
  /** The state changed: a halt or a resume, made here or learnt from `from`. */
  change: HaltState & { from?: string }
  /** The policy in force changed (set here or learnt from `from`). */
  policy: Setting<Policy> & { from?: string }
  /** The budgets in force changed. */
  budgets: Setting<Budgets> & { from?: string }
  /** A peer sent entries that do not verify and was hung up on. */
  refused: { peer: string, error: string }
}

/** The LevelDB sublevel the entries live in (key: entry id, value: the encoded entry). */
export interface ControlDb {
  put: (key: string, value: Uint8Array) => Promise<void>
  del: (key: string) => Promise<void>
  values: () => AsyncIterable<Uint8Array>
}

export type ControlHost = ReplicaHost

export interface ControlComponents {
  db: ControlDb
  signer: Signer
  hiveId: () => string
  isMember: (peer: string) => boolean
  /** Whether a connection to this member is transient (beyond an all-to-all hive, not a neighbour): no exchange when it opens. */
  transient?: (peer: string) => boolean
  host: ControlHost
  gate?: PeerGate
  log?: ProtocolLog
  /** Device names for messages ("halted by laptop"). */
  nameOf?: (peer: string) => string | undefined
}

export interface Control extends TypedEventTarget<ControlEvents> {
  /** Loads the stored entries (before anything runs), serves the protocol, syncs with every member connected. */
  start: () => Promise<void>
  stop: () => Promise<void>
  state: () => HaltState
  /** The error anything that would run must throw while halted; undefined when not halted. */
  refusal: () => HaltedError | undefined
  halt: (reason?: string) => Promise<HaltState>
  resume: () => Promise<HaltState>
  /** Resolves once this node has exchanged entries with `peer` on its current connection (tries once now if not). */
  synced: (peer: string, options?: AbortOptions) => Promise<void>
  /** Exchanges entries with every connected member (the member list changed). */
  resync: () => void
  /** Every entry held, greatest last. */
  entries: () => ControlEntry[]
  /** The hive's policy in force (empty until a member sets one). */
  policy: () => Setting<Policy>
  /** The policy's rules as held: for reading only, not a copy. */
  policyRules: () => Readonly<Policy>
  /** Signs and replicates a whole new policy; it wins over every entry this node holds. */
  setPolicy: (policy: Policy) => Promise<Setting<Policy>>
  /** The hive's budgets in force (none until a member sets them). */
  budgets: () => Setting<Budgets>
  setBudgets: (budgets: Budgets) => Promise<Setting<Budgets>>
}

export function createControl (components: ControlComponents): Control {
  return new ControlService(components)
}

class ControlService extends TypedEventTarget<ControlEvents> implements Control {
  private readonly components: ControlComponents
  private readonly log: ProtocolLog
  private readonly held = new Map<string, ControlEntry>()
  private readonly replica: ReplicatedEntries
  private running = false
  private current: HaltState = { halted: false }
  private currentPolicy: Setting<Policy> = { value: EMPTY_POLICY }
  private currentBudgets: Setting<Budgets> = { value: EMPTY_BUDGETS }

  constructor (components: ControlComponents) {
    super()
    this.components = components
    this.log = components.log ?? SILENT_LOG
    this.replica = createReplicatedEntries<ControlEntry>({
      name: 'control',
      protocol: CONTROL_PROTOCOL,
      maxMessageBytes: MAX_CONTROL_MESSAGE_BYTES,
      timeoutMs: EXCHANGE_TIMEOUT_MS,
      maxInboundStreams: MAX_CONTROL_STREAMS,
      isEntryFault: (err) => err instanceof InvalidControlEntryError,
      initiate: async (stream, peer, signal) => {
        await stream.write(this.message(), { signal })
        return this.check(await stream.read(EntriesMessage, { signal }), peer)
      },
      respond: async (stream, peer, signal) => {
        const entries = this.check(await stream.read(EntriesMessage, { signal }), peer)
        await stream.write(this.message(), { signal })
        return entries
      },
      merge: async (entries, from) => { await this.merge(entries, from) },
      onRefused: (peer, error) => { this.emit('refused', { peer, error }) }
    }, components)
  }

  async start (): Promise<void> {
    if (this.running) return
    for await (const value of this.components.db.values()) {
      try {
        const entry = decodeControlEntry(value)
        this.held.set(entry.id, entry)
      } catch (err) {
        // a damaged record cannot decide anything; the others still do, and members resend it
        this.log.warn(`control: a stored entry is damaged and was skipped: ${(err as Error).message}`)
      }
    }
    this.current = this.compute()
    this.currentPolicy = this.setting('policy', EMPTY_POLICY)
    this.currentBudgets = this.setting('budget', EMPTY_BUDGETS)
    this.running = true
    await this.replica.start()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    await this.replica.stop()
  }

  resync (): void {
    this.replica.resync()
  }

  state (): HaltState {
    return { ...this.current }
  }

  entries (): ControlEntry[] {
    return [...this.held.values()].sort(compareControlEntries)
  }

  refusal (): HaltedError | undefined {
    const s = this.current
    if (!s.halted) return undefined
    const who = s.by != null ? `${this.components.nameOf?.(s.by) ?? s.by}${this.components.nameOf?.(s.by) != null ? ` (${s.by})` : ''}` : 'a member'
    return new HaltedError(`the hive is halted: ${who} halted it at ${new Date(s.at ?? 0).toISOString()}` +
      `${s.reason != null && s.reason !== '' ? ` ("${s.reason}")` : ''}; nothing runs until a member runs "hive-node resume"`)
  }

  async halt (reason?: string): Promise<HaltState> {
    if (reason != null && reason.length > MAX_REASON_CHARS) throw new ControlRefusedError(`the reason is ${reason.length} characters; at most ${MAX_REASON_CHARS} are kept`)
    return this.append('halt', reason)
  }

  async resume (): Promise<HaltState> {
    if (!this.current.halted) throw new ControlRefusedError('the hive is not halted; there is nothing to resume')
    return this.append('resume')
  }

  private async append (type: 'halt' | 'resume', reason?: string): Promise<HaltState> {
    if (!this.running) throw new ControlRefusedError('the node is not running; start it first')
    const entry = await createControlEntry({
      type, hive: this.components.hiveId(), at: Date.now(), n: this.nextCounter(), ...(reason != null && reason !== '' ? { reason } : {})
    }, this.components.signer)
    await this.merge([entry])
    return this.state()
  }

  /** One more than the greatest counter held, of any kind: an entry made now follows all it saw. */
  private nextCounter (): number {
    return Math.max(0, ...[...this.held.values()].map(e => e.body.n)) + 1
  }

  policy (): Setting<Policy> {
    return structuredClone(this.currentPolicy)
  }

  /** The policy's rules as held, for a check that only reads them (a bid reads them at every announcement). */
  policyRules (): Readonly<Policy> {
    return this.currentPolicy.value
  }

  budgets (): Setting<Budgets> {
    return structuredClone(this.currentBudgets)
  }

  async setPolicy (policy: Policy): Promise<Setting<Policy>> {
    if (!this.running) throw new ControlRefusedError('the node is not running; start it first')
    const entry = await createControlEntry({ type: 'policy', hive: this.components.hiveId(), at: Date.now(), n: this.nextCounter(), policy }, this.components.signer)
    await this.merge([entry])
    return this.policy()
  }

  async setBudgets (budgets: Budgets): Promise<Setting<Budgets>> {
    if (!this.running) throw new ControlRefusedError('the node is not running; start it first')
    const entry = await createControlEntry({ type: 'budget', hive: this.components.hiveId(), at: Date.now(), n: this.nextCounter(), budgets }, this.components.signer)
    await this.merge([entry])
    return this.budgets()
  }

  async synced (peer: string, options: SyncedOptions = {}): Promise<void> {
    await this.replica.synced(peer, options)
  }

  private message (): z.infer<typeof EntriesMessage> {
    return { t: 'entries', hive: this.components.hiveId(), entries: this.entries().map(toWireSignedEntry) }
  }

  /**
   * Opens every entry of a message; one that fails refuses the whole message. Entries of another
   * hive are well-formed but not for this one: while a device joins, the two ends may still name
   * different hives for a moment, so they are set aside, not held against the sender.
   */
  private check (message: z.infer<typeof EntriesMessage>, from: string): ControlEntry[] {
    const hive = this.components.hiveId()
    const out: ControlEntry[] = []
    for (const wire of message.entries) out.push(openControlEntry(wire))
    if (message.hive !== hive) {
      this.log.debug(`control: ${from} sent the entries of hive ${message.hive}, not ${hive}; set aside`)
      return []
    }
    return out.filter(e => e.body.hive === hive)
  }

  /** Persists what is new, applies it, tells the other members. */
  private async merge (entries: ControlEntry[], from?: string): Promise<void> {
    const fresh: ControlEntry[] = []
    for (const entry of entries) {
      if (this.held.has(entry.id) || fresh.some(e => e.id === entry.id)) continue
      // only a member may pull or release the switch; an entry of a device no longer in the
      // hive is not counted (nor a fault: it was valid when its member made it)
      if (!this.components.isMember(entry.body.by)) {
        this.log.debug(`control: entry ${entry.id.slice(0, 12)} by ${entry.body.by}, not a member, ignored`)
        continue
      }
      fresh.push(entry)
    }
    if (fresh.length === 0) return
    for (const entry of fresh) await this.components.db.put(entry.id, encodeControlEntry(entry))
    for (const entry of fresh) this.held.set(entry.id, entry)
    await this.trim()
    const before = this.current
    this.current = this.compute()
    const beforePolicy = this.currentPolicy.id
    this.currentPolicy = this.setting('policy', EMPTY_POLICY)
    const beforeBudgets = this.currentBudgets.id
    this.currentBudgets = this.setting('budget', EMPTY_BUDGETS)
    if (before.id !== this.current.id) {
      this.log.info?.(`control: the hive is ${this.current.halted ? 'halted' : 'resumed'} by ${this.current.by ?? '?'}${from != null ? ` (heard from ${from})` : ''}`)
      this.emit('change', { ...this.current, ...(from != null ? { from } : {}) })
    }
    if (beforePolicy !== this.currentPolicy.id) {
      this.log.info?.(`control: policy set by ${this.currentPolicy.by ?? '?'}${from != null ? ` (heard from ${from})` : ''}`)
      this.emit('policy', { ...this.policy(), ...(from != null ? { from } : {}) })
    }
    if (beforeBudgets !== this.currentBudgets.id) {
      this.log.info?.(`control: budgets set by ${this.currentBudgets.by ?? '?'}${from != null ? ` (heard from ${from})` : ''}`)
      this.emit('budgets', { ...this.budgets(), ...(from != null ? { from } : {}) })
    }
    this.replica.forward(from)
  }

  /**
   * Drops the least entries beyond the bounds: settings beyond MAX_SETTING_ENTRIES of their kind,
   * then anything beyond MAX_CONTROL_ENTRIES. Never the greatest of a kind, so never the state.
   */
  private async trim (): Promise<void> {
    const order = this.entries()
    const drop = new Set<ControlEntry>()
    for (const kind of ['policy', 'budget'] as const) {
      const ofKind = order.filter(e => kindOf(e.body.type) === kind)
      for (const entry of ofKind.slice(0, Math.max(0, ofKind.length - MAX_SETTING_ENTRIES))) drop.add(entry)
    }
    const tops = new Set((['switch', 'policy', 'budget'] as const).map(k => order.filter(e => kindOf(e.body.type) === k).at(-1)))
    let count = order.length - drop.size
    for (const entry of order) {
      if (count <= MAX_CONTROL_ENTRIES) break
      if (drop.has(entry) || tops.has(entry)) continue
      drop.add(entry)
      count--
    }
    for (const entry of drop) {
      this.held.delete(entry.id)
      await this.components.db.del(entry.id).catch(() => {})
    }
  }

  /** The greatest entry of a kind for this hive. */
  private top (kind: ControlKind): ControlEntry | undefined {
    const hive = this.components.hiveId()
    let top: ControlEntry | undefined
    for (const entry of this.held.values()) {
      if (entry.body.hive !== hive || kindOf(entry.body.type) !== kind) continue
      if (top == null || compareControlEntries(entry, top) > 0) top = entry
    }
    return top
  }

  private compute (): HaltState {
    const top = this.top('switch')
    if (top == null || top.body.type === 'policy' || top.body.type === 'budget') return { halted: false }
    return {
      halted: top.body.type === 'halt',
      by: top.body.by,
      at: top.body.at,
      ...(top.body.reason != null ? { reason: top.body.reason } : {}),
      id: top.id,
      n: top.body.n
    }
  }

  private setting (kind: 'policy', empty: Policy): Setting<Policy>
  private setting (kind: 'budget', empty: Budgets): Setting<Budgets>
  private setting (kind: 'policy' | 'budget', empty: Policy | Budgets): Setting<Policy | Budgets> {
    const top = this.top(kind)
    if (top == null) return { value: empty }
    const value = top.body.type === 'policy' ? top.body.policy : top.body.type === 'budget' ? top.body.budgets : empty
    return { value, by: top.body.by, at: top.body.at, n: top.body.n, id: top.id }
  }
}
