// Relay windows: how an invite works across networks. A member that invites while it holds a
// reservation on a member relay asks that relay to let a stranger through to it, for its
// invite's lifetime and no longer. The relay's gate (../membership/gate.ts, point 7) admits a
// stranger as a guest only while some window is open, lets it speak nothing but circuit relay's
// hop protocol, refuses it any reservation, and connects it only to a member whose window is
// open. Only the member can open or close its windows: the request comes over its own
// authenticated connection to the relay, and the gate checks it is a member; nothing a
// stranger sends opens one.
//
// Protocol /hive/pairing-relay/1.0.0, frames from ../wire, one request per stream:
//   inviter -> relay   { t: 'open', window: <invite id hex>, until: <seconds since the epoch> }
//                      { t: 'close', window }
//   relay   -> inviter { t: 'ok', until }  (the window's end as granted; 0 after a close)
// A request the relay does not accept (not from a member, malformed) gets the stream closed.
// A window lasts until `until`, at most RELAY_WINDOW_MAX_MS from its opening; the inviter asks
// again before then while its invite is still open.

import { peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { RELAY_WINDOW_PROTOCOL } from '../wire/ids.ts'
import { openFramed, serveProtocol } from '../wire/serve.ts'
import type { MembershipGate } from '../membership/gate.ts'
import type { ProtocolLog } from '../wire/log.ts'
import type { ServedProtocol } from '../wire/serve.ts'
import type { Libp2p } from '@libp2p/interface'

export { RELAY_WINDOW_PROTOCOL }

const MAX_RELAY_WINDOW_MESSAGE_BYTES = 256
const WINDOW_ID = z.string().regex(/^[0-9a-f]{16}$/)
const Request = z.discriminatedUnion('t', [
  z.strictObject({ t: z.literal('open'), window: WINDOW_ID, until: z.number().int().nonnegative().max(2 ** 40) }),
  z.strictObject({ t: z.literal('close'), window: WINDOW_ID })
])
const Reply = z.strictObject({ t: z.literal('ok'), until: z.number().int().nonnegative().max(2 ** 40) })

export type RelayWindowGate = Pick<MembershipGate, 'allows' | 'openRelayWindow' | 'closeRelayWindow'>
export type RelayWindowNetwork = Pick<Libp2p, 'handle' | 'unhandle' | 'hangUp' | 'dial'>

/** Relay side: serves window requests from members (the gate refuses everyone else). */
export async function serveRelayWindows (network: RelayWindowNetwork, gate: RelayWindowGate, log: ProtocolLog): Promise<ServedProtocol> {
  return serveProtocol(network, RELAY_WINDOW_PROTOCOL, async (framed, { peer, signal }) => {
    const request = await framed.read(Request, { signal })
    const inviter = peer.toString()
    if (request.t === 'close') {
      gate.closeRelayWindow(inviter, request.window)
      await framed.write({ t: 'ok', until: 0 }, { signal })
      return
    }
    const until = gate.openRelayWindow(inviter, request.window, request.until * 1000)
    await framed.write({ t: 'ok', until: Math.floor(until / 1000) }, { signal })
  }, { log, gate, maxMessageBytes: MAX_RELAY_WINDOW_MESSAGE_BYTES, timeoutMs: 10_000, maxInboundStreams: 4 })
}

/**
 * Inviter side: asks `relay` to open (until > 0) or close (until = 0) window `id`. Returns the
 * window's end as the relay granted it, in milliseconds (0 after a close).
 */
export async function requestRelayWindow (network: Pick<Libp2p, 'dial'>, relay: string, id: string, until: number, options: { signal: AbortSignal }): Promise<number> {
  const connection = await network.dial(peerIdFromString(relay), { signal: options.signal })
  const framed = await openFramed(connection, RELAY_WINDOW_PROTOCOL, { signal: options.signal, maxMessageBytes: MAX_RELAY_WINDOW_MESSAGE_BYTES })
  try {
    await framed.write(until > 0 ? { t: 'open', window: id, until: Math.ceil(until / 1000) } : { t: 'close', window: id }, { signal: options.signal })
    const reply = await framed.read(Reply, { signal: options.signal })
    await framed.close({ signal: options.signal }).catch(() => {})
    return reply.until * 1000
  } catch (err) {
    framed.abort(err as Error)
    throw err
  }
}
