// `/hive/agent-fetch/1.0.0`: serves the agents a node holds to the hive, and fetches them,
// checking every fetched byte against its SHA-256 digest before anyone runs it.
//
// Wire (one request per stream, frames as in wire/framing.ts):
//   fetcher → holder  { digest, offset? }
//   holder → fetcher  { ok: true, size } then { data } chunks of at most AGENT_CHUNK_BYTES
//                     adding up to `size - offset` (the bytes from `offset` on); or
//                     { ok: false, reason, message }
// `offset` lets a fetcher that lost one holder mid-way go on with another from where it was
// (`fetchAgentFromAny`); the digest is checked over the whole, wherever each part came from.

import { createHash } from 'node:crypto'
import { z } from 'zod'
import { Bytes } from '../wire/codec.ts'
import { AGENT_FETCH_PROTOCOL, DIGEST_PATTERN } from '../wire/ids.ts'
import { dialFramed, serveProtocol } from '../wire/serve.ts'
import { AgentDigestMismatchError, AgentFetchError } from './errors.ts'
import type { Hash } from 'node:crypto'
import type { PeerGate, ProtocolHost, ServedProtocol } from '../wire/serve.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { AgentStore } from './store.ts'
import type { PeerId } from '@libp2p/interface'

export { AGENT_FETCH_PROTOCOL }
export const AGENT_CHUNK_BYTES = 256 * 1024
const MAX_FRAME_BYTES = AGENT_CHUNK_BYTES + 1024

export const AgentFetchRequest = z.object({
  digest: z.string().regex(DIGEST_PATTERN, 'a lowercase hex SHA-256'),
  offset: z.number().int().min(0).max(2 ** 40).optional()
})
export const AgentFetchHeader = z.union([
  z.object({ ok: z.literal(true), size: z.number().int().min(0) }),
  z.object({ ok: z.literal(false), reason: z.string().max(64), message: z.string().max(1024) })
])
export const AgentChunk = z.object({ data: Bytes })

/** Where a holder looks an agent up: its store in memory, and (when it has one) a slower lookup behind it, e.g. on disk. */
export interface AgentSource<D extends string> {
  get: AgentStore<D>['get']
  load?: (digest: D) => Promise<Uint8Array | undefined>
}

export async function serveAgentFetch<D extends string> (host: ProtocolHost, store: AgentSource<D>, options: { log: ProtocolLog, gate?: PeerGate, protocol?: string }): Promise<ServedProtocol> {
  return serveProtocol(host, options.protocol ?? AGENT_FETCH_PROTOCOL, async (stream, { signal }) => {
    const { digest, offset = 0 } = await stream.read(AgentFetchRequest, { signal })
    const bytes = store.get(digest as D) ?? await store.load?.(digest as D)
    if (bytes == null) {
      await stream.write({ ok: false, reason: 'NotFound', message: `this node does not hold agent ${digest}` }, { signal })
      return
    }
    if (offset > bytes.byteLength) {
      await stream.write({ ok: false, reason: 'BadOffset', message: `agent ${digest} is ${bytes.byteLength} bytes; offset ${offset} is beyond it` }, { signal })
      return
    }
    await stream.write({ ok: true, size: bytes.byteLength }, { signal })
    for (let at = offset; at < bytes.byteLength; at += AGENT_CHUNK_BYTES) {
      await stream.write({ data: bytes.subarray(at, at + AGENT_CHUNK_BYTES) }, { signal })
    }
  }, { log: options.log, gate: options.gate, maxMessageBytes: MAX_FRAME_BYTES, timeoutMs: 120_000 })
}

export interface FetchOptions {
  maxBytes: number
  signal?: AbortSignal
  protocol?: string
}

/** The bytes of one agent as they arrive, from one holder or several in turn. */
interface Assembly {
  out?: Uint8Array
  hash: Hash
  at: number
}

/**
 * Reads from one holder into `into`, from `into.at` on. Throws AgentFetchError when the holder
 * cannot be reached, refuses, or sends chunks that do not add up; what arrived before stays.
 */
