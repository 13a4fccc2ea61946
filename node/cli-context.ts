// What every CLI command needs: the data directory, a client for the running node's API, and
// printing in human or JSON form.

import { statSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { z } from 'zod'
import { dataPaths, resolveDataDir } from './config.ts'
import { ApiError, NodeNotReadyError, NodeNotRunningError } from './errors.ts'
import { readLock } from './lock.ts'

/** A failed API call: the node answered with an error (the `ApiError` it sent, as the CLI sees it). */
export class ApiRequestError extends ApiError {}

/** Wrong use of the command line (exit code 2). */
export class UsageError extends Error {
  override name = 'UsageError'
}

/**
 * Reads a file the user named on the command line. A missing, unreadable or wrong kind of file is
 * a usage error that names the path as given, where it was looked for, and what was expected,
 * instead of the system's ENOENT/EISDIR/EACCES text.
 */
export async function readUserFile (path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const where = resolve(path) === path ? '' : ` (looked for ${resolve(path)})`
    if (code === 'ENOENT') throw new UsageError(`no file ${path}${where}: give the path of ${what}`)
    if (code === 'EISDIR') throw new UsageError(`${path} is a folder: give the path of ${what}`)
    if (code === 'EACCES' || code === 'EPERM') throw new UsageError(`cannot read ${path}: permission denied (it should be ${what})`)
    throw err
  }
}

/** The data directory must be a directory, or not exist yet (a start creates it). */
function checkDataDir (dir: string): string {
  let isDirectory: boolean | undefined
  try {
    isDirectory = statSync(dir).isDirectory()
  } catch {
    return dir
  }
  if (!isDirectory) throw new UsageError(`the data directory ${dir} is a file, not a folder: give --data a folder (it is created if missing)`)
  return dir
}

const ApiFileSchema = z.object({ url: z.string().url(), port: z.number(), pid: z.number(), peerId: z.string() })
const ErrorBody = z.object({ error: z.object({ code: z.string(), message: z.string() }) })
const StreamEventSchema = z.object({ id: z.number(), type: z.string(), at: z.number(), data: z.record(z.string(), z.unknown()) })

/** One event of the node's stream, as the CLI reads it (README › Event stream lists the types). */
export interface StreamEvent {
  id: number
  type: string
  at: number
  data: Record<string, unknown> & { task?: string }
}

export class ApiClient {
  readonly dataDir: string
  private endpoint?: { url: string, token: string }

  constructor (dataDir: string) {
    this.dataDir = dataDir
  }

  private async locate (): Promise<{ url: string, token: string }> {
    if (this.endpoint != null) return this.endpoint
    const paths = dataPaths(this.dataDir)
    let file: z.infer<typeof ApiFileSchema>
    let token: string
    try {
      file = ApiFileSchema.parse(JSON.parse(await readFile(paths.api, 'utf8')))
      token = (await readFile(paths.token, 'utf8')).trim()
    } catch {
      throw await this.notAnswering()
    }
    this.endpoint = { url: file.url, token }
    return this.endpoint
  }

  /** Why the API does not answer: a node starting or stopping holds the lock; else none runs. */
  private async notAnswering (detail?: string): Promise<Error> {
    const owner = await readLock(dataPaths(this.dataDir).lock)
    if (owner != null && owner.state !== 'running') return new NodeNotReadyError(owner.pid, owner.state, this.dataDir)
    return new NodeNotRunningError(this.dataDir, detail)
  }

