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
// it: the author is the stream's remote peer. A frame that does not decode hangs up on its
// sender, as on every protocol; a message the validators reject ends the stream, and the sender
// goes back to gossip, where gossipsub scores it. Only the sender writes on its stream.
//
// A link is opened in the background when a message goes on the twin (every member connected and
// taking twins) and is used from the next message on, once every other member has one; an older
// release that does not serve the protocol is asked again a minute later. A link nothing was sent
// on for `idleMs` is closed, as a placement session is; one whose peer reads too slowly to keep
// its unsent bytes under MAX_UNSENT_BYTES is dropped, and messages go on gossip until it is
// opened again.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
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

const Bytes = z.custom<Uint8Array>(v => v instanceof Uint8Array, 'bytes')
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
      for await (const { topic, data } of stream.messages(DirectFrame, { signal })) {
        // a peer removed from the hive is not heard on a link it opened before
        if (gate != null && !gate.allows(peer, this.protocol)) break
        if (await this.delivery(peer, topic, data) === 'reject') {
          log.debug(`direct link from ${peer.toString()} closed: a message on ${topic} was refused`)
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

  /** True when every one of `peers` has an open link: a message then goes to each on its link. */
  ready (peers: string[]): boolean {
    if (!this.running || peers.length === 0) return false
    for (const peer of peers) {
      const link = this.links.get(peer)
      if (link == null || link.stream.stream.status !== 'open') return false
    }
    return true
  }

  /** Opens a link, in the background, to each of `peers` that has none. */
  prepare (peers: string[]): void {
    if (!this.running) return
    const now = Date.now()
    for (const peer of peers) {
      if (this.links.has(peer) || this.opening.has(peer)) continue
      const until = this.noLink.get(peer)
      if (until != null) {
        if (now < until) continue
        this.noLink.delete(peer)
      }
      this.opening.add(peer)
      void this.open(peer).finally(() => { this.opening.delete(peer) })
    }
  }

  /**
   * Sends one message to each of `peers` on its link (call `ready` first). A peer whose link is
   * gone or too far behind misses it, as a disconnected peer misses gossip; the link is dropped.
   */
  send (peers: string[], topic: string, data: Uint8Array): void {
    const frame = encodeFrame({ topic, data }, MAX_FRAME_BYTES)
    const now = Date.now()
    for (const peer of peers) {
      const link = this.links.get(peer)
      if (link == null) continue
      const raw = link.stream.stream
      if (raw.status !== 'open' || raw.writeBufferLength + frame.byteLength > MAX_UNSENT_BYTES) {
        this.drop(peer, new Error(raw.status !== 'open' ? 'the link closed' : `the peer has ${raw.writeBufferLength} bytes unread`))
        continue
      }
      link.usedAt = now
      try {
        // what send leaves unsent is bounded above; a message is never waited on
        raw.send(frame)
      } catch (err) {
        this.drop(peer, err instanceof Error ? err : new Error(String(err)))
      }
    }
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
    // the peer writes nothing: its end of the stream, or anything it sends, ends the link
    void stream.readFrame().then((frame) => {
      this.drop(peer, new Error(frame == null ? 'the peer closed the link' : 'the peer wrote on the link'), link)
    }, (err: unknown) => {
      this.drop(peer, err instanceof Error ? err : new Error(String(err)), link)
    })
  }

  private drop (peer: string, reason: Error, only?: Link): void {
    const link = this.links.get(peer)
    if (link == null || (only != null && link !== only)) return
    this.links.delete(peer)
    this.components.log.debug(`direct link to ${peer} closed: ${reason.message}`)
    link.stream.abort(reason)
  }

  private closeIdle (): void {
    const now = Date.now()
    for (const [peer, link] of [...this.links]) {
      if (now - link.usedAt < this.idleMs) continue
      this.links.delete(peer)
      link.stream.close().catch((err: Error) => { link.stream.abort(err) })
    }
  }
}
