// The member list as a grow-only set of signed entries, and the rule that turns the set into
// "who is a member". Replicas merge by set union, so any two members holding the same entries
// compute the same list, whatever order the entries arrived in.
//
// Each entry names the entries its signer held when signing (`deps`), so the set is a graph
// and "happened before" is ancestry. The rule, for a set S:
//
//   auth(E)      E is the genesis, or E's signer was a member in E's own past. Intrinsic to E;
//                an entry that fails it is refused on receipt and never stored.
//   effective(A) for a grant A (genesis or add): A is the genesis; or no removal of A's signer
//                in S is concurrent with A (a removal neither before nor after it), and A's
//                signer held in A's past a grant that is itself effective and that post-dates
//                every removal of the signer in A's past. This is the chain of adds back to the
//                founder, checked against what S knows now.
//   member(P)    some effective grant of P post-dates (has as ancestors) every removal of P in S.
//
// Consequences: remove wins over a concurrent add; a removed device is back only through a
// new add made by a member who already holds the removal (pairing again), never through its
// old entry; adds a removed device signed concurrently with (or backdated before) its removal
// are void, and so is everything that depended on them; removals stand once authorised.

import { HiveMismatchError, InvalidEntryError, TooManyEntriesError, UnauthorizedEntryError } from './errors.ts'
import { hiveIdOf } from './entries.ts'
import type { Entry, EntryId, HiveId } from './entries.ts'

/** A hive of home devices stays far below this; the bound keeps a hostile list from growing without end. */
export const MAX_ENTRIES = 1024

export interface Member {
  peerId: string
  name?: string
  /** Who signed the grant that makes this device a member (itself for the founder). */
  addedBy: string
  /** When that grant was signed (the signer's clock, informational). */
  addedAt: number
  /** Id of that grant. */
  grant: EntryId
  founder: boolean
  /** Addresses recorded when the device was paired. */
  addrs: string[]
}

export interface Removal {
  peerId: string
  removedBy: string
  removedAt: number
  entry: EntryId
}

/** One link of the chain from the founder to a member. */
export interface ChainLink {
  peerId: string
  addedBy: string
  addedAt: number
  entry: EntryId
}

export interface HiveView {
  hiveId: HiveId
  founder: string
  members: Map<string, Member>
  /** Devices removed and not added back since. */
  removed: Map<string, Removal>
}

export class MemberGraph {
  readonly hiveId: HiveId
  readonly genesis: Entry
  private readonly entries = new Map<EntryId, Entry>()
  private readonly pasts = new Map<EntryId, Set<EntryId>>()
  private readonly auths = new Map<EntryId, boolean>()
  private readonly referenced = new Set<EntryId>()
  private cachedView?: HiveView

  constructor (genesis: Entry) {
    if (genesis.body.type !== 'found') throw new InvalidEntryError('a hive starts from a genesis entry')
    this.genesis = genesis
    this.hiveId = hiveIdOf(genesis)
    this.entries.set(genesis.id, genesis)
    this.pasts.set(genesis.id, new Set())
    this.auths.set(genesis.id, true)
  }

  get size (): number {
    return this.entries.size
  }

  has (id: string): boolean {
    return this.entries.has(id as EntryId)
  }

  get (id: string): Entry | undefined {
    return this.entries.get(id as EntryId)
  }

  ids (): EntryId[] {
    return [...this.entries.keys()]
  }

  /** Every entry, each after the entries it builds on (ties broken by id). */
  all (): Entry[] {
    return topoSort([...this.entries.values()])
  }

  /** Entries nothing else builds on yet: what a new entry names as its deps. */
  heads (): EntryId[] {
    return [...this.entries.keys()].filter(id => !this.referenced.has(id)).sort()
  }

