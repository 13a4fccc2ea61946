// DhtBoard: where placement publishes in the DHT and looks records up. A put is a whole
// Kademlia query plus a store on each closest peer, and nobody waits for one on a task's way to
// its result, so puts are deferred: one at a time, each once its task is decided and this device
// has been between tasks for a while (QUIET_MS), or at its due time at the latest, so a burst of
// tasks is not slowed by publishing the ones before it, and its records go together after it.
// An `urgent` put (a bid its submitter did not receive directly, which it looks for at its
// deadline) starts at once. When the DHT can put several records at once (`putMany`), every
// record that may go goes in one batch: a burst's awards then cost each peer one stream.
// `settled()` resolves on the board's own events, when the queue runs empty.

import { errorText } from './components.ts'
import { awardFromRecord, awardKey, bidFromRecord, bidKey } from './records.ts'
import { sha256Hex } from './ids.ts'
import type { PlacementDht, PlacementRecords } from './components.ts'
import type { ProtocolLog } from '../wire/serve.ts'
import type { TaskId } from './ids.ts'
import type { AwardPayload } from './messages.ts'
import type { HeldBid } from './records.ts'
import type { AbortOptions } from '@libp2p/interface'

export interface DhtBoardComponents {
  dht: PlacementDht
  records: PlacementRecords
  /** Whether this device is between tasks, so deferred puts may go now. */
  isQuiet: () => boolean
  /** Whether a task has its outcome, so its records are final. */
  isDecided: (task: TaskId) => boolean
  log: ProtocolLog
}

interface Pending {
  key: Uint8Array
  keyText: string
  value: Uint8Array
  task: TaskId
  due: number
}

/** Puts waiting beyond this many are dropped, oldest first. */
const MAX_PENDING = 10_000
/** Records put together, at most (each peer takes them on one stream). */
const MAX_BATCH = 32
/** How long one put (or one batch) may take. */
const PUT_TIMEOUT_MS = 30_000
/**
 * How long this device is between tasks before deferred records go. A device taking part in a
 * burst is between tasks for a few milliseconds at a time; putting then sent a task's record or
 * two per batch, a stream to every member each, in the middle of the burst. The puts cost about
 * a third of a placed task's CPU (npm run bench -- placement-devices, summed over the devices).
 */
export const QUIET_MS = 1_000

export class DhtBoard {
  private readonly components: DhtBoardComponents
  private readonly pending: Pending[] = []
  private putting = false
  private timer?: NodeJS.Timeout
  private waiters: Array<() => void> = []
  private stopping = new AbortController()
  private running = false
  /** Since when this device has been between tasks, as last seen. */
  private quietSince?: number

  constructor (components: DhtBoardComponents) {
    this.components = components
  }

  start (): void {
    this.running = true
    this.stopping = new AbortController()
  }

  stop (): void {
    this.running = false
    this.stopping.abort()
    clearTimeout(this.timer)
    this.wake()
  }

  /** Records waiting to be put (and one being put). */
  get queued (): number {
    return this.pending.length + (this.putting ? 1 : 0)
  }

  /**
   * Publishes a record. A deferred record replaces one still waiting under the same key (a newer
   * round of an award supersedes the older one).
   */
  publish (key: Uint8Array, value: Uint8Array, options: { task: TaskId, urgent?: boolean, deferMs?: number }): void {
    if (!this.running) return
    if (options.urgent === true) {
      void this.put(key, value)
      return
    }
    const keyText = new TextDecoder().decode(key)
    const at = this.pending.findIndex(p => p.keyText === keyText)
    if (at >= 0) this.pending.splice(at, 1)
    this.pending.push({ key, keyText, value, task: options.task, due: Date.now() + (options.deferMs ?? 10_000) })
    if (this.pending.length > MAX_PENDING) this.pending.shift()
    this.poke()
  }

