// Yamux window updates as the yamux spec's reference implementations send them. The JavaScript
// muxer (@chainsafe/libp2p-yamux 8) answers every data frame a stream receives with a window
// update frame: on a long-lived stream (gossip) every message costs a second frame back, each
// encrypted, written and decoded on its own. Measured: a sixth of the CPU of a burst of placed
// tasks went to sending window updates and to the frames they make the other side handle.
// Hashicorp's and go-libp2p's yamux send one only once the receive window has fallen to half
// (or when the update carries a flag, SYN or ACK); this does the same. Both ends stay within
// the protocol: the peer may send up to the window last granted, as before.

import { StreamState, YamuxStream } from '@chainsafe/libp2p-yamux/stream'

interface WindowFields {
  state: StreamState
  recvWindow: number
  recvWindowCapacity: number
}

const original = YamuxStream.prototype.sendWindowUpdate as (this: YamuxStream) => void

function fields (stream: YamuxStream): WindowFields {
  return stream as unknown as WindowFields
}

/** Installs the half-window rule on every yamux stream; idempotent. Fails fast on a muxer that moved its fields. */
export function halfWindowUpdates (): void {
  if ((YamuxStream.prototype.sendWindowUpdate as { halfWindow?: boolean }).halfWindow === true) return
  if (typeof original !== 'function') throw new Error('this yamux build has no YamuxStream.sendWindowUpdate: window updates cannot be batched')
  const patched = function (this: YamuxStream): void {
    const s = fields(this)
    // only a stream past its SYN/ACK exchange sends a bare update (no flags to carry)
    if ((s.state === StreamState.Established || s.state === StreamState.SYNSent) &&
      typeof s.recvWindow === 'number' && typeof s.recvWindowCapacity === 'number' &&
      s.recvWindowCapacity * 2 > s.recvWindow) return
    original.call(this)
  }
  ;(patched as { halfWindow?: boolean }).halfWindow = true
  YamuxStream.prototype.sendWindowUpdate = patched
}
