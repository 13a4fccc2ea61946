// The `hive:agent/http` host interface: origins an agent may be granted, the addresses no agent
// reaches unless an origin names them, and the request itself, made by the host.
//
// The rules, in the order a request meets them:
// 1. The URL's origin (scheme, host, port) must match an origin the run holds: the manifest asked
//    for it, the task granted it, and this device's policy does not refuse it. Otherwise the
//    request is refused before anything is resolved or opened (`host-not-granted`).
// 2. The host is resolved here, once. Each answer is checked: loopback, unspecified, link-local,
//    private, unique-local, carrier-grade NAT, multicast and reserved ranges (IPv4, IPv6 and IPv4
//    inside IPv6) are refused unless the matching origin names that very address as its host
//    (`http://127.0.0.1:8080` permits 127.0.0.1; a name that resolves there does not).
// 3. The connection goes to the checked address itself (TLS still verifies the name), so a second
//    lookup can never swap it for another one (DNS rebinding).
// 4. A redirect is not followed by the HTTP client: each hop is a new request that meets 1–3
//    again and counts against the run's requests.
// 5. A body larger than the bound is cut off and the request fails (`too-large`); so does one that
//    takes longer than its time.

import { isIP } from 'node:net'
import { lookup } from 'node:dns/promises'
import type { IncomingMessage } from 'node:http'

/** Bounds of the http interface, stated once: the manifest, the host and the README use these. */
export const NET_LIMITS = {
  /** Origins a manifest may name. */
  maxOrigins: 32,
  maxOriginChars: 300,
  maxUrlChars: 8192,
  /** Largest response body handed to the agent, and the default when a request names none. */
  maxResponseBytes: 4 * 1024 * 1024,
  maxRequestBodyBytes: 1024 * 1024,
  /** Time one request may take, redirects included, and the default when a request names none. */
  maxTimeoutMs: 30_000,
  /** Requests one run may make; each redirect hop counts as one. */
  maxRequestsPerRun: 64,
  maxRedirects: 5,
  /** Headers of a request, and of a response as the agent gets it: at most 64, names and values at most 8 KiB together. */
  maxHeaders: 64,
  maxHeaderChars: 8192,
  /** Longest error message handed to the agent. */
  maxErrorChars: 1000
} as const

/** A `net:` permission names one origin: `net:https://api.example.org`, `net:http://127.0.0.1:8080`. */
export const NET_PREFIX = 'net:'

export interface Origin {
  scheme: 'http' | 'https'
  /** Lowercase host name or IP address (IPv6 without brackets); without the `*.` of a wildcard. */
  host: string
  port: number
  /** `*.example.org`: any sub-domain of `host`, not `host` itself. */
  wildcard: boolean
  /** The origin as written canonically: `https://*.example.org`, `http://[::1]:8080`. */
  text: string
}

const DEFAULT_PORT = { http: 80, https: 443 } as const
const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

function hostText (host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host
}

function originText (scheme: Origin['scheme'], host: string, port: number, wildcard: boolean): string {
  return `${scheme}://${wildcard ? '*.' : ''}${hostText(host)}${port === DEFAULT_PORT[scheme] ? '' : `:${port}`}`
}

