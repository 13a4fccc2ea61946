// Membership: this device's hive (its id and its member list), kept durable in LevelDB.
//
// A node with nothing stored founds a hive of one. Adds and removals are signed entries merged
// into the graph (graph.ts); every change is on disk (synced write) before anyone sees it.
// Joining another hive replaces the whole list at once. A node that learns it was removed
// leaves: it founds a fresh hive of one, so it keeps nothing that would let it back in.

import { randomBytes } from 'node:crypto'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { CannotRemoveSelfError, InvalidEntryError, MembershipNotStartedError, NotAMemberError } from './errors.ts'
import { SILENT_LOG } from '../wire/log.ts'
import { MemberGraph } from './graph.ts'
import { checkPeerId, createEntry, decodeEntry, encodeEntry, hiveIdOf, openEntry } from './entries.ts'
import type { ChainLink, HiveView, Member, Removal } from './graph.ts'
import type { Entry, HiveId, MembershipSigner, WireEntry } from './entries.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { PeerId } from '@libp2p/interface'

/** The part of a LevelDB handle (a sublevel with utf8 keys and Uint8Array values) used here. */
export interface MembershipDb {
  get: (key: string) => Promise<Uint8Array | undefined>
  batch: (operations: Array<{ type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }>, options: { sync: boolean }) => Promise<void>
  keys: (options: { gte: string, lt: string }) => AsyncIterable<string>
}

export type MembershipLog = ProtocolLog

export interface MembershipInit {
  /** This device's node name, recorded in the entry that adds it. */
  name: string
  log?: MembershipLog
}

export interface MembershipComponents {
  signer: MembershipSigner
  db: MembershipDb
}

export interface MembershipChange {
  hiveId: HiveId
  /** Peers that became members. */
  joined: string[]
  /** Peers that stopped being members (removed, or left behind by a change of hive). */
  left: string[]
  /** Entries new to this node. */
  entries: Entry[]
  /** The member list is a different hive's now (this node joined one, or was removed and refounded). */
  hiveChanged: boolean
  /** The peer the entries came from, when they came from one (replication skips echoing to it). */
  origin?: string
}

export interface MemberSummary extends Member {
  self: boolean
}

/** The name of the node's LevelDB sublevel that holds the member list. */
export const MEMBERSHIP_SUBLEVEL = 'membership'

const KEY_HIVE = 'hive'
const entryPrefix = (hive: string): string => `e/${hive}/`
const ADDR_PREFIX = 'addr/'
const MAX_REMEMBERED_ADDRS = 8

/** Of the addresses kept for a peer, at most this many are through a relay (`/p2p-circuit`). */
export const MAX_RELAYED_ADDRS = 3

/**
 * The addresses kept for (or told about) a peer: distinct, each at most 256 characters, at most
 * MAX_REMEMBERED_ADDRS in the order given (newest first), of which at most MAX_RELAYED_ADDRS
 * are through a relay, so a device's relay addresses are not crowded out by its LAN ones, nor
 * the other way round.
 */
export function boundAddresses (addrs: readonly string[]): string[] {
  const clean = [...new Set(addrs.filter(a => a.length > 0 && a.length <= 256))]
  const relayed = clean.filter(isRelayedAddress).slice(0, MAX_RELAYED_ADDRS)
  const direct = clean.filter(a => !isRelayedAddress(a)).slice(0, MAX_REMEMBERED_ADDRS - relayed.length)
  const keep = new Set([...direct, ...relayed])
  return clean.filter(a => keep.has(a))
}

/** Whether a multiaddr (as text) goes through a circuit relay. */
export function isRelayedAddress (addr: string): boolean {
  return addr.includes('/p2p-circuit')
}

const AddrList = z.array(z.string().min(1).max(256)).max(MAX_REMEMBERED_ADDRS)


export class Membership extends EventTarget {
  readonly peerId: string
  private readonly name: string
  private readonly signer: MembershipSigner
  private readonly db: MembershipDb
  private readonly log: MembershipLog
  private graph?: MemberGraph
  private readonly addrs = new Map<string, string[]>()
  /** Serialises changes so each one is stored before the next starts. */
  private queue: Promise<unknown> = Promise.resolve()

