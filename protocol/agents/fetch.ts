// `/hive/agent-fetch/1.0.0`: serves the agents a node holds to the hive, and fetches them,
// checking every fetched byte against its SHA-256 digest before anyone runs it.
//
// Wire (one request per stream, frames as in wire/framing.ts):
//   fetcher → holder  { digest }
//   holder → fetcher  { ok: true, size } then { data } chunks of at most AGENT_CHUNK_BYTES
//                     adding up to `size`; or { ok: false, reason, message }

import { createHash } from 'node:crypto'
import { z } from 'zod'
import { AGENT_FETCH_PROTOCOL, DIGEST_PATTERN } from '../wire/ids.ts'
import { dialFramed, serveProtocol } from '../wire/serve.ts'
import { AgentDigestMismatchError, AgentFetchError } from './errors.ts'
import type { PeerGate, ProtocolHost, ServedProtocol } from '../wire/serve.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { AgentStore } from './store.ts'
import type { PeerId } from '@libp2p/interface'

export { AGENT_FETCH_PROTOCOL }
export const AGENT_CHUNK_BYTES = 256 * 1024
const MAX_FRAME_BYTES = AGENT_CHUNK_BYTES + 1024

const Bytes = z.custom<Uint8Array>(v => v instanceof Uint8Array, 'bytes')
export const AgentFetchRequest = z.object({ digest: z.string().regex(DIGEST_PATTERN, 'a lowercase hex SHA-256') })
export const AgentFetchHeader = z.union([
  z.object({ ok: z.literal(true), size: z.number().int().min(0) }),
  z.object({ ok: z.literal(false), reason: z.string().max(64), message: z.string().max(1024) })
])
export const AgentChunk = z.object({ data: Bytes })

export async function serveAgentFetch<D extends string> (host: ProtocolHost, store: Pick<AgentStore<D>, 'get'>, options: { log: ProtocolLog, gate?: PeerGate, protocol?: string }): Promise<ServedProtocol> {
  return serveProtocol(host, options.protocol ?? AGENT_FETCH_PROTOCOL, async (stream, { signal }) => {
    const { digest } = await stream.read(AgentFetchRequest, { signal })
    const bytes = store.get(digest as D)
    if (bytes == null) {
      await stream.write({ ok: false, reason: 'NotFound', message: `this node does not hold agent ${digest}` }, { signal })
      return
    }
    await stream.write({ ok: true, size: bytes.byteLength }, { signal })
    for (let at = 0; at < bytes.byteLength; at += AGENT_CHUNK_BYTES) {
      await stream.write({ data: bytes.subarray(at, at + AGENT_CHUNK_BYTES) }, { signal })
    }
  }, { log: options.log, gate: options.gate, maxMessageBytes: MAX_FRAME_BYTES, timeoutMs: 120_000 })
}

/** Fetches an agent from a peer and checks it against its digest. */
export async function fetchAgent (host: Pick<ProtocolHost, 'dialProtocol'>, peer: PeerId, digest: string, options: { maxBytes: number, signal?: AbortSignal, protocol?: string }): Promise<Uint8Array> {
  let stream
  try {
    stream = await dialFramed(host, peer, options.protocol ?? AGENT_FETCH_PROTOCOL, { signal: options.signal, maxMessageBytes: MAX_FRAME_BYTES })
  } catch (err) {
    throw new AgentFetchError(`could not reach ${peer.toString()} to fetch agent ${digest}: ${(err as Error).message}`)
  }
  try {
    await stream.write({ digest }, { signal: options.signal })
    const header = await stream.read(AgentFetchHeader, { signal: options.signal })
    if (!header.ok) throw new AgentFetchError(`${peer.toString()} refused agent ${digest}: ${header.message}`)
    if (header.size > options.maxBytes) throw new AgentFetchError(`agent ${digest} is ${header.size} bytes, more than the ${options.maxBytes} accepted`)
    const out = new Uint8Array(header.size)
    const hash = createHash('sha256')
    let at = 0
    while (at < header.size) {
      const { data } = await stream.read(AgentChunk, { signal: options.signal })
      if (data.byteLength === 0 || at + data.byteLength > header.size) throw new AgentFetchError(`${peer.toString()} sent agent ${digest} in chunks that do not add up to ${header.size} bytes`)
      out.set(data, at)
      hash.update(data)
      at += data.byteLength
    }
    const got = hash.digest('hex')
    if (got !== digest) throw new AgentDigestMismatchError(`agent fetched from ${peer.toString()} has digest ${got}, not the ${digest} announced; it was not run`)
    await stream.close({ signal: options.signal }).catch(() => {})
    return out
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    if (err instanceof AgentFetchError || err instanceof AgentDigestMismatchError) throw err
    throw new AgentFetchError(`fetching agent ${digest} from ${peer.toString()} failed: ${(err as Error).message}`)
  }
}
