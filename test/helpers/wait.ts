// Waiting helpers: tests wait on events or on a condition, always with a timeout, never on a
// fixed sleep.

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeout'
}

export interface WaitOptions {
  timeoutMs?: number
  /** How often to re-check a condition that has no event of its own. */
  intervalMs?: number
  message?: string
}

/** Resolves with the first truthy value of `check`, re-checked until the timeout. */
export async function waitFor<T> (check: () => T | Promise<T>, options: WaitOptions = {}): Promise<NonNullable<T>> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const intervalMs = options.intervalMs ?? 25
  const deadline = Date.now() + timeoutMs
  let lastError: unknown
  for (;;) {
    try {
      const value = await check()
      if (value != null && value !== false) return value as NonNullable<T>
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : ''
      throw new WaitTimeoutError(`${options.message ?? 'condition not met'} within ${timeoutMs} ms${why}`)
    }
    await new Promise(resolve => setTimeout(resolve, intervalMs))
  }
}

/** Resolves with the first event of `type` on `target` that passes `filter`. */
export async function eventPromise<E extends Event = Event> (target: EventTarget, type: string, options: WaitOptions & { filter?: (event: E) => boolean } = {}): Promise<E> {
  const timeoutMs = options.timeoutMs ?? 20_000
  const { promise, resolve, reject } = Promise.withResolvers<E>()
  const listener = (event: Event): void => {
    if (options.filter == null || options.filter(event as E)) resolve(event as E)
  }
  target.addEventListener(type, listener)
  const timer = setTimeout(() => { reject(new WaitTimeoutError(`${options.message ?? `no "${type}" event`} within ${timeoutMs} ms`)) }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
    target.removeEventListener(type, listener)
  }
}

/** Collects a child process's stdout lines and resolves on the first that matches. */
export async function lineMatching (stream: NodeJS.ReadableStream, match: (line: string) => boolean, options: WaitOptions = {}): Promise<string> {
  // a node's ready line comes after its start, which on a loaded machine (CI runs two test
  // files at once, each with several nodes) can take well over half a minute
  const timeoutMs = options.timeoutMs ?? 120_000
  const { promise, resolve, reject } = Promise.withResolvers<string>()
  let buffer = ''
  const onData = (chunk: Buffer | string): void => {
    buffer += chunk.toString()
    let index: number
    while ((index = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, index)
      buffer = buffer.slice(index + 1)
      if (match(line)) resolve(line)
    }
  }
  const onEnd = (): void => { reject(new Error(`${options.message ?? 'stream'} ended before a matching line`)) }
  stream.on('data', onData)
  stream.once('end', onEnd)
  const timer = setTimeout(() => { reject(new WaitTimeoutError(`${options.message ?? 'no matching line'} within ${timeoutMs} ms`)) }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
    stream.off('data', onData)
    stream.off('end', onEnd)
  }
}
