// A set of signed entries replicated among members: when two members exchange their entries, and
// what becomes of a peer that sends bad ones. The registry's catalog and the controls' entries
// are such sets. Each keeps its own protocol (the messages of one exchange, its two halves) and its
// own merge; this part decides when they run:
//   - with a member when a full connection to it opens (a limited, pairing connection carries
//     pairing only), unless this node has exchanged with it on that connection already;
//   - with every connected member when the member list changes (`resync`);
//   - after a change, with every connected member but the one it came from (`forward`), so a
//     change travels once. A fresh exchange, never one already under way: that one may have sent
//     the set before the change.
// Concurrent asks for an exchange with one peer share it. A half that fails for the peer's fault
// (a bad frame, an entry that does not open) gets the peer reported and hung up on, on either side.
//
// Exchanges ride a connection already open and not limited: this part never dials a device (the
// dialler and pairing do), so a set never opens a connection the gate did not already allow.
// Invariant, kept by each set's merge: persist, then apply, then forward (as crdt/store.ts).

import { peerIdFromString } from '@libp2p/peer-id'
import { isPeerFault } from './errors.ts'
import { SILENT_LOG } from './log.ts'
import { dialFramed, serveProtocol } from './serve.ts'
import type { FramedStream } from './framing.ts'
import type { PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from './serve.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'

/** What replication needs of libp2p beyond a protocol: who is connected, and how. */

/** How long to wait for a peer's entries: a signal, and a time after which the wait ends (its timer set only when there is something to wait for). */
export type SyncedOptions = AbortOptions & { timeoutMs?: number }
export interface ReplicaHost extends ProtocolHost {
  getPeers: () => PeerId[]
  getConnections: (peer?: PeerId) => Array<{ status: string, limits?: unknown }>
  addEventListener: (type: 'connection:open' | 'peer:disconnect', listener: (event: CustomEvent<any>) => void) => void
  removeEventListener: (type: 'connection:open' | 'peer:disconnect', listener: (event: CustomEvent<any>) => void) => void
}

/** One exchange's half: runs on an open stream, resolves to the entries to merge (none to set aside a peer's). */
export type ExchangeHalf<E> = (stream: FramedStream, peer: string, signal: AbortSignal) => Promise<E[]>

export interface ReplicatedEntriesInit<E> {
  /** Names the set in log lines ("registry"). */
  name: string
  protocol: string
  maxMessageBytes: number
  /** Longest one exchange may take, either side. */
  timeoutMs: number
  /** Exchange streams one peer may have open here at once. */
  maxInboundStreams: number
  /** The error an entry that does not open throws: the peer that sent it is at fault. */
  isEntryFault: (err: unknown) => boolean
  /** The dialling side's half. */
  initiate: ExchangeHalf<E>
  /** The answering side's half. */
  respond: ExchangeHalf<E>
  /** Persists and applies what is new in `entries`, and then calls `forward(from)`. */
  merge: (entries: E[], from: string) => Promise<void>
  /** A peer sent something that does not open and was hung up on. */
  onRefused?: (peer: string, error: string) => void
}

export interface ReplicatedEntriesComponents {
  host: ReplicaHost
  isMember: (peer: string) => boolean
  /** Whether a connection to this member is transient (beyond an all-to-all hive, not a neighbour): no exchange when it opens. */
  transient?: (peer: string) => boolean
  gate?: PeerGate
  log?: ProtocolLog
}

export interface ReplicatedEntries {
  /** Serves the protocol and exchanges with every member connected; the set's entries are loaded before. */
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Resolves once this node has exchanged entries with `peer` on its current connection (tries once now if not), or `signal` aborts. */
  synced: (peer: string, options?: AbortOptions) => Promise<void>
  /** Exchanges with every connected member (the member list changed). */
  resync: () => void
  /** The set changed: a fresh exchange with every connected member but `from`. */
  forward: (from?: string) => void
  /** Connected members on an open, unlimited connection: the ones an exchange (or a fetch) can use. */
  members: () => string[]
}

export function createReplicatedEntries<E> (init: ReplicatedEntriesInit<E>, components: ReplicatedEntriesComponents): ReplicatedEntries {
  return new Replica(init, components)
}

class Replica<E> implements ReplicatedEntries {
  private readonly init: ReplicatedEntriesInit<E>
  private readonly components: ReplicatedEntriesComponents
  private readonly log: ProtocolLog
  private readonly syncedPeers = new Set<string>()
  private readonly inFlight = new Map<string, Promise<void>>()
  private served?: ServedProtocol
  private running = false

  constructor (init: ReplicatedEntriesInit<E>, components: ReplicatedEntriesComponents) {
    this.init = init
    this.components = components
    this.log = components.log ?? SILENT_LOG
  }

  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    const { host, gate } = this.components
    const { init } = this
    this.served = await serveProtocol(host, init.protocol, async (stream, { peer, signal }) => {
      const from = peer.toString()
      const entries = await init.respond(stream, from, signal)
      this.syncedPeers.add(from)
      await init.merge(entries, from)
    }, {
      log: this.log,
      ...(gate != null ? { gate } : {}),
      maxMessageBytes: init.maxMessageBytes,
      timeoutMs: init.timeoutMs,
      maxInboundStreams: init.maxInboundStreams,
      isPeerFault: (err) => this.isFault(err),
      onPeerFault: (peer, error) => { init.onRefused?.(peer.toString(), `${error.name}: ${error.message}`) }
    })
    host.addEventListener('connection:open', this.onConnect)
    host.addEventListener('peer:disconnect', this.onDisconnect)
    this.resync()
  }

  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.components.host.removeEventListener('connection:open', this.onConnect)
    this.components.host.removeEventListener('peer:disconnect', this.onDisconnect)
    await this.served?.stop().catch(() => {})
  }

  private isFault (err: unknown): boolean {
    return isPeerFault(err) || this.init.isEntryFault(err)
  }

  private readonly onConnect = (event: CustomEvent<{ remotePeer: PeerId, limits?: unknown }>): void => {
    if (event.detail.limits != null) return
    const peer = event.detail.remotePeer.toString()
    if (this.syncedPeers.has(peer) || !this.components.isMember(peer) || this.components.transient?.(peer) === true) return
    void this.exchange(peer).catch(() => {})
  }

  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.syncedPeers.delete(event.detail.toString())
  }

  resync (): void {
    if (!this.running) return
    for (const peer of this.members()) void this.exchange(peer).catch(() => {})
  }

  forward (from?: string): void {
    if (!this.running) return
    for (const peer of this.members()) {
      if (peer !== from) void this.runExchange(peer).catch(() => {})
    }
  }

  members (): string[] {
    const out: string[] = []
    for (const peer of this.components.host.getPeers()) {
      const id = peer.toString()
      if (this.components.isMember(id) && this.reachable(peer)) out.push(id)
    }
    return out
  }

  private reachable (peer: PeerId): boolean {
    return this.components.host.getConnections(peer).some(c => c.status === 'open' && c.limits == null)
  }

  async synced (peer: string, options: SyncedOptions = {}): Promise<void> {
    if (this.syncedPeers.has(peer) || !this.running) return
    const attempt = this.exchange(peer).catch(() => {})
    const aborted = Promise.withResolvers<void>()
    const onAbort = (): void => { aborted.resolve() }
    options.signal?.addEventListener('abort', onAbort, { once: true })
    if (options.signal?.aborted === true) aborted.resolve()
    // the timer only when there is something to wait for: a synced peer is the common case
    const timer = options.timeoutMs != null ? setTimeout(onAbort, options.timeoutMs) : undefined
    try {
      await Promise.race([attempt, aborted.promise])
    } finally {
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
    }
  }

  /** One exchange with `peer`; concurrent asks share it. */
  private async exchange (peer: string): Promise<void> {
    const running = this.inFlight.get(peer)
    if (running != null) return running
    const attempt = this.runExchange(peer).finally(() => { this.inFlight.delete(peer) })
    this.inFlight.set(peer, attempt)
    return attempt
  }

  private async runExchange (peer: string): Promise<void> {
    const id = peerIdFromString(peer)
    if (!this.reachable(id)) throw new Error(`no open connection to ${peer}`)
    const { init } = this
    const signal = AbortSignal.timeout(init.timeoutMs)
    const stream = await dialFramed(this.components.host, id, init.protocol, { signal, maxMessageBytes: init.maxMessageBytes })
    let entries: E[]
    try {
      entries = await init.initiate(stream, peer, signal)
      await stream.close({ signal }).catch(() => {})
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
      if (this.isFault(err)) {
        const error = `${(err as Error).name}: ${(err as Error).message}`
        this.log.warn(`${init.name}: dropping ${peer}: ${error}`)
        init.onRefused?.(peer, error)
        await this.components.host.hangUp(id).catch(() => {})
      }
      throw err
    }
    this.syncedPeers.add(peer)
    await init.merge(entries, peer)
  }
}
