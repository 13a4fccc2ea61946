// Small helpers every view shares: sizes, times, ids and device names.

import { h } from 'preact'
import htm from 'htm'

export const html = htm.bind(h)

export function bytes (n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return '-'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${n >= 10 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`
}

export function time (ms) {
  if (typeof ms !== 'number' || ms <= 0) return '-'
  const d = new Date(ms)
  const two = (n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
}

export function ago (ms) {
  if (typeof ms !== 'number' || ms <= 0) return '-'
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000))
  if (s < 60) return `${s} s ago`
  if (s < 3600) return `${Math.round(s / 60)} min ago`
  if (s < 86400) return `${Math.round(s / 3600)} h ago`
  return time(ms)
}

/** `n thing` or `n things`. */
export const count = (n, thing) => `${n} ${thing}${n === 1 ? '' : 's'}`

export const short = (id) => typeof id === 'string' && id.length > 12 ? `…${id.slice(-8)}` : (id ?? '-')

/** Device names by PeerId, from the member list and the capability view. */
export function namesFrom (hive, caps) {
  const names = new Map()
  for (const m of hive?.members ?? []) if (m.name) names.set(m.peerId, m.name)
  for (const e of caps?.capabilities ?? []) names.set(e.peerId, e.caps.name)
  return names
}

export const nameOf = (names, peer) => names.get(peer) ?? short(peer)

export function ErrorNote ({ error }) {
  if (error == null) return null
  return html`<p class="error" role="alert">${error.name}: ${error.message}</p>`
}

export function Status ({ status }) {
  return html`<span class=${`status status-${status}`}>${status}</span>`
}
