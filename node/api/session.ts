// The dashboard's one-time login. The CLI, holding the node's token, asks for a login code; the
// browser brings the code to GET /login once and gets a session cookie in exchange, so the token
// never reaches the page or the browser's history. Codes and sessions live in memory only: a
// restart of the node logs every browser out.
//
// The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page sends
// it). Cookies are not kept apart by port, so its name carries the API's port: two nodes on one
// machine each keep their own session.

import { randomBytes, timingSafeEqual } from 'node:crypto'

/** How long a login code can be used, once. */
export const LOGIN_CODE_TTL_MS = 60_000
/** How long a session lasts from its login; then the browser needs a new `hive-node dashboard`. */
export const SESSION_TTL_MS = 12 * 60 * 60_000
/** Codes not yet used, and sessions, held at once; the oldest go first. */
export const MAX_LOGIN_CODES = 16
export const MAX_SESSIONS = 32

/** 256 random bits, hex: the shape of every code and session id. */
const SECRET = /^[0-9a-f]{64}$/

export interface LoginCode {
  code: string
  expiresAt: number
}

export interface Sessions {
  /** The cookie's name for this API. */
  readonly cookieName: string
  /** A fresh single-use code, good for LOGIN_CODE_TTL_MS. */
  issueCode: () => LoginCode
  /** Uses up a code: the new session's id, or undefined when the code is unknown, used or expired. */
  redeem: (code: string) => string | undefined
  /** Whether a request's Cookie header holds a live session. */
  check: (cookieHeader: string | undefined) => boolean
  /** Ends the session a Cookie header holds, if any. */
  end: (cookieHeader: string | undefined) => void
  /** The Set-Cookie value that starts a session, and the one that clears it. */
  setCookie: (session: string) => string
  clearCookie: () => string
}

function sessionFrom (cookieHeader: string | undefined, name: string): string | undefined {
  if (cookieHeader == null) return undefined
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() !== name) continue
    const value = part.slice(eq + 1).trim()
    if (SECRET.test(value)) return value
  }
  return undefined
}

/** Looks a secret up in constant time per entry, so its bytes are not told by the answer's timing. */
function findSecret<V> (map: Map<string, V>, secret: string): string | undefined {
  const wanted = Buffer.from(secret, 'hex')
  let found: string | undefined
  for (const key of map.keys()) {
    if (timingSafeEqual(Buffer.from(key, 'hex'), wanted)) found = key
  }
  return found
}

function dropOldest<V> (map: Map<string, V>, max: number): void {
  while (map.size > max) {
    const oldest = map.keys().next().value
    if (oldest === undefined) return
    map.delete(oldest)
  }
}

export function createSessions (init: { port: () => number, now?: () => number }): Sessions {
  const now = init.now ?? Date.now
  const codes = new Map<string, number>()
  const sessions = new Map<string, number>()
  const cookieName = (): string => `hive_session_${init.port()}`
  const sweep = (): void => {
    const t = now()
    for (const [code, expiresAt] of codes) if (expiresAt <= t) codes.delete(code)
    for (const [session, expiresAt] of sessions) if (expiresAt <= t) sessions.delete(session)
  }
  return {
    get cookieName () { return cookieName() },
    issueCode: () => {
      sweep()
      const code = randomBytes(32).toString('hex')
      const expiresAt = now() + LOGIN_CODE_TTL_MS
      codes.set(code, expiresAt)
      dropOldest(codes, MAX_LOGIN_CODES)
      return { code, expiresAt }
    },
    redeem: (code) => {
      sweep()
      if (!SECRET.test(code)) return undefined
      const known = findSecret(codes, code)
      if (known === undefined) return undefined
      codes.delete(known)
      const session = randomBytes(32).toString('hex')
      sessions.set(session, now() + SESSION_TTL_MS)
      dropOldest(sessions, MAX_SESSIONS)
      return session
    },
    check: (cookieHeader) => {
      const session = sessionFrom(cookieHeader, cookieName())
      if (session === undefined) return false
      sweep()
      return findSecret(sessions, session) !== undefined
    },
    end: (cookieHeader) => {
      const session = sessionFrom(cookieHeader, cookieName())
      if (session === undefined) return
      const known = findSecret(sessions, session)
      if (known !== undefined) sessions.delete(known)
    },
    setCookie: (session) => `${cookieName()}=${session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}`,
    clearCookie: () => `${cookieName()}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`
  }
}
