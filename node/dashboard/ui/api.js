// The one place the page talks to the node. `get` and `post` call the node's JSON API on the
// same origin: the browser sends the session cookie, and the Origin every write needs.
//
// `onLive` tells views when what they show may have changed, by topic. Today the node is polled:
// every POLL_MS every topic is announced, and each view reads its routes again. When the node
// serves its event stream (GET /events), `startLive` opens an EventSource on it and announces
// the topic of each event as it comes; the views stay as they are.

export const TOPICS = ['peers', 'tasks', 'ledger', 'contexts', 'members', 'agents']
export const POLL_MS = 2000

export class ApiError extends Error {
  constructor (status, code, message) {
    super(message)
    this.name = code
    this.status = status
  }
}

async function call (method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body !== undefined ? { 'content-type': 'application/json' } : {},
    body: body !== undefined ? JSON.stringify(body) : undefined
  })
  const text = await response.text()
  let json
  try { json = text.length > 0 ? JSON.parse(text) : undefined } catch { json = undefined }
  if (!response.ok) {
    const error = json?.error
    if (response.status === 401) loggedOut = true
    throw new ApiError(response.status, error?.code ?? 'HttpError', error?.message ?? `the node answered ${response.status}`)
  }
  return json
}

export const get = (path) => call('GET', path)
export const post = (path, body = {}) => call('POST', path, body)

/** Set once the node refused the session (it restarted, or the session ran out). */
export let loggedOut = false

const listeners = new Set()

/** Calls `listener(topics)` whenever some topics may have changed; returns the unsubscribe. */
export function onLive (listener) {
  listeners.add(listener)
  return () => { listeners.delete(listener) }
}

function announce (topics) {
  for (const listener of listeners) listener(topics)
}

let started = false

/** Starts telling the views about changes: polling for now. */
export function startLive () {
  if (started) return
  started = true
  setInterval(() => { if (!loggedOut) announce(TOPICS) }, POLL_MS)
}
