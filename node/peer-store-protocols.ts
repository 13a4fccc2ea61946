// libp2p's peer store, without a write for every stream opened. libp2p merges the stream's
// protocol into the peer's entry each time a stream is negotiated, at both ends, and the store
// writes the entry again every time, with a new `updated` stamp, even when the protocol was
// listed already (no event goes out then): it takes the peer's write lock, reads and decodes the
// entry, encodes and stores it again. A placed task opens streams, so in a burst of tasks across
// five devices about 4 % of the CPU went there. Here a merge that only adds protocols the entry
// already lists returns the entry as it is, for a minute after the entry was last written;
// after that it goes through, so `updated` still moves while streams are opened and the store
// never expires a peer in use. Every other write goes through as before, and the entry
// remembered is the one the last write returned (writes to one peer complete in order, under
// its lock).

import type { PeerId, Peer, PeerStore } from '@libp2p/interface'

/** How long an entry is trusted to list its protocols before a merge writes it again. */
export const PROTOCOL_MERGE_REFRESH_MS = 60_000
/** Peers remembered, at most (the oldest are forgotten first). */
const MAX_REMEMBERED = 1024

interface Held {
  peer: Peer
  protocols: Set<string>
  at: number
}

type Write = (id: PeerId, data?: unknown, options?: unknown) => Promise<Peer>

const installed = new WeakSet<object>()

/** Installs the shortcut on one peer store (libp2p's own instance); idempotent. */
export function skipRepeatedProtocolMerges (store: PeerStore, now: () => number = () => performance.now()): void {
  if (installed.has(store)) return
  const target = store as unknown as Record<'merge' | 'patch' | 'save' | 'delete', Write | undefined>
  for (const name of ['merge', 'patch', 'save', 'delete'] as const) {
    if (typeof target[name] !== 'function') throw new Error(`this libp2p build's peer store has no ${name}(): its protocol merges cannot be shortened`)
  }
  installed.add(store)
  const held = new Map<string, Held>()
  const remember = (key: string, peer: Peer): void => {
    held.delete(key)
    held.set(key, { peer, protocols: new Set(peer.protocols), at: now() })
    if (held.size > MAX_REMEMBERED) held.delete(held.keys().next().value as string)
  }

  for (const name of ['merge', 'patch', 'save'] as const) {
    const write = (target[name] as Write).bind(store)
    target[name] = async (id, data, options) => {
      const key = id.toString()
      if (name === 'merge' && onlyProtocols(data)) {
        const known = held.get(key)
        if (known != null && now() - known.at < PROTOCOL_MERGE_REFRESH_MS && data.protocols.every(p => known.protocols.has(p))) return known.peer
      }
      held.delete(key)
      const peer = await write(id, data, options)
      remember(key, peer)
      return peer
    }
  }
  const remove = (target.delete as Write).bind(store)
  target.delete = async (id, options) => {
    held.delete(id.toString())
    try {
      return await remove(id, options)
    } finally {
      held.delete(id.toString())
    }
  }
}

function onlyProtocols (data: unknown): data is { protocols: string[] } {
  if (data == null || typeof data !== 'object') return false
  const keys = Object.keys(data)
  return keys.length === 1 && keys[0] === 'protocols' && Array.isArray((data as { protocols?: unknown }).protocols)
}
