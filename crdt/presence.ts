// Presence: which node is working in which context, carried by y-protocols awareness.
//
// One Awareness instance per node, on a small document of its own that is never stored or
// replicated (awareness needs a doc only for its client id). The local state is
// `{ node, contexts }`. Remote states arrive through the replication links, are validated,
// applied, and relayed to the other links so a node hears of nodes it has no direct link to.
// When a link closes, the states last heard through it are dropped locally (not relayed: the
// other nodes decide for themselves); a node that is still reachable another way re-announces
// itself within its renewal period.
//
// Renewal grows with the hive. Awareness renews every state each 15 s and drops one silent for
// 30 s; every renewal floods the whole hive, so N nodes cost N² deliveries per 15 s, and at 50
// nodes in one process that was a sixth of the CPU of an idle hive. Here a node renews its state
// 1 s per node it knows, in steps of 15 s from 15 s to 120 s (presenceRenewMs), says so in the
// state (`renew`, in ms), and receivers drop a state silent for twice its author's `renew`.
// The deliveries a node receives per second stay about flat as the hive grows. A state without
// `renew` (an older node) is held as awareness held it: renewed each 15 s, dropped after 30 s.
// An update that brings no newer clock (the same renewal over a second link) is dropped after a
// walk of its clocks, before any state in it is decoded.

import * as awarenessProtocol from 'y-protocols/awareness'
import * as Y from 'yjs'
import { z } from 'zod'
import { MalformedUpdateError } from './errors.ts'
import { isContextId } from './ids.ts'
import { readAwarenessClocks, readAwarenessUpdate } from './validate.ts'
import type { ContextId } from './ids.ts'
import type { AwarenessClock } from './validate.ts'

export interface PresenceEntry {
  node: string
  contexts: ContextId[]
  /** True for this node's own entry. */
  self: boolean
}

export const MAX_AWARENESS_BYTES = 64 * 1024
export const MAX_AWARENESS_ENTRIES = 256
const MAX_WORKING_CONTEXTS = 256

/** A node renews its presence 1 s per node it knows… */
export const PRESENCE_RENEW_PER_NODE_MS = 1_000
/** …rounded up to a step (so the interval, which is re-announced, changes rarely)… */
export const PRESENCE_RENEW_STEP_MS = 15_000
/** …between these bounds; a `renew` outside them is refused from the network. */
export const PRESENCE_RENEW_MIN_MS = 15_000
export const PRESENCE_RENEW_MAX_MS = 120_000
/** A state silent for this many of its author's renew intervals is dropped. */
export const PRESENCE_EXPIRE_FACTOR = 2
/** How often renewals fall due and silent states are looked for (awareness's own cadence). */
export const PRESENCE_CHECK_MS = 3_000

/** How often a node that knows `knownNodes` nodes (itself included) renews its presence. */
export function presenceRenewMs (knownNodes: number): number {
  const wanted = Math.ceil(knownNodes * PRESENCE_RENEW_PER_NODE_MS / PRESENCE_RENEW_STEP_MS) * PRESENCE_RENEW_STEP_MS
  return Math.min(PRESENCE_RENEW_MAX_MS, Math.max(PRESENCE_RENEW_MIN_MS, wanted))
}

const presenceStateSchema = z.union([
  z.null(),
  z.object({
    node: z.string().min(1).max(128),
    contexts: z.array(z.string().refine(isContextId)).max(MAX_WORKING_CONTEXTS),
    renew: z.number().int().min(PRESENCE_RENEW_MIN_MS).max(PRESENCE_RENEW_MAX_MS).optional()
  })
])

/** Why states were removed when a link closed; such removals are not relayed. */
const LINK_CLOSED = Symbol('hive.presence.link-closed')

export interface AwarenessChange {
  /** Encoded y-protocols awareness update to relay. */
  update: Uint8Array
  /** Where it came from: 'local' or the link object that delivered it. */
  origin: unknown
}

export class Presence {
  readonly nodeName: string
  private readonly doc: Y.Doc
  private readonly awareness: awarenessProtocol.Awareness
  private readonly source = new Map<number, unknown>()
  private readonly working = new Set<ContextId>()
  private readonly listeners = new Set<(change: AwarenessChange) => void>()
  /** When each remote state was last renewed here (Date.now()). */
  private readonly heard = new Map<number, number>()
  private readonly checkTimer: NodeJS.Timeout
  /** This node's renew interval now, and when it last published. */
  private renew = PRESENCE_RENEW_MIN_MS
  private publishedAt = 0

  constructor (nodeName: string) {
    this.nodeName = nodeName
    this.doc = new Y.Doc()
    this.awareness = new awarenessProtocol.Awareness(this.doc)
    // awareness's own timer renews each 15 s and drops after 30 s whatever the hive's size
    clearInterval(this.awareness._checkInterval)
    this.checkTimer = setInterval(() => { this.check() }, PRESENCE_CHECK_MS)
    this.checkTimer.unref()
    this.awareness.on('update', this.onUpdate)
    this.publish()
  }

