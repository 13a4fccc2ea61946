// The hive's agent registry: a grow-only set of signed publish and yank entries, kept in LevelDB
// and replicated to every member (PROTOCOL.md), whose state (catalog.ts) says which bytes each
// NAME@VERSION is. The components themselves are kept by digest, in memory and on disk, and
// fetched from any member that holds them, checked against the digest before anything uses them.
//
// Protocol /hive/registry/1.0.0, one exchange per stream:
//   initiator -> responder  { t: 'have', hive, ids }               ids of every entry it holds
//   responder -> initiator  { t: 'have', hive, ids }
//   responder -> initiator  { t: 'entries', entries, more } ...    what the initiator lacks
//   initiator -> responder  { t: 'entries', entries, more } ...    what the responder lacks
// When exchanges run, and what becomes of a peer that sends an entry that does not verify (the
// whole exchange is refused and the sender hung up on), is ../wire/replicated-entries.ts: with a
// member when a connection to it opens, when the member list changes, and after a change with
// every connected member but the one it came from (a change travels once).
//
// Invariant: persist, then apply, then forward (as crdt/store.ts); and a component is on this
// device's disk before its publish entry leaves it.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { agentDigest } from '../agents/store.ts'
import { AgentDigestMismatchError, AgentFetchError } from '../agents/errors.ts'
import { fetchAgentFromAny } from '../agents/fetch.ts'
import { TypedEventTarget } from '../placement/events.ts'
import { MalformedMessageError } from '../wire/errors.ts'
import { REGISTRY_PROTOCOL } from '../wire/ids.ts'
import { SILENT_LOG } from '../wire/log.ts'
import { createReplicatedEntries } from '../wire/replicated-entries.ts'
import { toWireSignedEntry } from '../wire/signed-entries.ts'
import { Catalog } from './catalog.ts'
import {
  MAX_REGISTRY_BODY_BYTES, WireCatalogEntrySchema, createCatalogEntry, decodeCatalogEntry, encodeCatalogEntry, formatAgentRef, openCatalogEntry, parseAgentRef
} from './entries.ts'
import { AgentNotPublishedError, ComponentUnavailableError, InvalidAgentRefError, InvalidCatalogEntryError, RegistryRefusedError, VersionConflictError } from './errors.ts'
import type { PublishedAgent, PublishedVersion } from './catalog.ts'
import type { CatalogEntry, ManifestSummary } from './entries.ts'
import type { AgentDigest } from '../agents/store.ts'
import type { FramedStream } from '../wire/framing.ts'
import type { ReplicaHost, ReplicatedEntries } from '../wire/replicated-entries.ts'
import type { PeerGate, ProtocolLog } from '../wire/serve.ts'
import type { Signer } from '../wire/signing.ts'
import type { AbortOptions } from '@libp2p/interface'

/** Entries a device holds at most; beyond it new ones are refused (dropping one could change what a name resolves to). */
export const MAX_REGISTRY_ENTRIES = 4096
/** Entries in one frame of an exchange: 64 of at most 16 KiB each stay within 1 MiB. */
export const REGISTRY_ENTRIES_PER_FRAME = 64
export const MAX_REGISTRY_MESSAGE_BYTES = REGISTRY_ENTRIES_PER_FRAME * (MAX_REGISTRY_BODY_BYTES + 128) + 64 * 1024
const EXCHANGE_TIMEOUT_MS = 20_000
/** How long resolving a name it does not know waits for the members it is connected to. */
const CATCH_UP_MS = 5_000

const HIVE = z.string().regex(/^[a-z2-7]{26}$/)
const ID = z.string().regex(/^[0-9a-f]{64}$/)
const HaveMessage = z.strictObject({ t: z.literal('have'), hive: HIVE, ids: z.array(ID).max(MAX_REGISTRY_ENTRIES) })
const EntriesMessage = z.strictObject({
  t: z.literal('entries'),
  entries: z.array(WireCatalogEntrySchema).max(REGISTRY_ENTRIES_PER_FRAME),
  more: z.boolean()
})

