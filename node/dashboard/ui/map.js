// The live map of the hive: every member as a card (cores, load, memory, power, GPU, models, and
// the tasks it ran lately), the connections between them as edges, and tasks under way as dots
// moving from the device that submitted them to the one that runs them.

import { useApi } from './hooks.js'
import { ErrorNote, bytes, html, namesFrom, nameOf, short } from './format.js'

const W = 1000
const H = 680
const CARD_W = 250
const CARD_H = 176
const MOVING = new Set(['bidding', 'awarded', 'running'])

/** Places n cards around the centre: one in the middle, two side by side, more on a circle. */
function positions (n) {
  if (n === 1) return [{ x: W / 2, y: H / 2 }]
  if (n === 2) return [{ x: W / 2 - 220, y: H / 2 }, { x: W / 2 + 220, y: H / 2 }]
  const r = Math.min(W / 2 - CARD_W / 2 - 10, H / 2 - CARD_H / 2 - 10)
  return Array.from({ length: n }, (_, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / n
    return { x: W / 2 + r * Math.cos(a) * (n > 4 ? 1 : 1.25), y: H / 2 + r * Math.sin(a) }
  })
}

function Bar ({ x, y, w, value, label }) {
  const v = Math.max(0, Math.min(1, Number.isFinite(value) ? value : 0))
  return html`<g>
    <rect x=${x} y=${y} width=${w} height="8" rx="3" class="bar-bg" />
    <rect x=${x} y=${y} width=${Math.max(2, w * v)} height="8" rx="3" class=${v > 0.85 ? 'bar bar-high' : 'bar'} />
    <text x=${x + w + 6} y=${y + 8} class="small">${label}</text>
  </g>`
}

function power (p) {
  if (p == null) return 'power unknown'
  if (p.state === 'battery') return `on battery${p.percent != null ? ` ${Math.round(p.percent)} %` : ''}`
  if (p.state === 'ac') return 'on mains'
  return 'power unknown'
}

function Device ({ device, at, tasks }) {
  const x = at.x - CARD_W / 2
  const y = at.y - CARD_H / 2
  const c = device.caps
  if (c == null) {
    return html`<g class="device offline" data-peer=${device.peerId} data-name=${device.name}>
      <rect x=${x} y=${y} width=${CARD_W} height="56" rx="10" class="card" />
      <text x=${x + 12} y=${y + 24} class="title">${device.name}</text>
      <text x=${x + 12} y=${y + 44} class="small">not heard from: offline or out of reach</text>
    </g>`
  }
  const used = c.totalMemory - c.freeMemory
  const gpus = (c.gpus ?? []).map(g => g.name).join(', ')
  const models = c.models.length === 0 ? 'no models' : c.models.slice(0, 2).join(', ') + (c.models.length > 2 ? ` +${c.models.length - 2}` : '')
  return html`<g class=${`device${device.self ? ' self' : ''}`} data-peer=${device.peerId} data-name=${c.name}>
    <title>${c.name} ${device.peerId}</title>
    <rect x=${x} y=${y} width=${CARD_W} height=${CARD_H} rx="10" class="card" />
    <text x=${x + 12} y=${y + 22} class="title">${c.name}${device.self ? ' (this device)' : ''}</text>
    <text x=${x + 12} y=${y + 40} class="small">${c.cores} cores · ${c.running} running · ${power(c.power)}</text>
    <${Bar} x=${x + 12} y=${y + 50} w=${90} value=${c.load / c.cores} label=${`load ${c.load.toFixed(2)}`} />
    <${Bar} x=${x + 12} y=${y + 66} w=${90} value=${c.totalMemory > 0 ? used / c.totalMemory : 0} label=${`mem ${bytes(used)} / ${bytes(c.totalMemory)}`} />
    <text x=${x + 12} y=${y + 94} class="small">${gpus === '' ? 'no GPU' : `GPU ${gpus}`}</text>
    <text x=${x + 12} y=${y + 110} class="small">${models}</text>
    <text x=${x + 12} y=${y + 130} class="small muted">recent tasks</text>
    ${tasks.length === 0 ? html`<text x=${x + 100} y=${y + 130} class="small muted">none</text>` : null}
    ${tasks.slice(0, 4).map((t, i) => html`<a href=${`#/tasks/${t.id}`}>
      <g class=${`chip status-${t.status}`} data-task=${t.id}>
        <rect x=${x + 12 + i * 58} y=${y + 140} width="54" height="22" rx="5" />
        <text x=${x + 16 + i * 58} y=${y + 155} class="tiny">${t.id.slice(0, 6)}</text>
        <title>task ${t.id}: ${t.status}</title>
      </g></a>`)}
  </g>`
}