  private readonly onUpdate = ({ added, updated, removed }: { added: number[], updated: number[], removed: number[] }, origin: unknown): void => {
    if (origin === LINK_CLOSED || origin === 'timeout') return
    if (origin !== 'local') {
      const now = Date.now()
      for (const client of [...added, ...updated]) {
        this.source.set(client, origin)
        this.heard.set(client, now)
      }
      for (const client of removed) {
        this.source.delete(client)
        this.heard.delete(client)
      }
    }
    const changed = [...added, ...updated, ...removed]
    const update = awarenessProtocol.encodeAwarenessUpdate(this.awareness, changed)
    for (const fn of this.listeners) fn({ update, origin })
  }

  private publish (): void {
    this.publishedAt = Date.now()
    this.awareness.setLocalState({ node: this.nodeName, contexts: [...this.working].sort(), renew: this.renew })
  }

  /** Renews this node's state when due (or when its interval moved a step), drops silent ones. */
  private check (): void {
    const now = Date.now()
    const renew = presenceRenewMs(this.awareness.getStates().size)
    if (renew !== this.renew || now - this.publishedAt >= this.renew) {
      this.renew = renew
      this.publish()
    }
    const silent: number[] = []
    for (const [client, state] of this.awareness.getStates()) {
      if (client === this.awareness.clientID) continue
      const authorRenew = (state as { renew?: number }).renew ?? PRESENCE_RENEW_MIN_MS
      if (now - (this.heard.get(client) ?? 0) >= PRESENCE_EXPIRE_FACTOR * authorRenew) silent.push(client)
    }
    for (const client of silent) {
      this.source.delete(client)
      this.heard.delete(client)
    }
    if (silent.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, silent, 'timeout')
  }

  /** This node's renew interval now, in ms (what its state carries as `renew`). */
  renewMs (): number {
    return this.renew
  }

  /** Called with every change to relay (local changes and those heard from a link). */
  onChange (fn: (change: AwarenessChange) => void): () => void {
    this.listeners.add(fn)
    return () => { this.listeners.delete(fn) }
  }

  /** Marks this node as working (or no longer working) in a context. */
  setWorking (id: ContextId, working: boolean): void {
    const had = this.working.has(id)
    if (working === had) return
    if (working) this.working.add(id)
    else this.working.delete(id)
    this.publish()
  }

  list (): PresenceEntry[] {
    const out: PresenceEntry[] = []
    for (const [client, state] of this.awareness.getStates()) {
      const parsed = presenceStateSchema.safeParse(state)
      if (!parsed.success || parsed.data == null) continue
      out.push({ node: parsed.data.node, contexts: parsed.data.contexts as ContextId[], self: client === this.awareness.clientID })
    }
    return out.sort((a, b) => Number(b.self) - Number(a.self) || a.node.localeCompare(b.node))
  }

  /** Every state known here, for a link that just opened. */
  fullUpdate (): Uint8Array {
    return awarenessProtocol.encodeAwarenessUpdate(this.awareness, [...this.awareness.getStates().keys()])
  }

  /** Applies an update heard from `link` after checking its size and every state in it. */
  apply (update: Uint8Array, link: unknown): void {
    if (update.byteLength > MAX_AWARENESS_BYTES) {
      throw new MalformedUpdateError(`awareness update of ${update.byteLength} bytes exceeds the limit of ${MAX_AWARENESS_BYTES}`)
    }
    // the same update over another link: nothing in it would be applied, so nothing is decoded
    if (readAwarenessClocks(update, MAX_AWARENESS_ENTRIES).every(c => this.holds(c))) return
    for (const entry of readAwarenessUpdate(update, MAX_AWARENESS_ENTRIES)) {
      if (!presenceStateSchema.safeParse(entry.state).success) {
        throw new MalformedUpdateError('awareness state is not a presence record { node, contexts }')
      }
    }
    awarenessProtocol.applyAwarenessUpdate(this.awareness, update, link)
  }

  /**
   * Whether applying this entry would change nothing: the clock held is newer, or the same and
   * not a removal of a state held (awareness's own rule in applyAwarenessUpdate, negated).
   */
  private holds ({ client, clock, removed }: AwarenessClock): boolean {
    const held = this.awareness.meta.get(client)?.clock
    if (held == null) return false
    return held > clock || (held === clock && !(removed && this.awareness.states.has(client)))
  }

  /** Drops the states last heard through a link that closed. */
  linkClosed (link: unknown): void {
    const gone: number[] = []
    for (const [client, from] of this.source) {
      if (from === link) gone.push(client)
    }
    for (const client of gone) {
      this.source.delete(client)
      this.heard.delete(client)
    }
    if (gone.length > 0) awarenessProtocol.removeAwarenessStates(this.awareness, gone, LINK_CLOSED)
  }

  destroy (): void {
    clearInterval(this.checkTimer)
    this.awareness.off('update', this.onUpdate)
    this.listeners.clear()
    this.awareness.destroy()
    this.doc.destroy()
  }
}