async function fetchInto (host: Pick<ProtocolHost, 'dialProtocol'>, peer: PeerId, digest: string, into: Assembly, options: FetchOptions): Promise<void> {
  let stream
  try {
    stream = await dialFramed(host, peer, options.protocol ?? AGENT_FETCH_PROTOCOL, { signal: options.signal, maxMessageBytes: MAX_FRAME_BYTES })
  } catch (err) {
    throw new AgentFetchError(`could not reach ${peer.toString()} to fetch agent ${digest}: ${(err as Error).message}`)
  }
  try {
    await stream.write(into.at > 0 ? { digest, offset: into.at } : { digest }, { signal: options.signal })
    const header = await stream.read(AgentFetchHeader, { signal: options.signal })
    if (!header.ok) throw new AgentFetchError(`${peer.toString()} refused agent ${digest}: ${header.message}`)
    if (header.size > options.maxBytes) throw new AgentFetchError(`agent ${digest} is ${header.size} bytes, more than the ${options.maxBytes} accepted`)
    if (into.out != null && into.out.byteLength !== header.size) throw new AgentFetchError(`${peer.toString()} says agent ${digest} is ${header.size} bytes, another holder said ${into.out.byteLength}`)
    const out = into.out ?? new Uint8Array(header.size)
    into.out = out
    while (into.at < header.size) {
      const { data } = await stream.read(AgentChunk, { signal: options.signal })
      if (data.byteLength === 0 || into.at + data.byteLength > header.size) throw new AgentFetchError(`${peer.toString()} sent agent ${digest} in chunks that do not add up to ${header.size} bytes`)
      out.set(data, into.at)
      into.hash.update(data)
      into.at += data.byteLength
    }
    await stream.close({ signal: options.signal }).catch(() => {})
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    if (err instanceof AgentFetchError) throw err
    throw new AgentFetchError(`fetching agent ${digest} from ${peer.toString()} failed: ${(err as Error).message}`)
  }
}

/** Fetches an agent from a peer and checks it against its digest. */
export async function fetchAgent (host: Pick<ProtocolHost, 'dialProtocol'>, peer: PeerId, digest: string, options: FetchOptions): Promise<Uint8Array> {
  const into: Assembly = { hash: createHash('sha256'), at: 0 }
  await fetchInto(host, peer, digest, into, options)
  const got = into.hash.digest('hex')
  if (got !== digest) throw new AgentDigestMismatchError(`agent fetched from ${peer.toString()} has digest ${got}, not the ${digest} announced; it was not run`)
  return into.out ?? new Uint8Array()
}

/**
 * Fetches an agent from whichever of `peers` holds it, in their order: a holder that does not
 * hold it is passed over, and one that fails mid-way is followed by the next from the byte it
 * reached. The whole is checked against the digest; when it does not match, every holder that
 * sent part of it is set aside and the next starts again from the first byte. Throws
 * AgentFetchError naming every holder asked when none delivered.
 */
export async function fetchAgentFromAny (host: Pick<ProtocolHost, 'dialProtocol'>, peers: readonly PeerId[], digest: string, options: FetchOptions & { onHolder?: (peer: PeerId, error?: Error) => void }): Promise<{ bytes: Uint8Array, from: PeerId[] }> {
  const problems: string[] = []
  let into: Assembly = { hash: createHash('sha256'), at: 0 }
  let from: PeerId[] = []
  for (const peer of peers) {
    options.signal?.throwIfAborted()
    const before = into.at
    try {
      await fetchInto(host, peer, digest, into, options)
    } catch (err) {
      options.onHolder?.(peer, err as Error)
      problems.push((err as Error).message)
      if (into.at > before) from.push(peer)
      continue
    }
    from.push(peer)
    options.onHolder?.(peer)
    const got = into.hash.digest('hex')
    if (got === digest) return { bytes: into.out ?? new Uint8Array(), from }
    problems.push(`the bytes from ${from.map(p => p.toString()).join(', ')} have digest ${got}, not ${digest}`)
    into = { hash: createHash('sha256'), at: 0 }
    from = []
  }
  if (problems.some(p => / have digest /.test(p)) && !problems.some(p => /refused|reach|failed|add up/.test(p))) {
    throw new AgentDigestMismatchError(`no member sent agent ${digest} intact: ${problems.join('; ')}`)
  }
  throw new AgentFetchError(`no reachable member sent agent ${digest}${problems.length > 0 ? `: ${problems.join('; ')}` : ' (none is connected)'}`)
}