  /**
   * Checks a batch against this graph and adds what is new, all or nothing. Throws
   * InvalidEntryError (wrong hive, missing or circular deps, a second genesis),
   * UnauthorizedEntryError (signer not a member in the entry's past) or TooManyEntriesError.
   * Returns the entries that were new, in order.
   */
  merge (batch: Entry[]): Entry[] {
    const fresh = new Map<EntryId, Entry>()
    for (const entry of batch) {
      if (this.entries.has(entry.id) || fresh.has(entry.id)) continue
      if (entry.body.type === 'found') {
        throw new HiveMismatchError(`entry ${short(entry.id)} founds another hive (${hiveIdOf(entry)}), not ${this.hiveId}`)
      }
      if (entry.body.hive !== this.hiveId) {
        throw new HiveMismatchError(`entry ${short(entry.id)} belongs to hive ${entry.body.hive ?? '?'}, not ${this.hiveId}`)
      }
      fresh.set(entry.id, entry)
    }
    if (fresh.size === 0) return []
    if (this.entries.size + fresh.size > MAX_ENTRIES) {
      throw new TooManyEntriesError(`the member list would hold ${this.entries.size + fresh.size} entries, more than ${MAX_ENTRIES}`)
    }
    for (const entry of fresh.values()) {
      for (const dep of entry.body.deps) {
        if (!this.entries.has(dep as EntryId) && !fresh.has(dep as EntryId)) {
          throw new InvalidEntryError(`entry ${short(entry.id)} builds on ${short(dep)}, which was not sent`)
        }
      }
    }
    const ordered = topoSort([...fresh.values()], id => fresh.has(id))
    if (ordered.length !== fresh.size) throw new InvalidEntryError('entries build on each other in a circle')

    const added: Entry[] = []
    try {
      for (const entry of ordered) {
        this.insert(entry)
        added.push(entry)
        if (!this.auth(entry)) {
          throw new UnauthorizedEntryError(`entry ${short(entry.id)} (${entry.body.type} ${entry.body.peer}) is signed by ${entry.body.by}, who was not a member when signing it`)
        }
      }
    } catch (err) {
      for (const entry of added) this.uninsert(entry)
      throw err
    }
    this.cachedView = undefined
    return added
  }

  /** The member list as the rule above computes it from every entry held. */
  view (): HiveView {
    if (this.cachedView != null) return this.cachedView
    const scope = new Set(this.entries.keys())
    const rule = new Scope(this, scope)
    const members = new Map<string, Member>()
    const removed = new Map<string, Removal>()
    const subjects = new Set([...this.entries.values()].map(e => e.body.peer))
    for (const peer of subjects) {
      const grant = rule.standingGrant(peer)
      if (grant != null) {
        const entry = this.entries.get(grant) as Entry
        members.set(peer, {
          peerId: peer,
          name: entry.body.name,
          addedBy: entry.body.by,
          addedAt: entry.body.at,
          grant,
          founder: entry.body.type === 'found',
          addrs: entry.body.addrs ?? []
        })
        continue
      }
      const removals = rule.removalsOf(peer)
      const last = removals.map(id => this.entries.get(id) as Entry).sort((a, b) => b.body.at - a.body.at)[0]
      if (last != null) removed.set(peer, { peerId: peer, removedBy: last.body.by, removedAt: last.body.at, entry: last.id })
    }
    this.cachedView = { hiveId: this.hiveId, founder: this.genesis.body.peer, members, removed }
    return this.cachedView
  }

  isMember (peerId: string): boolean {
    return this.view().members.has(peerId)
  }

  /** The grants from the founder down to a member: who added whom. Empty for a non-member. */
  chain (peerId: string): ChainLink[] {
    const scope = new Set(this.entries.keys())
    const rule = new Scope(this, scope)
    const links: ChainLink[] = []
    let grant = rule.standingGrant(peerId)
    const seen = new Set<EntryId>()
    while (grant != null && !seen.has(grant)) {
      seen.add(grant)
      const entry = this.entries.get(grant) as Entry
      links.unshift({ peerId: entry.body.peer, addedBy: entry.body.by, addedAt: entry.body.at, entry: grant })
      if (entry.body.type === 'found') break
      grant = rule.supportingGrant(entry)
    }
    return links
  }

  /** Ids of the ancestors of an entry (everything it builds on, directly or not). */
  past (id: EntryId): Set<EntryId> {
    const known = this.pasts.get(id)
    if (known != null) return known
    const entry = this.entries.get(id)
    if (entry == null) throw new InvalidEntryError(`unknown entry ${short(id)}`)
    const past = new Set<EntryId>()
    for (const dep of entry.body.deps as EntryId[]) {
      past.add(dep)
      for (const a of this.past(dep)) past.add(a)
    }
    this.pasts.set(id, past)
    return past
  }

  private auth (entry: Entry): boolean {
    const known = this.auths.get(entry.id)
    if (known != null) return known
    const result = new Scope(this, this.past(entry.id)).standingGrant(entry.body.by) != null
    this.auths.set(entry.id, result)
    return result
  }

  private insert (entry: Entry): void {
    this.entries.set(entry.id, entry)
    for (const dep of entry.body.deps) this.referenced.add(dep as EntryId)
  }