  constructor (init: MembershipInit, components: MembershipComponents) {
    super()
    this.signer = components.signer
    this.peerId = checkPeerId(components.signer.peerId)
    this.db = components.db
    this.name = init.name
    this.log = init.log ?? SILENT_LOG
  }

  /** Loads the stored hive, or founds a hive of one when there is none. */
  async start (): Promise<void> {
    if (this.graph != null) return
    const stored = await this.db.get(KEY_HIVE)
    if (stored != null) {
      const hive = new TextDecoder().decode(stored)
      this.graph = await this.load(hive)
    }
    if (this.graph == null) {
      this.graph = await this.found()
      this.log.info?.(`founded hive ${this.graph.hiveId}`)
    } else if (!this.graph.isMember(this.peerId)) {
      // removed while stopped (or the list says so): start over alone
      this.graph = await this.found()
      this.log.info?.(`this device is no longer a member of its former hive; founded hive ${this.graph.hiveId}`)
    }
    for await (const key of this.db.keys({ gte: ADDR_PREFIX, lt: ADDR_PREFIX + '\uffff' })) {
      const value = await this.db.get(key)
      if (value == null) continue
      const parsed = AddrList.safeParse(safeCbor(value))
      if (parsed.success) this.addrs.set(key.slice(ADDR_PREFIX.length), parsed.data)
    }
  }

  async stop (): Promise<void> {
    await this.queue.catch(() => {})
  }

  get hiveId (): HiveId {
    return this.current().hiveId
  }

  view (): HiveView {
    return this.current().view()
  }

  isMember (peer: PeerId | string): boolean {
    return this.graph?.isMember(peer.toString()) ?? false
  }

  /** Members, founder first, then by name. */
  members (): MemberSummary[] {
    return [...this.view().members.values()]
      .map(m => ({ ...m, self: m.peerId === this.peerId }))
      .sort((a, b) => Number(b.founder) - Number(a.founder) || (a.name ?? '').localeCompare(b.name ?? '') || a.peerId.localeCompare(b.peerId))
  }

  removed (): Removal[] {
    return [...this.view().removed.values()]
  }

  member (peer: string): Member | undefined {
    return this.view().members.get(peer)
  }

  /** Who added whom, from the founder down to `peer`. */
  chain (peer: string): ChainLink[] {
    return this.current().chain(peer)
  }

  /** Every entry held, in causal order. */
  entries (): Entry[] {
    return this.current().all()
  }

  entryIds (): string[] {
    return this.current().ids()
  }

  hasEntry (id: string): boolean {
    return this.current().has(id)
  }

  /** Adds a device (after it proved an invite). Stored before it returns. */
  async add (peer: string, details: { name?: string, addrs?: string[], invite?: string } = {}): Promise<Entry> {
    return this.serial(async () => {
      const graph = this.current()
      const subject = checkPeerId(peer)
      const entry = await createEntry({
        type: 'add',
        hive: graph.hiveId,
        peer: subject,
        at: Date.now(),
        deps: graph.heads(),
        name: details.name,
        addrs: details.addrs?.slice(0, 8),
        invite: details.invite
      }, this.signer)
      await this.apply(graph, [entry])
      return entry
    })
  }

  /** Revokes a member. Stored before it returns; replication spreads it. */
  async remove (peer: string): Promise<Entry> {
    return this.serial(async () => {
      const graph = this.current()
      const subject = checkPeerId(peer)
      if (subject === this.peerId) throw new CannotRemoveSelfError('a device cannot remove itself: remove it from another member, or join another hive with it')
      if (!graph.isMember(subject)) throw new NotAMemberError(`${subject} is not a member of hive ${graph.hiveId}; see the member list for its PeerIds`)
      const entry = await createEntry({ type: 'remove', hive: graph.hiveId, peer: subject, at: Date.now(), deps: graph.heads() }, this.signer)
      await this.apply(graph, [entry])
      return entry
    })
  }