export interface RegistryEvents extends Record<string, unknown> {
  /** An entry was added: published or yanked here, or learnt from `from`. */
  entry: { id: string, type: 'publish' | 'yank', name: string, version: string, digest: string, by: string, from?: string }
  /** A publish of a NAME@VERSION already published with other bytes: kept as evidence, never run. */
  conflict: { name: string, version: string, digest: string, conflicting: string, by: string, entry: string }
  /** A well-signed entry that does not count here: its signer is not a member, or the catalog is full. */
  ignored: { entry: string, by: string, reason: string }
  /** A peer sent entries that do not verify and was hung up on. */
  refused: { peer: string, error: string }
}

/** The LevelDB sublevel the entries live in (key: entry id, value: the encoded entry). */
export interface RegistryDb {
  put: (key: string, value: Uint8Array) => Promise<void>
  values: () => AsyncIterable<Uint8Array>
}

export type RegistryHost = ReplicaHost

/** What the registry learns from an agent's bytes: the node reads the manifest through the sandbox. */
export interface InspectedAgent {
  name: string
  version: string
  manifest: ManifestSummary
}

export interface RegistryComponents {
  db: RegistryDb
  signer: Signer
  hiveId: () => string
  isMember: (peer: string) => boolean
  /** Whether a connection to this member is transient (beyond an all-to-all hive, not a neighbour): no exchange when it opens. */
  transient?: (peer: string) => boolean
  host: RegistryHost
  /** Agent bytes in memory: placement's store, so what is resolved here is what it runs and serves. */
  memory: { get: (digest: AgentDigest) => Uint8Array | undefined, put: (bytes: Uint8Array) => AgentDigest }
  /** Agent bytes on disk, kept across restarts. */
  disk: { read: (digest: AgentDigest) => Promise<Uint8Array | undefined>, write: (bytes: Uint8Array) => Promise<AgentDigest> }
  /** Reads an agent's manifest; throws when the bytes are not an agent (the sandbox's errors). */
  inspect: (bytes: Uint8Array) => InspectedAgent
  gate?: PeerGate
  log?: ProtocolLog
  /** Largest component fetched. Default 64 MiB. */
  maxComponentBytes?: number
}

/** A version resolved and its bytes, checked. */
export interface ResolvedAgent extends PublishedVersion {
  bytes: Uint8Array
}

export interface Registry extends TypedEventTarget<RegistryEvents> {
  start: () => Promise<void>
  stop: () => Promise<void>
  /** Publishes an agent (its manifest names it and its version); the same bytes again add their tags. */
  publish: (bytes: Uint8Array, options?: { tags?: string[] }) => Promise<PublishedVersion>
  /** Yanks NAME@VERSION: no longer run by name, still listed and verifiable. */
  yank: (ref: string, options?: { reason?: string }) => Promise<PublishedVersion>
  /** Every agent published, every version, greatest first. */
  list: () => PublishedAgent[]
  show: (name: string) => PublishedAgent | undefined
  /**
   * The version `NAME`, `NAME@VERSION` or `NAME@TAG` names (catalog.ts's rules). A name this node
   * does not know yet is looked for again after an exchange with every member connected.
   */
  resolve: (ref: string, options?: AbortOptions) => Promise<PublishedVersion>
  /** The version a reference names, with its bytes: held here, or fetched from a member that holds them. */
  load: (ref: string, options?: AbortOptions) => Promise<ResolvedAgent>
  /** The bytes of a published version: from memory, disk, or any member holding them; checked. */
  component: (version: PublishedVersion, options?: AbortOptions) => Promise<Uint8Array>
  /** Whether a digest is a published version's (a component fetched for it is kept on disk). */
  publishes: (digest: string) => boolean
  /** Resolves once this node has exchanged entries with `peer` on its current connection. */
  synced: (peer: string, options?: AbortOptions) => Promise<void>
  /** Exchanges entries with every connected member (the member list changed). */
  resync: () => void
  /** Every entry held. */
  entries: () => CatalogEntry[]
}

export function createRegistry (components: RegistryComponents): Registry {
  return new RegistryService(components)
}

class RegistryService extends TypedEventTarget<RegistryEvents> implements Registry {
  private readonly components: RegistryComponents
  private readonly log: ProtocolLog
  private readonly held = new Map<string, CatalogEntry>()
  private readonly catalog = new Catalog()
  private readonly digests = new Set<string>()
  /** Components being fetched: concurrent asks for one digest share one fetch. */
  private readonly fetching = new Map<string, Promise<Uint8Array>>()
  private readonly replica: ReplicatedEntries
  private running = false

