// A bounded HTTP GET, for asking a service on the device (Ollama's model list) at start and
// now and then. node:http, not `fetch`: a node's first `fetch` loads Node's bundled HTTP client
// (undici), which then stays resident, only to ask this; node:http is loaded anyway (the API
// server). Taken with process.getBuiltinModule, never an ESM import: building node:http's ESM
// namespace reads its WebSocket export, which loads undici just the same. No redirect is
// followed.

export interface HttpAnswer {
  status: number
  /** The body as UTF-8; undefined when it was longer than `maxBytes` (reading stopped there). */
  text?: string
}

export async function httpGet (url: string | URL, options: { signal?: AbortSignal, maxBytes: number, accept?: string }): Promise<HttpAnswer> {
  const target = new URL(url)
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`${target.protocol} is not http or https`)
  const { request } = target.protocol === 'https:' ? process.getBuiltinModule('node:https') : process.getBuiltinModule('node:http')
  options.signal?.throwIfAborted()
  return new Promise((resolve, reject) => {
    const req = request(target, { method: 'GET', ...(options.signal != null ? { signal: options.signal } : {}), headers: { accept: options.accept ?? 'application/json' } }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (chunk: Buffer) => {
        size += chunk.byteLength
        if (size > options.maxBytes) {
          req.destroy()
          resolve({ status: res.statusCode ?? 0 })
          return
        }
        chunks.push(chunk)
      })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}