  /**
   * Verifies and merges entries another member sent. All or nothing: one bad entry refuses the
   * batch (InvalidEntry, UnauthorizedEntry, HiveMismatch, TooManyEntries) and nothing changes.
   */
  async merge (wire: WireEntry[], options: { origin?: string } = {}): Promise<Entry[]> {
    const graph = this.current()
    const opened: Entry[] = []
    for (const w of wire) {
      opened.push(await openEntry(w))
    }
    return this.serial(async () => {
      // the hive changed while these were being checked: they belong to the old one
      if (this.current() !== graph) return []
      return this.apply(graph, opened, options.origin)
    })
  }

  /**
   * Replaces this device's hive with another (after pairing). The entries must found `hive`,
   * hold together, and make this device a member.
   */
  async adopt (hive: string, wire: WireEntry[]): Promise<void> {
    const opened: Entry[] = []
    for (const w of wire) opened.push(await openEntry(w))
    const genesis = opened.find(e => e.body.type === 'found')
    if (genesis == null) throw new InvalidEntryError('the member list has no genesis entry')
    if (hiveIdOf(genesis) !== hive) throw new InvalidEntryError(`the member list founds hive ${hiveIdOf(genesis)}, not ${hive}`)
    const next = new MemberGraph(genesis)
    next.merge(opened.filter(e => e !== genesis))
    if (!next.isMember(this.peerId)) throw new InvalidEntryError('the member list does not make this device a member')
    await this.serial(async () => {
      const previous = this.current()
      await this.persistHive(next, previous.hiveId)
      this.graph = next
      this.emitChange(previous, next, next.all(), true)
    })
  }

  /** Addresses this device was told or saw for a peer (hints for dialling, never trusted). */
  addressesOf (peer: string): string[] {
    const remembered = this.addrs.get(peer) ?? []
    const recorded = this.graph?.view().members.get(peer)?.addrs ?? []
    return [...new Set([...remembered, ...recorded])]
  }

  async rememberAddresses (peer: string, addrs: string[]): Promise<void> {
    const clean = boundAddresses(addrs)
    if (clean.length === 0) return
    const old = this.addrs.get(peer)
    if (old != null && old.length === clean.length && old.every((a, i) => a === clean[i])) return
    this.addrs.set(peer, clean)
    await this.db.batch([{ type: 'put', key: ADDR_PREFIX + peer, value: cborEncode(clean) }], { sync: true })
  }

  private current (): MemberGraph {
    if (this.graph == null) throw new MembershipNotStartedError('membership is not started')
    return this.graph
  }