  async request<T = unknown> (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown, options: { signal?: AbortSignal } = {}): Promise<T> {
    const { url, token } = await this.locate()
    let response: Response
    try {
      response = await fetch(url + path, {
        method,
        headers: {
          ...(method !== 'GET' ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': 'application/json' } : {})
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: options.signal
      })
    } catch (err) {
      if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') throw err
      throw await this.notAnswering(`its API at ${url} does not answer`)
    }
    const text = await response.text()
    let json: unknown
    try {
      json = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      throw new ApiRequestError(response.status, 'BadResponse', `the node answered ${response.status} with a body that is not JSON`)
    }
    if (!response.ok) throw refusal(response.status, json)
    return json as T
  }

  /** POSTs and yields each line of an NDJSON answer as it arrives. */
  async * postLines (path: string, body: unknown, options: { signal?: AbortSignal } = {}): AsyncGenerator<unknown> {
    const { url, token } = await this.locate()
    let response: Response
    try {
      response = await fetch(url + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: options.signal
      })
    } catch (err) {
      if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') throw err
      throw new NodeNotRunningError(this.dataDir, `its API at ${url} does not answer`)
    }
    if (!response.ok || response.body == null) throw refusal(response.status, await response.json().catch(() => undefined))
    for await (const text of pieces(response.body as unknown as AsyncIterable<Uint8Array>, '\n')) {
      if (text.trim() !== '') yield JSON.parse(text)
    }
  }

  /**
   * Follows the node's event stream (`GET /events`): yields each event as it arrives, starting
   * with `hello`, and returns when the node ends the stream (it stopped).
   */
  async * events (options: { signal?: AbortSignal } = {}): AsyncGenerator<StreamEvent> {
    const { url, token } = await this.locate()
    let response: Response
    try {
      response = await fetch(url + '/events', { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, signal: options.signal })
    } catch (err) {
      if ((err as Error).name === 'AbortError' || (err as Error).name === 'TimeoutError') throw err
      throw await this.notAnswering(`its API at ${url} does not answer`)
    }
    if (!response.ok || response.body == null) throw refusal(response.status, await response.json().catch(() => undefined))
    try {
      for await (const block of pieces(response.body as unknown as AsyncIterable<Uint8Array>, '\n\n')) {
        // comment lines (heartbeats) and the other fields are skipped; the data line is the event
        const data = block.split('\n').filter(l => l.startsWith('data:')).map(l => l.slice(5).trimStart()).join('\n')
        if (data === '') continue
        let parsed
        try {
          parsed = StreamEventSchema.safeParse(JSON.parse(data))
        } catch {
          continue
        }
        if (parsed.success) yield parsed.data as StreamEvent
      }
    } catch (err) {
      // the node going away mid-stream ends the stream, as a stop does
      if (options.signal?.aborted === true) throw err
    }
  }

  async get<T = unknown> (path: string, options?: { signal?: AbortSignal }): Promise<T> {
    return this.request<T>('GET', path, undefined, options)
  }

  async post<T = unknown> (path: string, body: unknown = {}, options?: { signal?: AbortSignal }): Promise<T> {
    return this.request<T>('POST', path, body, options)
  }
}

/** The node's refusal of a request: its error in the API's shape, or the bare status. */
function refusal (status: number, body: unknown): ApiRequestError {
  const parsed = ErrorBody.safeParse(body)
  if (parsed.success) return new ApiRequestError(status, parsed.data.error.code, parsed.data.error.message)
  return new ApiRequestError(status, 'HttpError', `the node answered ${status}`)
}

/** A streamed body's text cut at each `separator`, each piece as soon as it is complete. */
async function * pieces (body: AsyncIterable<Uint8Array>, separator: string): AsyncGenerator<string> {
  const decoder = new TextDecoder()
  let buffer = ''
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true })
    let end
    while ((end = buffer.indexOf(separator)) >= 0) {
      yield buffer.slice(0, end)
      buffer = buffer.slice(end + separator.length)
    }
  }
}

/** Options every command accepts: the program-wide `--data`, and `--json` where it prints data. */
export interface CommonOptions {
  data?: string
  json?: boolean
}

export interface CliContext {
  dataDir: (options: CommonOptions) => string
  api: (options: CommonOptions) => ApiClient
  /** Prints `json` as JSON with --json, else the human text. */
  print: (options: CommonOptions, human: string | (() => string), json: unknown) => void
  out: (text: string) => void
  err: (text: string) => void
  /** The environment the command was started with. */
  env: NodeJS.ProcessEnv
  /** Colour codes may be written: stdout is a terminal, NO_COLOR is unset and TERM is not dumb. */
  colour: boolean
  /** stdout is a terminal. */
  tty: boolean
}

export interface CliIo {
  out: (text: string) => void
  err: (text: string) => void
  env: NodeJS.ProcessEnv
  /** stdout is a terminal (default: false). */
  tty?: boolean
}

export function createCliContext (io: CliIo): CliContext {
  const dataDir = (options: CommonOptions): string => checkDataDir(resolveDataDir(options.data, io.env))
  return {
    dataDir,
    api: (options) => new ApiClient(dataDir(options)),
    print: (options, human, json) => {
      if (options.json === true) io.out(JSON.stringify(json, null, 2) + '\n')
      else io.out((typeof human === 'function' ? human() : human) + '\n')
    },
    out: io.out,
    err: io.err,
    env: io.env,
    colour: io.tty === true && (io.env.NO_COLOR ?? '') === '' && io.env.TERM !== 'dumb',
    tty: io.tty === true
  }
}

/**
 * The one way human output shows a moment: local time, `YYYY-MM-DD HH:MM:SS`, sortable and
 * unambiguous. JSON output keeps ISO 8601 in UTC.
 */
export function formatTime (ms: number): string {
  if (!Number.isFinite(ms) || ms <= 0) return '-'
  const d = new Date(ms)
  const two = (n: number): string => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
}

/** Renders rows as an aligned text table. */
export function table (headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? '').length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()
  return [line(headers), ...rows.map(line)].join('\n')
}