export function MapView () {
  const caps = useApi('/capabilities', ['peers'])
  const hive = useApi('/hive', ['members'])
  const tasks = useApi('/tasks?limit=50', ['tasks'])
  if (caps.data == null || hive.data == null) return html`<section><h2>Map</h2><${ErrorNote} error=${caps.error ?? hive.error} /></section>`

  const byPeer = new Map(caps.data.capabilities.map(e => [e.peerId, e]))
  const devices = hive.data.members.map(m => ({ peerId: m.peerId, name: m.name ?? short(m.peerId), self: m.self, caps: byPeer.get(m.peerId)?.caps }))
  // a device heard on gossip before the member list reached this one
  for (const e of caps.data.capabilities) if (!devices.some(d => d.peerId === e.peerId)) devices.push({ peerId: e.peerId, name: e.caps.name, self: e.self, caps: e.caps })
  const at = new Map(devices.map((d, i) => [d.peerId, positions(devices.length)[i]]))

  const edges = new Map()
  for (const d of devices) {
    for (const other of d.caps?.links ?? []) {
      if (!at.has(other) || other === d.peerId) continue
      const key = [d.peerId, other].sort().join(' ')
      edges.set(key, [d.peerId, other].sort())
    }
  }
  const names = namesFrom(hive.data, caps.data)
  const list = tasks.data?.tasks ?? []
  const ranOn = (t) => t.result?.executor ?? t.winner
  const moving = list.filter(t => MOVING.has(t.status) && t.winner != null && at.has(t.submitter) && at.has(t.winner) && t.submitter !== t.winner)

  return html`<section>
    <h2>Map</h2>
    <p class="muted" data-testid="map-summary">${devices.length} devices, ${edges.size} connections${moving.length > 0 ? `, ${moving.length} task${moving.length === 1 ? '' : 's'} on ${moving.length === 1 ? 'its' : 'their'} way` : ''}</p>
    <${ErrorNote} error=${caps.error ?? hive.error ?? tasks.error} />
    <svg class="map" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label="map of the hive">
      ${[...edges.values()].map(([a, b]) => {
        const p = at.get(a); const q = at.get(b)
        return html`<line class="edge" data-a=${a} data-b=${b} x1=${p.x} y1=${p.y} x2=${q.x} y2=${q.y}><title>${nameOf(names, a)} ↔ ${nameOf(names, b)}</title></line>`
      })}
      ${devices.map(d => html`<${Device} key=${d.peerId} device=${d} at=${at.get(d.peerId)} tasks=${list.filter(t => ranOn(t) === d.peerId)} />`)}
      ${moving.map(t => {
        const p = at.get(t.submitter); const q = at.get(t.winner)
        return html`<circle r="9" class=${`moving status-${t.status}`} data-task=${t.id}>
          <title>task ${t.id} → ${nameOf(names, t.winner)}</title>
          <animateMotion dur="1.6s" repeatCount="indefinite" path=${`M ${p.x} ${p.y} L ${q.x} ${q.y}`} />
        </circle>`
      })}
    </svg>
  </section>`
}