  constructor (components: RegistryComponents) {
    super()
    this.components = components
    this.log = components.log ?? SILENT_LOG
    this.replica = createReplicatedEntries<CatalogEntry>({
      name: 'registry',
      protocol: REGISTRY_PROTOCOL,
      maxMessageBytes: MAX_REGISTRY_MESSAGE_BYTES,
      timeoutMs: EXCHANGE_TIMEOUT_MS,
      maxInboundStreams: 8,
      isEntryFault: (err) => err instanceof InvalidCatalogEntryError,
      initiate: async (stream, peer, signal) => {
        await stream.write(this.have(), { signal })
        const have = await stream.read(HaveMessage, { signal })
        const same = have.hive === this.components.hiveId()
        const got = await this.receive(stream, signal)
        await this.send(stream, same ? this.lacking(have.ids) : [], signal)
        if (same) return got
        this.log.debug(`registry: ${peer} is in another hive; its entries are set aside`)
        return []
      },
      respond: async (stream, _peer, signal) => {
        const have = await stream.read(HaveMessage, { signal })
        const same = have.hive === this.components.hiveId()
        await stream.write(this.have(), { signal })
        await this.send(stream, same ? this.lacking(have.ids) : [], signal)
        const got = await this.receive(stream, signal)
        return same ? got : []
      },
      merge: async (entries, from) => { await this.merge(entries, from) },
      onRefused: (peer, error) => { this.emit('refused', { peer, error }) }
    }, components)
  }