/** Parses an origin (`scheme://host[:port]`, nothing after it); throws a message for people. */
export function parseOrigin (text: string): Origin {
  if (text.length > NET_LIMITS.maxOriginChars) throw new Error(`an origin is at most ${NET_LIMITS.maxOriginChars} characters`)
  const m = /^(https?):\/\/(\*\.)?(\[[0-9a-fA-F:.]+\]|[^/:?#@[\]]+)(?::(\d{1,5}))?\/?$/i.exec(text)
  if (m === null) throw new Error(`"${text}" is not an origin: write scheme://host or scheme://host:port (http or https, no path), e.g. https://api.example.org`)
  const scheme = (m[1] as string).toLowerCase() as Origin['scheme']
  const wildcard = m[2] !== undefined
  let host = (m[3] as string).toLowerCase()
  if (host.startsWith('[')) host = host.slice(1, -1)
  const port = m[4] !== undefined ? Number(m[4]) : DEFAULT_PORT[scheme]
  if (port < 1 || port > 65535) throw new Error(`"${text}": the port must be 1 to 65535`)
  const ip = isIP(host)
  if (ip === 0) {
    const labels = host.split('.')
    if (!labels.every(l => LABEL.test(l))) throw new Error(`"${text}": the host must be a DNS name (letters, digits, "-", dots) or an IP address`)
    if (wildcard && labels.length < 2) throw new Error(`"${text}": a wildcard stands for the sub-domains of a domain, as in https://*.example.org`)
  } else if (wildcard) {
    throw new Error(`"${text}": a wildcard stands only for sub-domains, never in an IP address`)
  }
  if (ip === 6) host = canonicalIp(host)
  return { scheme, host, port, wildcard, text: originText(scheme, host, port, wildcard) }
}

/** The origins a permission list names (`net:` entries), parsed; invalid ones throw. */
export function netOrigins (permissions: readonly string[]): Origin[] {
  return permissions.filter(p => p.startsWith(NET_PREFIX)).map(p => parseOrigin(p.slice(NET_PREFIX.length)))
}

/** Whether a URL's scheme, host and port fall under `origin`. */
export function originMatches (origin: Origin, url: { scheme: string, host: string, port: number }): boolean {
  if (origin.scheme !== url.scheme || origin.port !== url.port) return false
  return origin.wildcard ? url.host.endsWith(`.${origin.host}`) : url.host === origin.host
}

// ---- addresses ----

/** An IPv6 address as 8 numbers, or undefined. */
function ipv6Groups (text: string): number[] | undefined {
  let s = text
  const zone = s.indexOf('%')
  if (zone >= 0) s = s.slice(0, zone)
  // a trailing dotted IPv4 stands for the last two groups
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(s)
  if (dotted !== null) {
    const v4 = ipv4Number(dotted[1] as string)
    if (v4 === undefined) return undefined
    s = s.slice(0, dotted.index) + `${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`
  }
  const parts = s.split('::')
  if (parts.length > 2) return undefined
  const head = parts[0] === '' ? [] : (parts[0] as string).split(':')
  const rest = parts.length === 2 ? (parts[1] === '' ? [] : (parts[1] as string).split(':')) : []
  const fill = parts.length === 2 ? 8 - head.length - rest.length : 0
  if (fill < 0 || (parts.length === 1 && head.length !== 8)) return undefined
  const groups = [...head, ...Array<string>(fill).fill('0'), ...rest].map(g => /^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)
  if (groups.some(Number.isNaN)) return undefined
  return groups
}

function ipv4Number (text: string): number | undefined {
  const parts = text.split('.')
  if (parts.length !== 4 || !parts.every(p => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return undefined
  return parts.reduce((n, p) => n * 256 + Number(p), 0)
}

function ipv4Text (n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.')
}

/** An IP address in one spelling: IPv4 dotted, IPv6 lowercase and compressed; IPv4-mapped IPv6 as its IPv4. */
export function canonicalIp (text: string): string {
  if (isIP(text) === 4) return ipv4Text(ipv4Number(text) as number)
  const g = ipv6Groups(text)
  if (g === undefined) return text.toLowerCase()
  const embedded = embeddedIpv4(g)
  if (embedded !== undefined) return ipv4Text(embedded)
  // the longest run of zeros becomes ::
  let best = -1; let bestLen = 0
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen && j - i > 1) { best = i; bestLen = j - i }
    i = j
  }
  const hex = g.map(n => n.toString(16))
  if (best < 0) return hex.join(':')
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or IPv4-compatible (::a.b.c.d) IPv6 address. */
function embeddedIpv4 (g: number[]): number | undefined {
  if (g.slice(0, 5).some(n => n !== 0)) return undefined
  const low = ((g[6] as number) << 16 >>> 0) + (g[7] as number)
  if (g[5] === 0xffff) return low
  // ::a.b.c.d (deprecated, but a stack may still route it as IPv4); :: and ::1 are IPv6's own
  if (g[5] === 0 && (g[6] as number) !== 0) return low
  return undefined
}

const V4_RANGES: Array<[string, number, string]> = [
  ['0.0.0.0', 8, 'unspecified ("this network")'],
  ['10.0.0.0', 8, 'private'],
  ['100.64.0.0', 10, 'carrier-grade NAT'],
  ['127.0.0.0', 8, 'loopback'],
  ['169.254.0.0', 16, 'link-local'],
  ['172.16.0.0', 12, 'private'],
  ['192.0.0.0', 24, 'IETF protocol assignments'],
  ['192.0.2.0', 24, 'documentation'],
  ['192.88.99.0', 24, '6to4 relay'],
  ['192.168.0.0', 16, 'private'],
  ['198.18.0.0', 15, 'benchmarking'],
  ['198.51.100.0', 24, 'documentation'],
  ['203.0.113.0', 24, 'documentation'],
  ['224.0.0.0', 4, 'multicast'],
  ['240.0.0.0', 4, 'reserved']
]

/**
 * Why an address is not a public one (loopback, private, link-local, ...), or undefined for a
 * public address. IPv4 inside IPv6 (mapped, compatible, NAT64, 6to4) is judged as the IPv4.
 */
export function addressKind (address: string): string | undefined {
  const v = isIP(address)
  if (v === 4) {
    const n = ipv4Number(address) as number
    for (const [base, bits, kind] of V4_RANGES) {
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0
      if (((n & mask) >>> 0) === (ipv4Number(base) as number)) return kind
    }
    return undefined
  }
  if (v !== 6) return 'not an IP address'
  const g = ipv6Groups(address)
  if (g === undefined) return 'not an IP address'
  const embedded = embeddedIpv4(g)
  if (embedded !== undefined) return addressKind(ipv4Text(embedded))
  if (g.every(n => n === 0)) return 'unspecified'
  if (g.slice(0, 7).every(n => n === 0) && g[7] === 1) return 'loopback'
  const first = g[0] as number
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address a gateway will reach
  if (first === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every(n => n === 0)) return addressKind(ipv4Text(((g[6] as number) << 16 >>> 0) + (g[7] as number)))
  if (first === 0x2002) return addressKind(ipv4Text(((g[1] as number) << 16 >>> 0) + (g[2] as number))) ?? undefined
  if ((first & 0xfe00) === 0xfc00) return 'unique-local (private)'
  if ((first & 0xffc0) === 0xfe80) return 'link-local'
  if ((first & 0xffc0) === 0xfec0) return 'site-local (private)'
  if ((first & 0xff00) === 0xff00) return 'multicast'
  if (first === 0x2001 && g[1] === 0x0db8) return 'documentation'
  if (first === 0x100 && g.slice(1, 4).every(n => n === 0)) return 'discard-only'
  return undefined
}

// ---- the request ----

export type NetErrorCase = 'not-permitted' | 'host-not-granted' | 'timeout' | 'too-large' | 'connection-failed' | 'invalid-input'

/** An error as the agent receives it (jco's shape of a WIT variant). */
export interface WitNetError {
  tag: NetErrorCase
  val: string
}

export function netError (tag: NetErrorCase, message: string): WitNetError {
  return { tag, val: message.length > NET_LIMITS.maxErrorChars ? message.slice(0, NET_LIMITS.maxErrorChars) + '…' : message }
}

/** Resolves a host name to its addresses (the node's resolver; tests hand in their own). */
export type NetResolver = (host: string, options: { signal: AbortSignal }) => Promise<Array<{ address: string }>>

export const systemResolver: NetResolver = async (host) => await lookup(host, { all: true, verbatim: true })

export interface NetRequest {
  method: string
  url: string
  headers: Array<{ name: string, value: string }>
  body: Uint8Array
  timeoutMs?: number
  maxBytes?: number
}

export interface NetResponse {
  status: number
  headers: Array<{ name: string, value: string }>
  body: Uint8Array
}

export interface NetRunInit {
  /** The origins this run holds. */
  origins: readonly Origin[]
  resolve?: NetResolver
  maxRequests?: number
}

/** The origins a run reached and how many requests each took (redirect hops included). */
export interface NetRunReport {
  requests: number
  origins: Array<{ origin: string, requests: number }>
}

export interface NetRun {
  request: (req: NetRequest, signal: AbortSignal) => Promise<{ ok: true, value: NetResponse } | { ok: false, error: WitNetError }>
  report: () => NetRunReport
}

const METHOD = /^[A-Z]{1,16}$/
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/
/** Headers the host sets itself; an agent's are refused. */
const HOST_HEADERS = new Set(['host', 'connection', 'content-length', 'transfer-encoding', 'keep-alive', 'upgrade', 'te', 'trailer', 'proxy-connection', 'expect'])
/** Headers that carry credentials: dropped when a redirect leaves the origin. */
const CREDENTIALS = new Set(['authorization', 'cookie', 'proxy-authorization'])

class Refusal extends Error {
  readonly error: WitNetError
  constructor (error: WitNetError) {
    super(error.val)
    this.error = error
  }
}

function refuse (tag: NetErrorCase, message: string): never {
  throw new Refusal(netError(tag, message))
}

interface Target { url: URL, scheme: 'http' | 'https', host: string, port: number }

function target (text: string): Target {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    refuse('invalid-input', `"${text.slice(0, 200)}" is not an absolute URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') refuse('invalid-input', `only http and https URLs can be requested, not ${url.protocol}`)
  if (url.username !== '' || url.password !== '') refuse('invalid-input', 'a URL must not carry a user name or password; send an authorization header instead')
  const scheme = url.protocol === 'https:' ? 'https' : 'http'
  let host = url.hostname.toLowerCase()
  if (host.startsWith('[')) host = host.slice(1, -1)
  if (isIP(host) !== 0) host = canonicalIp(host)
  const port = url.port !== '' ? Number(url.port) : DEFAULT_PORT[scheme]
  return { url, scheme, host, port }
}

/** One run's requests: its origins, its count, and the report for the ledger. */
export function createNetRun (init: NetRunInit): NetRun {
  const resolve = init.resolve ?? systemResolver
  const maxRequests = init.maxRequests ?? NET_LIMITS.maxRequestsPerRun
  let requests = 0
  const perOrigin = new Map<string, number>()

  function granted (t: Target): Origin {
    // an exact origin first: it may name a private address a wildcard never does
    const found = init.origins.find(o => !o.wildcard && originMatches(o, t)) ?? init.origins.find(o => originMatches(o, t))
    if (found === undefined) {
      const here = originText(t.scheme, t.host, t.port, false)
      refuse('host-not-granted', `${here} is not granted to this run (it holds ${init.origins.length > 0 ? init.origins.map(o => o.text).join(', ') : 'no origin'}); add "net:${here}" to the agent's manifest permissions and grant it in the task`)
    }
    return found
  }

  /** The address to connect to: resolved once, checked, pinned. */
  async function address (t: Target, origin: Origin, signal: AbortSignal): Promise<string> {
    let answers: string[]
    if (isIP(t.host) !== 0) {
      answers = [t.host]
    } else {
      try {
        answers = (await resolve(t.host, { signal })).map(a => canonicalIp(a.address))
      } catch (err) {
        if (signal.aborted) throw err
        refuse('connection-failed', `${t.host} could not be resolved: ${(err as Error).message}`)
      }
      if (answers.length === 0) refuse('connection-failed', `${t.host} has no address`)
    }
    const refused: string[] = []
    for (const a of answers) {
      const kind = addressKind(a)
      if (kind === undefined) return a
      // only an origin that names this very address lets a request reach it
      if (!origin.wildcard && isIP(origin.host) !== 0 && canonicalIp(origin.host) === a) return a
      refused.push(`${a} (${kind})`)
    }
    const direct = originText(t.scheme, answers[0] as string, t.port, false)
    refuse('not-permitted', `${t.host} resolves to ${refused.join(', ')}; agents reach such an address only by it, through an origin naming it: request ${direct}/… with "net:${direct}" granted`)
  }

  function checkHeaders (headers: NetRequest['headers']): void {
    if (headers.length > NET_LIMITS.maxHeaders) refuse('too-large', `${headers.length} headers; at most ${NET_LIMITS.maxHeaders} are allowed`)
    let chars = 0
    for (const h of headers) {
      chars += h.name.length + h.value.length
      if (!TOKEN.test(h.name)) refuse('invalid-input', `"${h.name.slice(0, 100)}" is not a header name`)
      if (/[\r\n\0]/.test(h.value)) refuse('invalid-input', `the value of header ${h.name} holds a line break or NUL`)
      if (HOST_HEADERS.has(h.name.toLowerCase())) refuse('invalid-input', `header ${h.name} is set by the host; leave it out`)
    }
    if (chars > NET_LIMITS.maxHeaderChars) refuse('too-large', `the headers hold ${chars} characters; at most ${NET_LIMITS.maxHeaderChars} are allowed`)
  }

  async function once (t: Target, ip: string, method: string, headers: NetRequest['headers'], body: Uint8Array, maxBytes: number, signal: AbortSignal): Promise<{ res: IncomingMessage, body: Uint8Array }> {
    const outgoing: Record<string, string | string[]> = {}
    for (const h of headers) {
      const key = h.name.toLowerCase()
      const have = outgoing[key]
      outgoing[key] = have === undefined ? h.value : [...(Array.isArray(have) ? have : [have]), h.value]
    }
    outgoing.host = t.url.host
    if (body.byteLength > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(method)) outgoing['content-length'] = String(body.byteLength)
    // the CommonJS modules, not an ESM import: building node:http's ESM namespace reads its
    // WebSocket export, which loads Node's bundled fetch client (undici) for good, several MiB
    // of every node's memory whether an agent ever goes online or not
    const send = t.scheme === 'https' ? process.getBuiltinModule('node:https').request : process.getBuiltinModule('node:http').request
    return await new Promise((resolve, reject) => {
      const req = send({
        host: ip,
        port: t.port,
        method,
        path: `${t.url.pathname}${t.url.search}`,
        headers: outgoing,
        // TLS checks the certificate against the name, while the socket goes to the checked address
        ...(t.scheme === 'https' && isIP(t.host) === 0 ? { servername: t.host } : {}),
        agent: false,
        signal
      }, res => {
        const declared = Number(res.headers['content-length'])
        if (Number.isFinite(declared) && declared > maxBytes) {
          res.destroy()
          reject(new Refusal(netError('too-large', `the response declares ${declared} bytes; at most ${maxBytes} are allowed`)))
          return
        }
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.byteLength
          if (size > maxBytes) {
            res.destroy()
            reject(new Refusal(netError('too-large', `the response is larger than ${maxBytes} bytes, the most allowed`)))
            return
          }
          chunks.push(chunk)
        })
        res.on('end', () => { resolve({ res, body: new Uint8Array(Buffer.concat(chunks)) }) })
        res.on('error', reject)
        res.on('aborted', () => { reject(new Error('the response was cut off')) })
      })
      req.on('error', reject)
      req.end(body.byteLength > 0 ? Buffer.from(body) : undefined)
    })
  }

  return {
    async request (req, runSignal) {
      try {
        const method = req.method.toUpperCase()
        if (!METHOD.test(method)) refuse('invalid-input', `"${req.method.slice(0, 20)}" is not an HTTP method`)
        if (req.url.length > NET_LIMITS.maxUrlChars) refuse('too-large', `the URL is ${req.url.length} characters; at most ${NET_LIMITS.maxUrlChars} are allowed`)
        if (req.body.byteLength > NET_LIMITS.maxRequestBodyBytes) refuse('too-large', `the request body is ${req.body.byteLength} bytes; at most ${NET_LIMITS.maxRequestBodyBytes} are allowed`)
        checkHeaders(req.headers)
        const timeoutMs = Math.min(req.timeoutMs ?? NET_LIMITS.maxTimeoutMs, NET_LIMITS.maxTimeoutMs)
        const maxBytes = Math.min(req.maxBytes ?? NET_LIMITS.maxResponseBytes, NET_LIMITS.maxResponseBytes)
        if (timeoutMs < 1) refuse('invalid-input', 'timeout-ms must be at least 1')
        const timeout = AbortSignal.timeout(timeoutMs)
        const signal = AbortSignal.any([runSignal, timeout])
        let t = target(req.url)
        let { headers, body } = req
        let m = method
        const first = t
        for (let hop = 0; ; hop++) {
          const origin = granted(t)
          if (requests >= maxRequests) refuse('not-permitted', `this run has made its ${maxRequests} requests, the most one run may make`)
          requests++
          perOrigin.set(origin.text, (perOrigin.get(origin.text) ?? 0) + 1)
          let answer
          try {
            const ip = await address(t, origin, signal)
            answer = await once(t, ip, m, headers, body, maxBytes, signal)
          } catch (err) {
            if (err instanceof Refusal) throw err
            if (timeout.aborted) refuse('timeout', `${t.url.origin} did not answer within ${timeoutMs} ms`)
            if (runSignal.aborted) refuse('connection-failed', 'the run ended')
            refuse('connection-failed', `${t.url.origin}: ${(err as Error).message}`)
          }
          const { res } = answer
          const status = res.statusCode ?? 0
          const location = res.headers.location
          if ([301, 302, 303, 307, 308].includes(status) && location !== undefined) {
            if (hop >= NET_LIMITS.maxRedirects) refuse('connection-failed', `more than ${NET_LIMITS.maxRedirects} redirects from ${first.url.origin}`)
            let next: Target
            try {
              next = target(new URL(location, t.url).toString())
            } catch (err) {
              if (err instanceof Refusal) refuse('connection-failed', `${t.url.origin} redirected to something that cannot be followed: ${err.message}`)
              refuse('connection-failed', `${t.url.origin} redirected to something that is not a URL`)
            }
            // the next hop is a request this node writes: the same bound as the agent's own URL
            const nextUrl = next.url.toString()
            if (nextUrl.length > NET_LIMITS.maxUrlChars) refuse('too-large', `${t.url.origin} redirected to a URL of ${nextUrl.length} characters; at most ${NET_LIMITS.maxUrlChars} are allowed`)
            if (status === 303 || ((status === 301 || status === 302) && m === 'POST')) {
              m = m === 'HEAD' ? 'HEAD' : 'GET'
              body = new Uint8Array(0)
            }
            if (next.url.origin !== t.url.origin) headers = headers.filter(h => !CREDENTIALS.has(h.name.toLowerCase()))
            t = next
            continue
          }
          // the agent gets the response's headers within the bounds of its own: 64, 8 KiB together;
          // the ones past them are left out
          const out: NetResponse['headers'] = []
          let chars = 0
          for (let i = 0; i + 1 < res.rawHeaders.length && out.length < NET_LIMITS.maxHeaders; i += 2) {
            const name = (res.rawHeaders[i] as string).toLowerCase()
            const value = res.rawHeaders[i + 1] as string
            if (chars + name.length + value.length > NET_LIMITS.maxHeaderChars) continue
            chars += name.length + value.length
            out.push({ name, value })
          }
          return { ok: true, value: { status, headers: out, body: answer.body } }
        }
      } catch (err) {
        if (err instanceof Refusal) return { ok: false, error: err.error }
        return { ok: false, error: netError('connection-failed', (err as Error).message) }
      }
    },
    report () {
      return { requests, origins: [...perOrigin].map(([origin, n]) => ({ origin, requests: n })) }
    }
  }
}

