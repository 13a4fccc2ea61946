// The one place the page talks to the node. `get` and `post` call the node's JSON API on the
// same origin: the browser sends the session cookie, and the Origin every write needs.
//
// `onLive` tells views when what they show may have changed, by topic; `onEvent` hands a view
// the events themselves (a task's log lines). `startLive` follows the node's event stream
// (GET /events, which takes the session cookie) and announces only the topics each event
// touches, a burst of events as one announcement. When the stream fails (the node restarted,
// too many clients follow it) the page polls: every topic every POLL_MS, until the stream is
// back. What no event reports (pairing invites expiring) is read again every REFRESH_MS.

export const TOPICS = ['peers', 'tasks', 'ledger', 'contexts', 'members', 'agents']
export const POLL_MS = 2000
/** While the stream is up: everything is read again this often, for what no event reports. */
export const REFRESH_MS = 30_000
/** Events are gathered this long before their topics are announced, so a burst reads each route once. */
const GATHER_MS = 150
/** After the stream closed for good, it is tried again this long later (polling meanwhile). */
const REOPEN_MS = 10_000

/** The topics each event touches; an event not listed touches none (`task.log` goes to `onEvent` only). */
const EVENT_TOPICS = {
  'peer.connected': ['peers'],
  'peer.disconnected': ['peers'],
  'capabilities.changed': ['peers'],
  'capabilities.expired': ['peers'],
  'task.announced': ['tasks', 'agents'],
  'task.bid': ['tasks'],
  'task.awarded': ['tasks'],
  'task.running': ['tasks', 'agents'],
  'task.done': ['tasks'],
  'task.failed': ['tasks'],
  'task.run-ended': ['tasks'],
  'ledger.appended': ['ledger'],
  'ledger.verified': ['ledger'],
  'ledger.health': ['ledger'],
  'context.created': ['contexts'],
  'context.changed': ['contexts'],
  'membership.changed': ['members', 'peers']
}
const EVENT_TYPES = [...Object.keys(EVENT_TOPICS), 'task.log']

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
const eventListeners = new Set()

/** Calls `listener(topics)` whenever some topics may have changed; returns the unsubscribe. */
export function onLive (listener) {
  listeners.add(listener)
  return () => { listeners.delete(listener) }
}

/** Calls `listener(event)` with each event of the stream (`{ id, type, at, data }`); returns the unsubscribe. */
export function onEvent (listener) {
  eventListeners.add(listener)
  return () => { eventListeners.delete(listener) }
}

function announce (topics) {
  for (const listener of listeners) listener(topics)
}

const gathered = new Set()
let gatherTimer
function touch (topics) {
  for (const t of topics) gathered.add(t)
  if (gatherTimer != null || gathered.size === 0) return
  gatherTimer = setTimeout(() => {
    gatherTimer = undefined
    const topics = [...gathered]
    gathered.clear()
    announce(topics)
  }, GATHER_MS)
}

let started = false
let pollTimer
let refreshTimer
let source

/** How the page hears of changes now: `stream` or `poll` (on the page's root element as data-live). */
function mode (m) {
  document.documentElement.dataset.live = m
}

function poll () {
  if (pollTimer != null) return
  mode('poll')
  pollTimer = setInterval(() => { if (!loggedOut) announce(TOPICS) }, POLL_MS)
}

function stopPolling () {
  clearInterval(pollTimer)
  pollTimer = undefined
}

function openStream () {
  if (loggedOut) return
  source = new EventSource('/events')
  source.addEventListener('open', () => {
    stopPolling()
    mode('stream')
    // what changed while the stream was down
    announce(TOPICS)
  })
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (message) => {
      let event
      try { event = JSON.parse(message.data) } catch { return }
      for (const listener of eventListeners) listener(event)
      touch(EVENT_TOPICS[type] ?? [])
    })
  }
  source.addEventListener('error', () => {
    // the browser reconnects on its own unless the answer was not a stream (401, 503): poll
    // meanwhile, and open a new one later when it gave up
    poll()
    if (source.readyState === EventSource.CLOSED) {
      source = undefined
      setTimeout(openStream, REOPEN_MS)
    }
  })
}

/** Starts telling the views about changes: the event stream, else polling. */
export function startLive () {
  if (started) return
  started = true
  if (typeof EventSource !== 'function') {
    poll()
    return
  }
  mode('connecting')
  openStream()
  refreshTimer = setInterval(() => { if (!loggedOut && pollTimer == null) announce(TOPICS) }, REFRESH_MS)
}

/** Stops following the node (the page logs out). */
export function stopLive () {
  stopPolling()
  clearInterval(refreshTimer)
  clearTimeout(gatherTimer)
  source?.close()
  source = undefined
}