  async start (): Promise<void> {
    if (this.running) return
    for await (const value of this.components.db.values()) {
      try {
        this.apply(decodeCatalogEntry(value))
      } catch (err) {
        // a damaged record resolves nothing; members send it again
        this.log.warn(`registry: a stored entry is damaged and was skipped: ${(err as Error).message}`)
      }
    }
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

  entries (): CatalogEntry[] {
    return [...this.held.values()]
  }

  list (): PublishedAgent[] {
    return this.catalog.agents()
  }

  show (name: string): PublishedAgent | undefined {
    return this.catalog.agent(name)
  }

  publishes (digest: string): boolean {
    return this.digests.has(digest)
  }

  // ---- publish, yank, resolve ----

  async publish (bytes: Uint8Array, options: { tags?: string[] } = {}): Promise<PublishedVersion> {
    if (!this.running) throw new RegistryRefusedError('the node is not running; start it first')
    const info = this.components.inspect(bytes)
    const digest = agentDigest(bytes)
    const tags = [...new Set(options.tags ?? [])]
    const existing = this.catalog.agent(info.name)?.versions.find(v => v.version === info.version)
    if (existing != null && existing.digest !== digest) {
      throw new VersionConflictError(`${info.name}@${info.version} is already published with other bytes (digest ${existing.digest}, published by ${existing.publisher} at ${new Date(existing.time).toISOString()}); ` +
        'a version is never replaced: raise the version in the manifest, build again and publish that')
    }
    if (existing?.yanked != null) {
      throw new RegistryRefusedError(`${info.name}@${info.version} was yanked; a yanked version is not published again: raise the version in the manifest and publish that`)
    }
    // the component is on this device's disk before any member hears of it
    await this.components.disk.write(bytes)
    this.components.memory.put(bytes)
    if (existing != null && tags.every(t => existing.tags.includes(t))) return existing
    if (this.held.size >= MAX_REGISTRY_ENTRIES) throw new RegistryRefusedError(`the catalog holds ${this.held.size} entries, the most a device keeps; nothing more can be published in this hive`)
    const entry = await createCatalogEntry({
      type: 'publish', hive: this.components.hiveId(), at: Date.now(), name: info.name, version: info.version, digest, size: bytes.byteLength, manifest: info.manifest, tags
    }, this.components.signer)
    await this.merge([entry])
    return this.catalog.resolve({ name: info.name, version: info.version })
  }

  async yank (text: string, options: { reason?: string } = {}): Promise<PublishedVersion> {
    if (!this.running) throw new RegistryRefusedError('the node is not running; start it first')
    const ref = parseAgentRef(text)
    if (ref.version == null) throw new InvalidAgentRefError(`"${text}": name the version to yank, NAME@VERSION (e.g. ${ref.name}@0.1.0); "hive-node agent show ${ref.name}" lists them`)
    const version = this.catalog.agent(ref.name)?.versions.find(v => v.version === ref.version)
    if (version == null) throw new AgentNotPublishedError(`${text} is not published; "hive-node agent show ${ref.name}" lists its versions`)
    if (version.yanked != null) return version
    if (this.held.size >= MAX_REGISTRY_ENTRIES) throw new RegistryRefusedError(`the catalog holds ${this.held.size} entries, the most a device keeps`)
    const entry = await createCatalogEntry({
      type: 'yank', hive: this.components.hiveId(), at: Date.now(), name: version.name, version: version.version, digest: version.digest,
      ...(options.reason != null && options.reason !== '' ? { reason: options.reason } : {})
    }, this.components.signer)
    await this.merge([entry])
    return this.catalog.agent(ref.name)?.versions.find(v => v.version === ref.version) as PublishedVersion
  }

  async resolve (text: string, options: AbortOptions = {}): Promise<PublishedVersion> {
    const ref = parseAgentRef(text)
    try {
      return this.catalog.resolve(ref)
    } catch (err) {
      if (!(err instanceof AgentNotPublishedError)) throw err
      // a device back from offline may not have heard of it yet: ask the members it can reach
      const signal = AbortSignal.any([AbortSignal.timeout(CATCH_UP_MS), ...(options.signal != null ? [options.signal] : [])])
      await Promise.all(this.replica.members().map(async peer => { await this.synced(peer, { signal }) }))
      options.signal?.throwIfAborted()
      return this.catalog.resolve(ref)
    }
  }

  async load (text: string, options: AbortOptions = {}): Promise<ResolvedAgent> {
    const version = await this.resolve(text, options)
    return { ...version, bytes: await this.component(version, options) }
  }

  async component (version: PublishedVersion, options: AbortOptions = {}): Promise<Uint8Array> {
    const digest = version.digest as AgentDigest
    const inMemory = this.components.memory.get(digest)
    if (inMemory != null) return inMemory
    const onDisk = await this.components.disk.read(digest)
    if (onDisk != null) {
      this.components.memory.put(onDisk)
      return onDisk
    }
    const running = this.fetching.get(digest)
    if (running != null) return running
    const attempt = this.fetchComponent(version, options).finally(() => { this.fetching.delete(digest) })
    this.fetching.set(digest, attempt)
    return attempt
  }

  private async fetchComponent (version: PublishedVersion, options: AbortOptions): Promise<Uint8Array> {
    const digest = version.digest as AgentDigest
    // the publisher first (it surely holds it), then every other member connected
    const peers = this.replica.members().sort((a, b) => (a === version.publisher ? -1 : b === version.publisher ? 1 : a < b ? -1 : 1))
    let bytes: Uint8Array
    try {
      ({ bytes } = await fetchAgentFromAny(this.components.host, peers.map(p => peerIdFromString(p)), digest, {
        maxBytes: Math.min(version.size, this.components.maxComponentBytes ?? 64 * 1024 * 1024),
        ...(options.signal != null ? { signal: options.signal } : {}),
        onHolder: (peer, error) => { this.log.debug(`registry: ${formatAgentRef(version)} from ${peer.toString()}: ${error != null ? error.message : 'received'}`) }
      }))
    } catch (err) {
      if (err instanceof AgentFetchError || err instanceof AgentDigestMismatchError) {
        throw new ComponentUnavailableError(`${version.name}@${version.version} (${digest.slice(0, 12)}…) is not held here and ${err.message}; ` +
          'it runs again once a member that holds it (its publisher, or one that ran it) is online')
      }
      throw err
    }
    this.checkBytes(version, bytes)
    await this.components.disk.write(bytes)
    this.components.memory.put(bytes)
    return bytes
  }

  /** Bytes that hash to a version's digest are that version; their manifest must say so too (the publisher signed both). */
  private checkBytes (version: PublishedVersion, bytes: Uint8Array): void {
    let info: InspectedAgent
    try {
      info = this.components.inspect(bytes)
    } catch (err) {
      throw new ComponentUnavailableError(`the component published as ${version.name}@${version.version} is not an agent: ${(err as Error).message}`)
    }
    if (info.name !== version.name || info.version !== version.version) {
      throw new ComponentUnavailableError(`the component published as ${version.name}@${version.version} says it is ${info.name}@${info.version}; it is not run`)
    }
  }

  // ---- replication ----

  async synced (peer: string, options: AbortOptions = {}): Promise<void> {
    await this.replica.synced(peer, options)
  }

  private have (): z.infer<typeof HaveMessage> {
    return { t: 'have', hive: this.components.hiveId(), ids: [...this.held.keys()] }
  }

  private lacking (ids: string[]): CatalogEntry[] {
    const theirs = new Set(ids)
    return [...this.held.values()].filter(e => !theirs.has(e.id))
  }

  private async send (stream: FramedStream, entries: CatalogEntry[], signal: AbortSignal): Promise<void> {
    let at = 0
    do {
      const batch = entries.slice(at, at + REGISTRY_ENTRIES_PER_FRAME)
      at += batch.length
      await stream.write({ t: 'entries', entries: batch.map(toWireSignedEntry), more: at < entries.length }, { signal })
    } while (at < entries.length)
  }

  /** Reads and opens every entry the other side sends; one that fails refuses the exchange. */
  private async receive (stream: FramedStream, signal: AbortSignal): Promise<CatalogEntry[]> {
    const out: CatalogEntry[] = []
    for (;;) {
      const message = await stream.read(EntriesMessage, { signal })
      for (const wire of message.entries) out.push(openCatalogEntry(wire))
      if (out.length > MAX_REGISTRY_ENTRIES) throw new MalformedMessageError(`more than ${MAX_REGISTRY_ENTRIES} catalog entries in one exchange`)
      if (!message.more) return out
    }
  }

  private apply (entry: CatalogEntry): void {
    this.held.set(entry.id, entry)
    this.catalog.add(entry)
    if (entry.body.type === 'publish') this.digests.add(entry.body.digest)
  }

  /** Persists what is new and counts here, applies it, tells the other members. */
  private async merge (entries: CatalogEntry[], from?: string): Promise<void> {
    const hive = this.components.hiveId()
    const fresh: CatalogEntry[] = []
    for (const entry of entries) {
      if (this.held.has(entry.id) || fresh.some(e => e.id === entry.id)) continue
      if (entry.body.hive !== hive) continue
      // only a member publishes or yanks; a device no longer in the hive is not a fault (it was a member when it signed)
      if (!this.components.isMember(entry.body.by)) {
        this.emit('ignored', { entry: entry.id, by: entry.body.by, reason: 'its signer is not a member of this hive' })
        continue
      }
      if (this.held.size + fresh.length >= MAX_REGISTRY_ENTRIES) {
        this.emit('ignored', { entry: entry.id, by: entry.body.by, reason: `the catalog holds ${MAX_REGISTRY_ENTRIES} entries, the most a device keeps` })
        continue
      }
      fresh.push(entry)
    }
    if (fresh.length === 0) return
    for (const entry of fresh) await this.components.db.put(entry.id, encodeCatalogEntry(entry))
    for (const entry of fresh) {
      const before = entry.body.type === 'publish' ? this.catalog.agent(entry.body.name)?.versions.find(v => v.version === entry.body.version) : undefined
      this.apply(entry)
      const { type, name, version, digest, by } = entry.body
      this.emit('entry', { id: entry.id, type, name, version, digest, by, ...(from != null ? { from } : {}) })
      if (type !== 'publish') continue
      // a conflict either way: this entry brings other bytes for a version already published, or
      // it is the earlier publish (two devices apart) and what was resolved until now becomes the conflict
      const after = this.catalog.agent(name)?.versions.find(v => v.version === version)
      const displaced = before != null && after != null && before.digest !== after.digest ? before.digest : undefined
      const conflicting = after != null && after.digest !== digest ? digest : displaced
      if (after != null && conflicting != null) {
        this.log.warn(`registry: ${name}@${version} was published with other bytes too; ${after.digest.slice(0, 12)}… stands, ${conflicting.slice(0, 12)}… is a conflict and is never run`)
        this.emit('conflict', { name, version, digest: after.digest, conflicting, by, entry: entry.id })
      }
    }
    this.replica.forward(from)
  }
}