  /** Looks for a put that may go now: called when a task is decided or this device goes quiet. */
  poke (): void {
    if (this.putting || !this.running) {
      this.wake()
      return
    }
    const now = Date.now()
    if (this.pending.length === 0 || !this.components.isQuiet()) this.quietSince = undefined
    else this.quietSince ??= now
    const quietAt = this.quietSince != null ? this.quietSince + QUIET_MS : Infinity
    const quiet = quietAt <= now
    const index = this.pending.findIndex(e => e.due <= now || (quiet && this.components.isDecided(e.task)))
    clearTimeout(this.timer)
    if (index < 0) {
      // the next due time, or the end of the quiet wait when something decided waits for it
      const next = Math.min(...this.pending.map(e => this.components.isDecided(e.task) ? Math.min(e.due, quietAt) : e.due))
      if (Number.isFinite(next)) {
        this.timer = setTimeout(() => { this.poke() }, Math.max(10, next - now))
        this.timer.unref()
      }
      this.wake()
      return
    }
    // every record that may go now goes together, when the DHT can put several at once
    const batch = this.components.dht.putMany == null
      ? this.pending.splice(index, 1)
      : this.take(e => e.due <= now || (quiet && this.components.isDecided(e.task)), MAX_BATCH)
    this.putting = true
    void this.putAll(batch).finally(() => {
      this.putting = false
      this.poke()
    })
  }

  /** Removes and returns up to `max` pending entries that `may` go, oldest first. */
  private take (may: (entry: Pending) => boolean, max: number): Pending[] {
    const out: Pending[] = []
    for (let i = 0; i < this.pending.length && out.length < max;) {
      if (may(this.pending[i]!)) out.push(...this.pending.splice(i, 1))
      else i++
    }
    return out
  }

  /** Resolves once every record queued for the DHT is put (or the board stops). */
  async settled (options: AbortOptions = {}): Promise<void> {
    options.signal?.throwIfAborted()
    if (!this.running || this.queued === 0) return
    const done = Promise.withResolvers<void>()
    const onAbort = (): void => { done.reject(options.signal?.reason) }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    this.waiters.push(done.resolve)
    // what is decided goes now, quiet or not: the caller is waiting for it
    for (const p of this.pending) if (this.components.isDecided(p.task)) p.due = Math.min(p.due, Date.now())
    this.poke()
    try {
      await done.promise
    } finally {
      options.signal?.removeEventListener('abort', onAbort)
    }
  }

  private wake (): void {
    if (this.running && this.queued > 0) return
    for (const resolve of this.waiters.splice(0)) resolve()
  }

  private async put (key: Uint8Array, value: Uint8Array): Promise<void> {
    await this.putAll([{ key, value }])
  }

  private async putAll (records: Array<{ key: Uint8Array, value: Uint8Array }>): Promise<void> {
    const signal = AbortSignal.any([this.stopping.signal, AbortSignal.timeout(PUT_TIMEOUT_MS)])
    const { dht } = this.components
    try {
      if (dht.putMany != null) {
        await dht.putMany(records, { signal })
      } else {
        for (const { key, value } of records) {
          for await (const _ of dht.put(key, value, { signal })) { /* drain */ }
        }
      }
    } catch (err) {
      if (this.running) this.components.log.debug(`DHT put of ${records.map(r => new TextDecoder().decode(r.key)).join(', ')} failed: ${errorText(err)}`)
    }
  }

  /** The newest valid bid under a bidder's key. */
  async lookupBid (task: TaskId, bidder: string, options: AbortOptions): Promise<Omit<HeldBid, 'via'> | undefined> {
    const key = bidKey(task, bidder)
    let best: Omit<HeldBid, 'via'> | undefined
    let bestTime = -1
    for await (const event of this.components.dht.get(key, options)) {
      if (event.name !== 'VALUE' || !('value' in event) || !(event.value instanceof Uint8Array)) continue
      const value = event.value
      try {
        const record = await this.components.records.open(key, value)
        const payload = bidFromRecord(record)
        if (record.time > bestTime) {
          best = { bidder, payload, record: value, hash: sha256Hex(value) }
          bestTime = record.time
        }
      } catch (err) {
        this.components.log.debug(`ignored a bid for ${task} under ${bidder}'s key: ${errorText(err)}`)
      }
    }
    return best
  }

  /** The newest round of a task's award. */
  async lookupAward (task: TaskId, submitter: string, options: AbortOptions): Promise<{ award: AwardPayload, record: Uint8Array } | undefined> {
    const key = awardKey(task, submitter)
    let best: { award: AwardPayload, record: Uint8Array } | undefined
    for await (const event of this.components.dht.get(key, options)) {
      if (event.name !== 'VALUE' || !('value' in event) || !(event.value instanceof Uint8Array)) continue
      const value = event.value
      try {
        const award = awardFromRecord(await this.components.records.open(key, value))
        if (best == null || award.round > best.award.round) best = { award, record: value }
      } catch {}
    }
    return best
  }
}
