// Direct links: the messages of a hive topic's direct twin (direct-topic.ts) carried on one
// long-lived stream from each member to each other member, `/hive/direct-gossip/1.0.0`, instead
// of by gossipsub. On the twin, gossipsub already hands a message from its author to every
// member and nobody forwards it; what is left of gossip there is per message: the author signs
// it, every receiver checks that signature, and both ends encode and decode gossipsub's RPC,
// compute its message id and keep it in the seen cache. On a stream the connection itself
// (noise) says who the author is, so a message is one frame and nothing is signed or checked
// twice. Measured on bursts of tasks placed across five devices, gossipsub's work on the twins
// was about 15 % of the devices' CPU, its signature checks alone about 6 %.
//
// One frame per message, `{ topic, data }` (the same varint-length CBOR frames as every hive
// protocol, at most DIRECT_MESSAGE_BYTES of data). The receiver reads one frame at a time and
// hands it to the topic's own validators, as a message on the twin is, before its listeners see
// it: the author is the stream's remote peer. Meanwhile what the peer sends waits in the
// stream's bounded read buffer. A frame that does not decode hangs up on its sender, as on every
// protocol; a message the validators refuse is dropped, as gossip drops it, and a link that
// brought MAX_REFUSED_PER_LINK of them is closed: its sender goes back to gossip, where gossipsub
// scores it. Only the sender writes on its stream.
//
// A link is opened in the background when a message goes on the twin (every member connected and
// taking twins) and is used from a later message on, once every other member has one. Until
// then the twin's messages go on gossip; the first on a link may reach a member before the last
// on gossip did. An older release that does not serve the protocol is asked again a minute later,
// a peer that ended its link 5 s later. A link nothing was sent on for `idleMs` is closed, as a
// placement session is. A message goes on links only when every link can take it: one whose
// peer reads too slowly to keep its unsent bytes under MAX_UNSENT_BYTES is closed (what it holds
// is still handed over), and that message, and those after it until the link is open again, go
// on gossip.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { Bytes } from './codec.ts'
import { DEFAULT_MAX_MESSAGE_BYTES, encodeFrame } from './framing.ts'
import { DIRECT_GOSSIP_PROTOCOL } from './ids.ts'
import { dialFramed, serveProtocol } from './serve.ts'
import type { FramedStream } from './framing.ts'
import type { PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from './serve.ts'
import type { PeerId } from '@libp2p/interface'

/** The most data one message carries (gossipsub's own default bound). */
export const DIRECT_MESSAGE_BYTES = DEFAULT_MAX_MESSAGE_BYTES
/** Topic names on a link: a hive topic, `hive/<hive id>/<name>`, is far shorter. */
const MAX_TOPIC_CHARS = 256
/** A frame's bound: the data, its topic and the CBOR around them. */
const MAX_FRAME_BYTES = DIRECT_MESSAGE_BYTES + 1024
/** Bytes a link may hold unsent (its peer reads too slowly) before it is dropped. */
export const MAX_UNSENT_BYTES = 4 * 1024 * 1024
/** A link nothing was sent on for this long is closed. */
export const DIRECT_LINK_IDLE_MS = 30_000
/** How long a peer that does not serve direct links (an older release) is not asked again. */
const NO_LINK_MS = 60_000
/** Links one peer may hold open to this node at once (one is the rule; a reconnect may overlap). */
const MAX_LINKS_PER_PEER = 2
/** Refused messages after which a link is closed (its peer then goes on gossip, where it is scored). */
export const MAX_REFUSED_PER_LINK = 16
/** A link its peer ended, or one dropped for a peer reading too slowly, is not opened again for this long. */
const LOST_LINK_MS = 5_000
/** How long a link closed by this end may take to hand over what it holds. */
const CLOSE_MS = 5_000

function pauseQuietly (stream: { pause: () => void }): void {
  try {
    stream.pause()
  } catch { /* a stream closing: nothing more comes */ }
}

function resumeQuietly (stream: { resume: () => void }): void {
  try {
    stream.resume()
  } catch { /* a stream closing: nothing more comes */ }
}

export const DirectFrame = z.object({
  topic: z.string().min(1).max(MAX_TOPIC_CHARS),
  data: Bytes.refine(d => d.byteLength <= DIRECT_MESSAGE_BYTES, `at most ${DIRECT_MESSAGE_BYTES} bytes`)
})
export type DirectFrame = z.infer<typeof DirectFrame>

/** What became of a message read on a link: `reject` ends the link. */
export type DirectVerdict = 'accept' | 'ignore' | 'reject'
export type DirectDelivery = (from: PeerId, topic: string, data: Uint8Array) => Promise<DirectVerdict>

export interface DirectLinksComponents {
  host: ProtocolHost
  /** Who may open a link to this node (members); open when omitted. */
  gate?: PeerGate
  log: ProtocolLog
}

export interface DirectLinksOptions {
  protocol?: string
  idleMs?: number
  /** How long a peer that serves no links is not asked again. Default a minute. */
  noLinkMs?: number
}

interface Link {
  stream: FramedStream
  usedAt: number
}

export class DirectLinks {
  private readonly components: DirectLinksComponents
  private readonly protocol: string
  private readonly idleMs: number
  private readonly noLinkMs: number
  private readonly links = new Map<string, Link>()
  private readonly opening = new Set<string>()
  private readonly noLink = new Map<string, number>()
  private delivery: DirectDelivery = async () => 'ignore'
  private served?: ServedProtocol
  private idleTimer?: NodeJS.Timeout
  private running = false

  constructor (components: DirectLinksComponents, options: DirectLinksOptions = {}) {
    this.components = components
    this.protocol = options.protocol ?? DIRECT_GOSSIP_PROTOCOL
    this.idleMs = options.idleMs ?? DIRECT_LINK_IDLE_MS
    this.noLinkMs = options.noLinkMs ?? NO_LINK_MS
  }

  /** Where messages read on links go (the twins' `withDirectTwins` sets it); ignored until then. */
  deliverTo (delivery: DirectDelivery): void {
    this.delivery = delivery
  }

  /** Serves links: every message read is handed to the delivery, one at a time per link. */
  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    const { gate, log } = this.components
    this.served = await serveProtocol(this.components.host, this.protocol, async (stream, { peer, signal }) => {
      let refused = 0
      for await (const { topic, data } of stream.messages(DirectFrame, { signal })) {
        // a peer removed from the hive is not heard on a link it opened before
        if (gate != null && !gate.allows(peer, this.protocol)) break
        // while a message is handed over, what the peer sends waits in the stream's own read
        // buffer, which is bounded (past it the stream is aborted), not in memory without bound
        pauseQuietly(stream.stream)
        let verdict: DirectVerdict
        try {
          verdict = await this.delivery(peer, topic, data)
        } finally {
          resumeQuietly(stream.stream)
        }
        // a refused message is dropped, as gossip drops it; a peer that keeps sending them loses its link
        if (verdict === 'reject' && ++refused >= MAX_REFUSED_PER_LINK) {
          log.debug(`direct link from ${peer.toString()} closed: ${refused} of its messages were refused, the last on ${topic}`)
          break
        }
      }
    }, { log, longLived: true, maxMessageBytes: MAX_FRAME_BYTES, maxInboundStreams: MAX_LINKS_PER_PEER * 8, maxInboundStreamsPerPeer: MAX_LINKS_PER_PEER, ...(gate != null ? { gate } : {}) })
    this.idleTimer = setInterval(() => { this.closeIdle() }, Math.max(1, Math.floor(this.idleMs / 2)))
    this.idleTimer.unref()
  }

  async stop (): Promise<void> {
    this.running = false
    clearInterval(this.idleTimer)
    for (const peer of [...this.links.keys()]) this.drop(peer, new Error('direct links stopped'))
    this.noLink.clear()
    await this.served?.stop()
    this.served = undefined
  }

  /** True when every one of `peers` has an open link, as `send` needs (tests, status). */
  ready (peers: string[]): boolean {
    if (!this.running || peers.length === 0) return false
    for (const peer of peers) {
      const link = this.links.get(peer)
      if (link == null || link.stream.stream.status !== 'open') return false
    }
    return true
  }

  /**
   * Opens a link, in the background, to each of `peers` that has none; to none of them while one
   * of them is not to be asked yet (links are used only once every peer has one).
   */
  prepare (peers: string[]): void {
    if (!this.running) return
    const now = Date.now()
    for (const peer of peers) {
      const until = this.noLink.get(peer)
      if (until == null) continue
      if (now < until) return
      this.noLink.delete(peer)
    }
    for (const peer of peers) {
      if (this.links.has(peer) || this.opening.has(peer)) continue
      this.opening.add(peer)
      void this.open(peer).finally(() => { this.opening.delete(peer) })
    }
  }

  /**
   * Sends one message to each of `peers` on its link, or to none: false when some peer has no
   * link (it opens in the background once `prepare` is asked), when some link is gone or
   * its peer is too far behind to take it (that link is closed, what it holds still handed over),
   * and the caller sends the message another way.
   */
  send (peers: string[], topic: string, data: Uint8Array): boolean {
    if (!this.running || peers.length === 0) return false
    const taking: Link[] = []
    for (const peer of peers) {
      const link = this.links.get(peer)
      const raw = link?.stream.stream
      if (link == null || raw == null || raw.status !== 'open') {
        if (link != null) this.drop(peer, new Error('the link closed'))
        return false
      }
      if (raw.writeBufferLength + data.byteLength > MAX_UNSENT_BYTES) {
        this.release(peer, link, `the peer has ${raw.writeBufferLength} bytes unread`)
        return false
      }
      taking.push(link)
    }
    const frame = encodeFrame({ topic, data }, MAX_FRAME_BYTES)
    const now = Date.now()
    for (const [i, link] of taking.entries()) {
      link.usedAt = now
      try {
        // what send leaves unsent is bounded above; a message is never waited on
        link.stream.stream.send(frame)
      } catch (err) {
        // the link broke as it was written: this message misses that peer, as gossip to a peer that just left does
        this.drop(peers[i]!, err instanceof Error ? err : new Error(String(err)))
      }
    }
    return true
  }

  /** Peers with an open link (tests, status). */
  linked (): string[] {
    return [...this.links.keys()]
  }

  private async open (peer: string): Promise<void> {
    let stream: FramedStream
    try {
      stream = await dialFramed(this.components.host, peerIdFromString(peer), this.protocol, { maxMessageBytes: MAX_FRAME_BYTES, signal: AbortSignal.timeout(10_000) })
    } catch (err) {
      // an older release, or no connection now: gossip carries the messages meanwhile
      this.noLink.set(peer, Date.now() + ((err as Error).name === 'UnsupportedProtocolError' ? this.noLinkMs : 1_000))
      this.components.log.debug(`no direct link to ${peer}: ${(err as Error).name}: ${(err as Error).message}`)
      return
    }
    if (!this.running) {
      stream.abort(new Error('direct links stopped'))
      return
    }
    const link: Link = { stream, usedAt: Date.now() }
    this.links.set(peer, link)
    // the peer writes nothing: its end of the stream, or anything it sends, ends the link, and
    // it is not asked again for a while (it may be refusing what this device sends)
    const lost = (reason: Error): void => {
      if (this.links.get(peer) !== link) return
      this.noLink.set(peer, Date.now() + LOST_LINK_MS)
      this.drop(peer, reason)
    }
    void stream.readFrame().then((frame) => {
      lost(new Error(frame == null ? 'the peer closed the link' : 'the peer wrote on the link'))
    }, (err: unknown) => {
      lost(err instanceof Error ? err : new Error(String(err)))
    })
  }

  private drop (peer: string, reason: Error): void {
    const link = this.links.get(peer)
    if (link == null) return
    this.links.delete(peer)
    this.components.log.debug(`direct link to ${peer} closed: ${reason.message}`)
    link.stream.abort(reason)
  }

  /** Leaves a link out from now on and closes it once what it holds is handed over (at most CLOSE_MS). */
  private release (peer: string, link: Link, reason: string): void {
    if (this.links.get(peer) === link) this.links.delete(peer)
    this.noLink.set(peer, Date.now() + LOST_LINK_MS)
    this.components.log.debug(`direct link to ${peer} closed: ${reason}`)
    link.stream.close({ signal: AbortSignal.timeout(CLOSE_MS) }).catch((err: Error) => { link.stream.abort(err) })
  }

  private closeIdle (): void {
    const now = Date.now()
    for (const [peer, link] of [...this.links]) {
      if (now - link.usedAt < this.idleMs) continue
      this.links.delete(peer)
      link.stream.close({ signal: AbortSignal.timeout(CLOSE_MS) }).catch((err: Error) => { link.stream.abort(err) })
    }
  }
}
