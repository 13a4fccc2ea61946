// Agent bytes by digest: a bounded in-memory store of the agents this node submitted or fetched.
// The node holds one store; placement (to run and serve agents) and the API (to submit an agent
// by digest) share it.

import { createHash } from 'node:crypto'
import { DIGEST_PATTERN } from '../wire/ids.ts'

declare const digestBrand: unique symbol
/** SHA-256 as 64 lowercase hex characters. */
export type AgentDigest = string & { readonly [digestBrand]: true }

export function isAgentDigest (value: unknown): value is AgentDigest {
  return typeof value === 'string' && DIGEST_PATTERN.test(value)
}

export function agentDigest (bytes: Uint8Array): AgentDigest {
  return createHash('sha256').update(bytes).digest('hex') as AgentDigest
}

/**
 * The store, typed by the digest type its user brands (placement has its own `Digest`); the
 * digest is always the SHA-256 hex of the bytes.
 */
export interface AgentStore<D extends string = AgentDigest> {
  has: (digest: D) => boolean
  get: (digest: D) => Uint8Array | undefined
  /** Keeps bytes under their digest (computed here) and returns it. */
  put: (bytes: Uint8Array) => D
  /** Keeps an agent from eviction while a task needs it; unpin as often as pinned. */
  pin: (digest: D) => void
  unpin: (digest: D) => void
  readonly bytes: number
  /** The agents held, least recently used first, with their size in bytes. */
  list: () => Array<{ digest: D, size: number }>
}

export const DEFAULT_AGENT_STORE_BYTES = 256 * 1024 * 1024

/** Least recently used agents are dropped beyond `maxBytes`, except pinned ones. */
export function createAgentStore<D extends string = AgentDigest> (init: { maxBytes?: number } = {}): AgentStore<D> {
  const maxBytes = init.maxBytes ?? DEFAULT_AGENT_STORE_BYTES
  const entries = new Map<D, Uint8Array>()
  const pins = new Map<D, number>()
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
      const digest = agentDigest(bytes) as string as D
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
    get bytes () { return total },
    list: () => [...entries].map(([digest, bytes]) => ({ digest, size: bytes.byteLength }))
  }
}