  private uninsert (entry: Entry): void {
    this.entries.delete(entry.id)
    this.pasts.delete(entry.id)
    this.auths.delete(entry.id)
    this.referenced.clear()
    for (const e of this.entries.values()) for (const dep of e.body.deps) this.referenced.add(dep as EntryId)
  }
}

/** The rule evaluated over one downward-closed set of entries. */
class Scope {
  private readonly graph: MemberGraph
  private readonly scope: Set<EntryId>
  private readonly grants = new Map<string, EntryId[]>()
  private readonly removals = new Map<string, EntryId[]>()
  private readonly effective = new Map<EntryId, boolean>()

  constructor (graph: MemberGraph, scope: Set<EntryId>) {
    this.graph = graph
    this.scope = scope
    for (const id of scope) {
      const entry = graph.get(id) as Entry
      const map = entry.body.type === 'remove' ? this.removals : this.grants
      const list = map.get(entry.body.peer) ?? []
      list.push(id)
      map.set(entry.body.peer, list)
    }
  }

  removalsOf (peer: string): EntryId[] {
    return this.removals.get(peer) ?? []
  }

  /** The latest effective grant of `peer` that post-dates every removal of it, if any. */
  standingGrant (peer: string): EntryId | undefined {
    const removals = this.removalsOf(peer)
    let best: Entry | undefined
    for (const id of this.grants.get(peer) ?? []) {
      if (!this.isEffective(id)) continue
      const past = this.graph.past(id)
      if (!removals.every(r => past.has(r))) continue
      const entry = this.graph.get(id) as Entry
      if (best == null || laterThan(entry, best)) best = entry
    }
    return best?.id
  }

  /** The grant that made an entry's signer a member when it signed, if it still stands. */
  supportingGrant (entry: Entry): EntryId | undefined {
    const signer = entry.body.by
    const past = this.graph.past(entry.id)
    const removalsBefore = this.removalsOf(signer).filter(r => past.has(r))
    let best: Entry | undefined
    for (const id of this.grants.get(signer) ?? []) {
      if (!past.has(id) || !this.isEffective(id)) continue
      const grantPast = this.graph.past(id)
      if (!removalsBefore.every(r => grantPast.has(r))) continue
      const grant = this.graph.get(id) as Entry
      if (best == null || laterThan(grant, best)) best = grant
    }
    return best?.id
  }

  private isEffective (id: EntryId): boolean {
    const known = this.effective.get(id)
    if (known != null) return known
    // provisional answer guards against any cycle; the graph is acyclic so it is never read
    this.effective.set(id, false)
    const entry = this.graph.get(id) as Entry
    let result: boolean
    if (entry.body.type === 'found') {
      result = entry.id === this.graph.genesis.id
    } else {
      const past = this.graph.past(id)
      const concurrentRemoval = this.removalsOf(entry.body.by).some(r => !past.has(r) && !this.graph.past(r).has(id))
      result = !concurrentRemoval && this.supportingGrant(entry) != null
    }
    this.effective.set(id, result)
    return result
  }
}

function laterThan (a: Entry, b: Entry): boolean {
  return a.body.at !== b.body.at ? a.body.at > b.body.at : a.id > b.id
}

/**
 * Orders entries so each comes after its deps among them; ties by id so every replica lists
 * the same order. Entries in a cycle are left out (the caller detects that by the count).
 */
function topoSort (entries: Entry[], inBatch: (id: EntryId) => boolean = () => true): Entry[] {
  const byId = new Map(entries.map(e => [e.id, e]))
  const waiting = new Map<EntryId, number>()
  const children = new Map<EntryId, EntryId[]>()
  for (const entry of entries) {
    const deps = (entry.body.deps as EntryId[]).filter(d => byId.has(d) && inBatch(d))
    waiting.set(entry.id, deps.length)
    for (const dep of deps) {
      const list = children.get(dep) ?? []
      list.push(entry.id)
      children.set(dep, list)
    }
  }
  const ready = [...waiting.entries()].filter(([, n]) => n === 0).map(([id]) => id).sort()
  const out: Entry[] = []
  while (ready.length > 0) {
    const id = ready.shift() as EntryId
    out.push(byId.get(id) as Entry)
    for (const child of children.get(id) ?? []) {
      const left = (waiting.get(child) ?? 0) - 1
      waiting.set(child, left)
      if (left === 0) {
        ready.push(child)
        ready.sort()
      }
    }
  }
  return out
}

function short (id: string): string {
  return id.slice(0, 12)
}
