// Storing DHT records straight on chosen peers. kad-dht's own put first walks the network for
// the k closest peers to the key (a FIND_NODE to each peer it learns of, whose answers go into
// the peer store) and then sends each of them a PUT_VALUE. In a hive with fewer members than k,
// every member connected is among the k closest to any key, so the walk finds nothing the
// caller does not know already: `putRecords` sends the PUT_VALUE alone, the same message kad-dht
// sends (Kademlia's `Message` with a `Record`, below), to each peer, several records on one
// stream, since kad-dht answers every message of a stream in turn. The receiver checks and
// stores a record exactly as it does one from a walk, and `get` finds it the same way.
//
// Bytes (protobuf, as in the libp2p Kademlia spec): a frame is a varint length then a
// `Message { type = 1: PUT_VALUE (0), key = 2: bytes, record = 3: Record }`, with
// `Record { key = 1: bytes, value = 2: bytes, timeReceived = 5: RFC 3339 string }`. The peer
// answers each with a message echoing it, read here only as "stored".

import { encodeVarint, FramedStream } from './framing.ts'
import type { ProtocolHost } from './serve.ts'
import type { AbortOptions, PeerId } from '@libp2p/interface'

/** Kademlia's message type for a put. */
const PUT_VALUE = 0
/** kad-dht's bucket size: the number of closest peers a put reaches. */
export const KAD_K = 20

function field (number: number, bytes: Uint8Array): Uint8Array[] {
  return [encodeVarint((number << 3) | 2), encodeVarint(bytes.byteLength), bytes]
}

function concat (parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.byteLength
  }
  return out
}

/** RFC 3339 with nanoseconds, as kad-dht writes a record's time. */
function rfc3339 (time: Date): string {
  return time.toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z')
}

/** The PUT_VALUE message for a record, without its length prefix. */
export function encodePutValue (key: Uint8Array, value: Uint8Array, time = new Date()): Uint8Array {
  const record = concat([...field(1, key), ...field(2, value), ...field(5, new TextEncoder().encode(rfc3339(time)))])
  return concat([encodeVarint(1 << 3), encodeVarint(PUT_VALUE), ...field(2, key), ...field(3, record)])
}

export interface PutRecordsOptions extends AbortOptions {
  protocol: string
  /** The largest answer read back (an echo of the largest record, plus room). */
  maxMessageBytes: number
}

/**
 * Stores records on one peer over one stream: each PUT_VALUE in turn, each answered before the
 * next. Resolves to how many the peer stored before it refused one or the stream failed; throws
 * when it stored none.
 */
export async function putRecords (host: Pick<ProtocolHost, 'dialProtocol'>, peer: PeerId, records: Array<{ key: Uint8Array, value: Uint8Array }>, options: PutRecordsOptions): Promise<number> {
  const stream = new FramedStream(await host.dialProtocol(peer, options.protocol, { signal: options.signal }), { maxMessageBytes: options.maxMessageBytes })
  let stored = 0
  try {
    for (const { key, value } of records) {
      const message = encodePutValue(key, value)
      await stream.writeRaw(concat([encodeVarint(message.byteLength), message]), options)
      // a peer refusing a record resets the stream: the records after it are not sent
      if (await stream.readFrame(options) == null) break
      stored++
    }
    await stream.close(options).catch(() => {})
  } catch (err) {
    stream.abort(err instanceof Error ? err : new Error(String(err)))
    if (stored === 0) throw err
  }
  return stored
}
