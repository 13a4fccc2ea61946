// Agent bytes by digest: a bounded in-memory store of the agents this node submitted or fetched,
// and the `/hive/agent-fetch/1.0.0` protocol that serves them to the hive and fetches them,
// checking every fetched byte against its SHA-256 digest before anyone runs it.

import { createHash } from 'node:crypto'
import { dialFramed, serveProtocol } from '../handler.ts'
import { protocolId } from '../ids.ts'
import { AgentDigestMismatchError, AgentFetchError } from './errors.ts'
import { sha256Hex } from './ids.ts'
import { AgentChunk, AgentFetchHeader, AgentFetchRequest } from './messages.ts'
import type { PeerGate, ProtocolHost, ProtocolLog, ServedProtocol } from '../handler.ts'
import type { Digest } from './ids.ts'
import type { PeerId } from '@libp2p/interface'

export const AGENT_FETCH_PROTOCOL = protocolId('agent-fetch')
export const AGENT_CHUNK_BYTES = 256 * 1024
const MAX_FRAME_BYTES = AGENT_CHUNK_BYTES + 1024

export interface AgentStore {
  has: (digest: Digest) => boolean
  get: (digest: Digest) => Uint8Array | undefined
  /** Keeps bytes under their digest (computed here) and returns it. */
  put: (bytes: Uint8Array) => Digest
  /** Keeps an agent from eviction while a task needs it; unpin as often as pinned. */
  pin: (digest: Digest) => void
  unpin: (digest: Digest) => void
  readonly bytes: number
}

/** Least recently used agents are dropped beyond `maxBytes`, except pinned ones. */
export function createAgentStore (init: { maxBytes?: number } = {}): AgentStore {
  const maxBytes = init.maxBytes ?? 256 * 1024 * 1024
  const entries = new Map<Digest, Uint8Array>()
  const pins = new Map<Digest, number>()
  let total = 0

  function evict (): void {
    for (const [digest, bytes] of entries) {
      if (total <= maxBytes) return
      if ((pins.get(digest) ?? 0) > 0) continue
      entries.delete(digest)
      total -= bytes.byteLength
    }
  }

  return {
    has: digest => entries.has(digest),
    get (digest) {
      const bytes = entries.get(digest)
      if (bytes != null) { entries.delete(digest); entries.set(digest, bytes) }
      return bytes
    },
    put (bytes) {
      const digest = sha256Hex(bytes)
      const old = entries.get(digest)
      if (old != null) entries.delete(digest)
      else total += bytes.byteLength
      entries.set(digest, old ?? bytes)
      evict()
      return digest
    },
    pin (digest) { pins.set(digest, (pins.get(digest) ?? 0) + 1) },
    unpin (digest) {
      const n = (pins.get(digest) ?? 0) - 1
      if (n > 0) pins.set(digest, n)
      else pins.delete(digest)
      evict()
    },
    get bytes () { return total }
  }
}

export async function serveAgentFetch (host: ProtocolHost, store: AgentStore, options: { log: ProtocolLog, gate?: PeerGate, protocol?: string }): Promise<ServedProtocol> {
  return serveProtocol(host, options.protocol ?? AGENT_FETCH_PROTOCOL, async (stream, { signal }) => {
    const { digest } = await stream.read(AgentFetchRequest, { signal })
    const bytes = store.get(digest)
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
export async function fetchAgent (host: ProtocolHost, peer: PeerId, digest: Digest, options: { maxBytes: number, signal?: AbortSignal, protocol?: string }): Promise<Uint8Array> {
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
