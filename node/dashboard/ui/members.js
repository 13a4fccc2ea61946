// Members: who is in the hive, who added whom, who is connected; pairing a new device (a one-time
// invite shown as a QR code, to scan or copy into "hive-node join"); removing one.

import { useState } from 'preact/hooks'
import { post } from './api.js'
import { useApi } from './hooks.js'
import { ErrorNote, ago, html, nameOf, namesFrom, short, time } from './format.js'

function Pair ({ onDone }) {
  const [state, setState] = useState({})
  const invite = async () => {
    setState({ busy: true })
    try {
      setState({ invite: await post('/pairing/invites', { qr: 'svg' }) })
      onDone()
    } catch (error) {
      setState({ error })
    }
  }
  const i = state.invite
  return html`<div class="pair">
    <button type="button" onClick=${invite} disabled=${state.busy === true} data-testid="pair">Pair a device</button>
    <${ErrorNote} error=${state.error} />
    ${i != null ? html`<div class="invite" data-testid="invite">
      <img alt="invite QR code" src=${`data:image/svg+xml;charset=utf-8,${encodeURIComponent(i.qrSvg)}`} width="260" height="260" />
      <div>
        <p>Scan this on the new device, or run there:</p>
        <pre class="wrap">hive-node join ${i.uri}</pre>
        <p class="muted">Works once, until ${time(i.expiresAt)}. Anyone who sees it can join: close it when done.</p>
        <button type="button" onClick=${() => { setState({}) }}>Close</button>
      </div>
    </div>` : null}
  </div>`
}

export function MembersView () {
  const hive = useApi('/hive', ['members'])
  const invites = useApi('/pairing/invites', ['members'])
  const [removing, setRemoving] = useState({})
  const names = namesFrom(hive.data)
  const h = hive.data
  const remove = async (m) => {
    if (!window.confirm(`Remove ${m.name ?? m.peerId} from the hive? Every member stops talking to it.`)) return
    setRemoving({ peer: m.peerId })
    try {
      await post('/hive/remove', { peer: m.peerId })
      setRemoving({})
      void hive.reload()
    } catch (error) {
      setRemoving({ error })
    }
  }
  return html`<section>
    <h2>Members</h2>
    <${ErrorNote} error=${hive.error ?? removing.error} />
    ${h != null ? html`<p class="muted">Hive <code>${h.hiveId}</code></p>` : null}
    <table class="list" data-testid="members">
      <thead><tr><th>device</th><th>connected</th><th>added by</th><th>added</th><th></th></tr></thead>
      <tbody>${(h?.members ?? []).map(m => html`<tr key=${m.peerId} data-peer=${m.peerId}>
        <td>${m.name ?? short(m.peerId)}${m.self ? ' (this device)' : ''}${m.founder ? ' · founder' : ''} <span class="muted">${short(m.peerId)}</span></td>
        <td>${m.connected ? 'yes' : m.mesh ? 'through the mesh' : 'no'}</td>
        <td>${m.founder ? '-' : nameOf(names, m.addedBy)}</td>
        <td>${ago(m.addedAt)}</td>
        <td>${m.self ? null : html`<button type="button" class="danger" disabled=${removing.peer === m.peerId} onClick=${() => remove(m)}>remove</button>`}</td>
      </tr>`)}</tbody>
    </table>
    ${(h?.removed ?? []).length > 0 ? html`<p class="muted">Removed: ${h.removed.map(r => short(r.peerId)).join(', ')}</p>` : null}
    <${Pair} onDone=${() => invites.reload()} />
    <h3>Invites</h3>
    ${(invites.data?.invites ?? []).length === 0 ? html`<p class="muted">None.</p>` : html`<table class="list">
      <thead><tr><th>invite</th><th>state</th><th>made</th><th>expires</th><th>used by</th></tr></thead>
      <tbody>${invites.data.invites.map(i => html`<tr key=${i.id}><td><code>${i.id}</code></td><td>${i.state}</td><td>${ago(i.createdAt)}</td><td>${time(i.expiresAt)}</td><td>${i.usedBy != null ? nameOf(names, i.usedBy) : '-'}</td></tr>`)}</tbody>
    </table>`}
  </section>`
}
