// Reading a model server's HTTP answers within bounds: whole bodies up to RESPONSE_MAX_BYTES,
// streamed bodies line by line (NDJSON, SSE), each line up to STREAM_LINE_MAX_BYTES. A server
// that sends more is treated as broken (`LlmUnavailable`), never buffered without end.

import { LlmUnavailableError } from '../errors.ts'
import { RESPONSE_MAX_BYTES, STREAM_LINE_MAX_BYTES } from './limits.ts'

/** Yields the body's lines (without the line ending), bounded per line and in total. */
export async function * boundedLines (body: ReadableStream<Uint8Array> | null, what: string, bounds: { lineBytes?: number, totalBytes?: number } = {}): AsyncGenerator<string> {
  if (body == null) return
  const lineBytes = bounds.lineBytes ?? STREAM_LINE_MAX_BYTES
  const totalBytes = bounds.totalBytes ?? RESPONSE_MAX_BYTES
  const decoder = new TextDecoder()
  let pending: Uint8Array[] = []
  let pendingBytes = 0
  let total = 0
  const take = (): string => {
    const joined = new Uint8Array(pendingBytes)
    let at = 0
    for (const part of pending) { joined.set(part, at); at += part.byteLength }
    pending = []
    pendingBytes = 0
    const line = decoder.decode(joined)
    return line.endsWith('\r') ? line.slice(0, -1) : line
  }
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength
    if (total > totalBytes) throw new LlmUnavailableError(`${what} sent more than ${totalBytes} bytes: it is misbehaving`)
    let start = 0
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
      pending.push(chunk.subarray(start, i))
      pendingBytes += i - start
      if (pendingBytes > lineBytes) throw new LlmUnavailableError(`${what} sent a line longer than ${lineBytes} bytes: it is misbehaving`)
      yield take()
      start = i + 1
    }
    if (start < chunk.byteLength) {
      pending.push(chunk.slice(start))
      pendingBytes += chunk.byteLength - start
      if (pendingBytes > lineBytes) throw new LlmUnavailableError(`${what} sent a line longer than ${lineBytes} bytes: it is misbehaving`)
    }
  }
  if (pendingBytes > 0) yield take()
}

/** Reads a whole body as text, up to `maxBytes`. */
export async function boundedText (response: Response, what: string, maxBytes = RESPONSE_MAX_BYTES): Promise<string> {
  const parts: string[] = []
  for await (const line of boundedLines(response.body, what, { lineBytes: maxBytes, totalBytes: maxBytes })) parts.push(line)
  return parts.join('\n')
}

/** Parses JSON from a server, mapping garbage to `LlmUnavailable`. */
export function parseJson (text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new LlmUnavailableError(`${what} sent something that is not JSON: ${JSON.stringify(text.slice(0, 80))}`)
  }
}

/** Whether `err` is the abort of `signal` (fetch and stream readers throw it in several forms). */
export function isAbortOf (err: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted !== true) return false
  return err === signal.reason || (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError'))
}

/** `fetch`, with network failures (refused, reset, DNS) as `LlmUnavailable` naming the server. */
export async function fetchOrUnavailable (url: string, init: RequestInit, what: string, hint: string): Promise<Response> {
  try {
    return await fetch(url, init)
  } catch (err) {
    if (init.signal?.aborted === true) throw err
    const cause = (err as { cause?: { code?: string, message?: string } }).cause
    const why = cause?.code ?? cause?.message ?? (err as Error).message
    throw new LlmUnavailableError(`${what} does not answer (${why}): ${hint}`, { cause: err })
  }
}
