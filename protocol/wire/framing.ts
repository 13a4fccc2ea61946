// Framing shared by every hive protocol.
//
// A frame is an unsigned LEB128 varint length followed by that many bytes of CBOR. Frames are
// bounded by a per-protocol maximum; the length prefix is checked before the body is read so an
// oversized frame costs the reader nothing. Every decoded message is validated against a zod
// schema (codec.ts) before any handler sees it.

import { Uint8ArrayList } from 'uint8arraylist'
import { decodeMessage, encodeMessage } from './codec.ts'
import { MessageTooLargeError, StreamClosedError, TruncatedFrameError } from './errors.ts'
import type { AbortOptions, Stream } from '@libp2p/interface'
import type { z } from 'zod'

/** Default upper bound of one frame's body. Protocols carrying bulk data set their own. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

/** Encodes a non-negative integer as an unsigned LEB128 varint. */
export function encodeVarint (value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint out of range: ${value}`)
  const out: number[] = []
  let v = value
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80)
    v = Math.floor(v / 0x80)
  }
  out.push(v)
  return Uint8Array.from(out)
}

/** Bytes needed for the varint of `max`: a longer prefix is refused without reading further. */
function varintLength (max: number): number {
  return encodeVarint(max).byteLength
}

/** Encodes a message as one frame: varint length then CBOR body. */
export function encodeFrame (message: unknown, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES): Uint8Array {
  const body = encodeMessage(message)
  if (body.byteLength > maxMessageBytes) {
    throw new MessageTooLargeError(`message of ${body.byteLength} bytes exceeds the limit of ${maxMessageBytes}`)
  }
  const prefix = encodeVarint(body.byteLength)
  const frame = new Uint8Array(prefix.byteLength + body.byteLength)
  frame.set(prefix, 0)
  frame.set(body, prefix.byteLength)
  return frame
}

/**
 * Incremental frame decoder over any chunked byte source. Kept separate from the stream so the
 * same logic serves libp2p streams and tests that feed bytes by hand.
 */
export class FrameDecoder {
  private readonly buffer = new Uint8ArrayList()
  private readonly maxMessageBytes: number
  private readonly maxPrefixBytes: number

  constructor (maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES) {
    this.maxMessageBytes = maxMessageBytes
    this.maxPrefixBytes = varintLength(maxMessageBytes)
  }

  push (chunk: Uint8Array | Uint8ArrayList): void {
    this.buffer.append(chunk)
  }

  /** Bytes held that do not yet form a whole frame. */
  get pending (): number {
    return this.buffer.byteLength
  }

  /** The next whole frame body, or undefined when more bytes are needed. */
  next (): Uint8Array | undefined {
    let length = 0
    let scale = 1
    let prefixBytes = 0
    for (;;) {
      if (prefixBytes >= this.buffer.byteLength) return undefined
      if (prefixBytes >= this.maxPrefixBytes) {
        throw new MessageTooLargeError(`frame length prefix longer than ${this.maxPrefixBytes} bytes`)
      }
      const byte = this.buffer.get(prefixBytes)
      prefixBytes++
      length += (byte & 0x7f) * scale
      scale *= 0x80
      if ((byte & 0x80) === 0) break
    }
    if (length > this.maxMessageBytes) {
      throw new MessageTooLargeError(`frame of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`)
    }
    if (this.buffer.byteLength < prefixBytes + length) return undefined
    const body = this.buffer.subarray(prefixBytes, prefixBytes + length)
    this.buffer.consume(prefixBytes + length)
    return body
  }
}

export interface FramedStreamOptions {
  maxMessageBytes?: number
}

/**
 * A libp2p v3 stream seen as a sequence of validated messages. Reading pulls from the stream's
 * async iterator; writing respects backpressure by awaiting `onDrain` when `send` says so.
 */
export class FramedStream {
  readonly stream: Stream
  private readonly decoder: FrameDecoder
  private readonly maxMessageBytes: number
  private readonly source: AsyncIterator<Uint8Array | Uint8ArrayList>
  private ended = false

  constructor (stream: Stream, options: FramedStreamOptions = {}) {
    this.stream = stream
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES
    this.decoder = new FrameDecoder(this.maxMessageBytes)
    this.source = stream[Symbol.asyncIterator]()
  }

  /** The next frame body, or null when the remote closed cleanly between frames. */
  async readFrame (options: AbortOptions = {}): Promise<Uint8Array | null> {
    for (;;) {
      const frame = this.decoder.next()
      if (frame != null) return frame
      if (this.ended) {
        if (this.decoder.pending > 0) {
          throw new TruncatedFrameError(`stream ended inside a frame (${this.decoder.pending} bytes pending)`)
        }
        return null
      }
      options.signal?.throwIfAborted()
      const result = await raceAbort(this.source.next(), options.signal)
      if (result.done === true) {
        this.ended = true
      } else {
        this.decoder.push(result.value)
      }
    }
  }

  /** Reads and validates one message; a clean end of stream here is an error. */
  async read<S extends z.ZodType> (schema: S, options: AbortOptions = {}): Promise<z.infer<S>> {
    const frame = await this.readFrame(options)
    if (frame == null) throw new StreamClosedError('the remote closed the stream before sending a message')
    return decodeMessage(frame, schema)
  }

  /** Reads and validates one message, or null at a clean end of stream. */
  async readOrEnd<S extends z.ZodType> (schema: S, options: AbortOptions = {}): Promise<z.infer<S> | null> {
    const frame = await this.readFrame(options)
    if (frame == null) return null
    return decodeMessage(frame, schema)
  }

  /** Iterates validated messages until the remote closes. */
  async * messages<S extends z.ZodType> (schema: S, options: AbortOptions = {}): AsyncGenerator<z.infer<S>> {
    for (;;) {
      const message = await this.readOrEnd(schema, options)
      if (message == null) return
      yield message
    }
  }

  async write (message: unknown, options: AbortOptions = {}): Promise<void> {
    await this.writeRaw(encodeFrame(message, this.maxMessageBytes), options)
  }

  /** Writes several messages as one send, so small ones share a muxer frame and an encrypted write. */
  async writeAll (messages: unknown[], options: AbortOptions = {}): Promise<void> {
    const frames = messages.map(m => encodeFrame(m, this.maxMessageBytes))
    if (frames.length === 1) return await this.writeRaw(frames[0]!, options)
    const bytes = new Uint8Array(frames.reduce((n, f) => n + f.byteLength, 0))
    let at = 0
    for (const f of frames) { bytes.set(f, at); at += f.byteLength }
    await this.writeRaw(bytes, options)
  }

  /** Sends bytes as they are (tests use this to send malformed frames). */
  async writeRaw (bytes: Uint8Array, options: AbortOptions = {}): Promise<void> {
    if (!this.stream.send(bytes)) {
      await this.stream.onDrain(options)
    }
  }

  async close (options: AbortOptions = {}): Promise<void> {
    await this.stream.close(options)
  }

  abort (err: Error): void {
    this.stream.abort(err)
  }
}

async function raceAbort<T> (promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal == null) return promise
  signal.throwIfAborted()
  const { promise: aborted, reject } = Promise.withResolvers<never>()
  const onAbort = (): void => { reject(signal.reason) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}