  private async serial<T> (task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task)
    this.queue = run.catch(() => {})
    return run
  }

  /** Merges into `graph`, stores what is new, and reacts to the result. Runs inside serial(). */
  private async apply (graph: MemberGraph, entries: Entry[], origin?: string): Promise<Entry[]> {
    const before = graph.view()
    const added = graph.merge(entries)
    if (added.length === 0) return []
    try {
      await this.db.batch(added.map(e => ({ type: 'put' as const, key: entryPrefix(graph.hiveId) + e.id, value: encodeEntry(e) })), { sync: true })
    } catch (err) {
      // not stored, so not kept: rebuild the graph from disk
      this.graph = await this.load(graph.hiveId) ?? graph
      throw err
    }
    if (!graph.isMember(this.peerId)) {
      const previous = graph
      this.graph = await this.found()
      this.log.info?.(`this device was removed from hive ${previous.hiveId}; founded hive ${this.graph.hiveId}`)
      this.emitChange(previous, this.graph, added, true, origin)
      return added
    }
    this.emitChange(before, graph, added, false, origin)
    return added
  }

  private emitChange (before: MemberGraph | HiveView, after: MemberGraph, entries: Entry[], hiveChanged: boolean, origin?: string): void {
    const was = before instanceof MemberGraph ? before.view() : before
    const now = after.view()
    const joined = [...now.members.keys()].filter(p => !was.members.has(p) || hiveChanged)
    const left = [...was.members.keys()].filter(p => !now.members.has(p))
    const detail: MembershipChange = { hiveId: after.hiveId, joined, left, entries, hiveChanged, origin }
    this.dispatchEvent(new CustomEvent<MembershipChange>('change', { detail }))
  }

  private async found (): Promise<MemberGraph> {
    const genesis = await createEntry({ type: 'found', peer: this.peerId, at: Date.now(), deps: [], name: this.name, nonce: new Uint8Array(randomBytes(16)) }, this.signer)
    const graph = new MemberGraph(genesis)
    await this.persistHive(graph, this.graph?.hiveId)
    return graph
  }

  /** Writes a whole hive and points at it in one synced batch, then drops the old one's entries. */
  private async persistHive (graph: MemberGraph, previous?: string): Promise<void> {
    const ops: Array<{ type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }> = graph.all().map(e => ({ type: 'put' as const, key: entryPrefix(graph.hiveId) + e.id, value: encodeEntry(e) }))
    ops.push({ type: 'put', key: KEY_HIVE, value: new TextEncoder().encode(graph.hiveId) })
    await this.db.batch(ops, { sync: true })
    if (previous != null && previous !== graph.hiveId) {
      const stale: Array<{ type: 'del', key: string }> = []
      for await (const key of this.db.keys({ gte: entryPrefix(previous), lt: entryPrefix(previous) + '\uffff' })) stale.push({ type: 'del', key })
      if (stale.length > 0) await this.db.batch(stale, { sync: true })
    }
  }

  /** Rebuilds a hive's graph from disk; undefined when its genesis is missing. */
  private async load (hive: string): Promise<MemberGraph | undefined> {
    return loadGraph(this.db, hive, this.log)
  }
}

/** Rebuilds a hive's graph from disk; undefined when its genesis is missing. */
async function loadGraph (db: Pick<MembershipDb, 'get' | 'keys'>, hive: string, log: MembershipLog): Promise<MemberGraph | undefined> {
  const entries: Entry[] = []
  for await (const key of db.keys({ gte: entryPrefix(hive), lt: entryPrefix(hive) + '\uffff' })) {
    const value = await db.get(key)
    if (value == null) continue
    try {
      entries.push(await decodeEntry(value))
    } catch (err) {
      log.warn(`ignoring a damaged stored membership entry ${key}: ${(err as Error).message}`)
    }
  }
  const genesis = entries.find(e => e.body.type === 'found' && hiveIdOf(e) === hive)
  if (genesis == null) {
    log.warn(`stored hive ${hive} has no genesis entry; starting a new hive`)
    return undefined
  }
  const graph = new MemberGraph(genesis)
  // stored entries were checked when they arrived; a failure here means damage on disk
  try {
    graph.merge(entries.filter(e => e !== genesis))
  } catch (err) {
    log.warn(`stored member list of hive ${hive} does not hold together (${(err as Error).message}); keeping what does`)
    let rest = entries.filter(e => e !== genesis && !graph.has(e.id))
    for (let progress = true; progress && rest.length > 0;) {
      progress = false
      for (const entry of rest) {
        try {
          if (graph.merge([entry]).length > 0) progress = true
        } catch { /* depends on something damaged, or not yet merged */ }
      }
      rest = rest.filter(e => !graph.has(e.id))
    }
  }
  return graph
}

/**
 * The hive stored in a membership sublevel, read without changing anything (no hive is founded
 * when none is stored): what a command reads from a stopped node's data directory, such as the
 * device names of the members. Undefined when nothing usable is stored.
 */
export async function readStoredHive (db: Pick<MembershipDb, 'get' | 'keys'>, log: MembershipLog = SILENT_LOG): Promise<HiveView | undefined> {
  const stored = await db.get(KEY_HIVE)
  if (stored == null) return undefined
  return (await loadGraph(db, new TextDecoder().decode(stored), log))?.view()
}

function safeCbor (bytes: Uint8Array): unknown {
  try {
    return cborDecode(bytes)
  } catch {
    return undefined
  }
}

export function createMembership (init: MembershipInit, components: MembershipComponents): Membership {
  return new Membership(init, components)
}