// ---- a device's policy ----

/**
 * A device's refusals: origins (same syntax; `https://*.example.org` refuses every sub-domain) or
 * `*` for every origin, which keeps the network from agents on this device altogether.
 */
export type NetRefusals = readonly string[]

/** Checks a device's refusals; throws a message for people naming the bad entry. */
export function parseRefusals (refuse: NetRefusals): Array<Origin | '*'> {
  return refuse.map(r => r === '*' ? '*' : parseOrigin(r))
}

/** The origins of `asked` this device refuses. */
export function refusedOrigins (asked: readonly Origin[], refuse: ReadonlyArray<Origin | '*'>): Origin[] {
  return asked.filter(o => refuse.some(r => r === '*' || r.text === o.text ||
    (r.wildcard && r.scheme === o.scheme && r.port === o.port && (o.host === r.host || o.host.endsWith(`.${r.host}`)))))
}

/**
 * Why this device would not run a task granted `permissions`, or undefined: a task that needs an
 * origin the device refuses is not placed here.
 */
export function netRefusal (permissions: readonly string[], refuse: ReadonlyArray<Origin | '*'>): string | undefined {
  let asked: Origin[]
  try {
    asked = netOrigins(permissions)
  } catch (err) {
    return `the task's net permissions are invalid: ${(err as Error).message}`
  }
  const refused = refusedOrigins(asked, refuse)
  if (refused.length === 0) return undefined
  return refuse.includes('*')
    ? `this device's policy keeps agents off the network, and the task needs ${refused.map(o => o.text).join(', ')}`
    : `this device's policy refuses ${refused.map(o => o.text).join(', ')}, which the task needs`
}
