// Contexts: every agent context this device holds (each replicated on every member), and one
// context's conversation, state and checkpoints, as of now or as of a checkpoint.

import { useState } from 'preact/hooks'
import { useApi } from './hooks.js'
import { ErrorNote, ago, html, time } from './format.js'

export function ContextsView () {
  const contexts = useApi('/contexts', ['contexts'])
  const list = contexts.data?.contexts ?? []
  return html`<section>
    <h2>Contexts</h2>
    <${ErrorNote} error=${contexts.error} />
    ${list.length === 0 && contexts.data != null ? html`<p class="muted">No contexts yet: an agent that uses one makes it.</p>` : null}
    <table class="list" data-testid="contexts">
      <thead><tr><th>context</th><th>created</th><th>conversation</th><th>state keys</th><th>checkpoints</th></tr></thead>
      <tbody>${list.map(c => html`<tr key=${c.id}>
        <td><a href=${`#/contexts/${encodeURIComponent(c.id)}`}>${c.id}</a></td><td>${ago(c.created)}</td>
        <td>${c.entries}</td><td>${c.keys}</td><td>${c.checkpoints}</td></tr>`)}</tbody>
    </table>
  </section>`
}

export function ContextView ({ id }) {
  const [checkpoint, setCheckpoint] = useState('')
  const base = `/contexts/${encodeURIComponent(id)}`
  const ctx = useApi(checkpoint === '' ? base : `${base}/checkpoints/${encodeURIComponent(checkpoint)}`, checkpoint === '' ? ['contexts'] : [])
  const now = useApi(base, ['contexts'])
  const c = ctx.data
  return html`<section data-testid="context-detail">
    <p><a href="#/contexts">← all contexts</a></p>
    <h2>Context ${id}</h2>
    <${ErrorNote} error=${ctx.error} />
    <label>As of <select value=${checkpoint} onChange=${(e) => { setCheckpoint(e.currentTarget.value) }}>
      <option value="">now</option>
      ${(now.data?.checkpoints ?? []).map(k => html`<option key=${k.name} value=${k.name}>checkpoint ${k.name} (${time(k.time)}, ${k.node})</option>`)}
    </select></label>
    ${now.data?.workingHere?.length > 0 ? html`<p class="muted">Working in it now: ${now.data.workingHere.join(', ')}</p>` : null}
    ${c == null ? null : html`<div>
      <h3>Conversation</h3>
      ${c.conversation.length === 0 ? html`<p class="muted">Empty.</p>` : html`<ol class="conversation">
        ${c.conversation.map((e, i) => html`<li key=${i} class=${`role-${e.role}`}><span class="who">${e.role} · ${e.node} · ${time(e.time)}</span><div>${e.text}</div></li>`)}
      </ol>`}
      <h3>State</h3>
      ${Object.keys(c.state).length === 0 ? html`<p class="muted">Empty.</p>` : html`<table class="list"><tbody>
        ${Object.entries(c.state).map(([k, v]) => html`<tr key=${k}><td><code>${k}</code></td><td><pre>${JSON.stringify(v, null, 2)}</pre></td></tr>`)}
      </tbody></table>`}
      <h3>Checkpoints</h3>
      ${(now.data?.checkpoints ?? []).length === 0 ? html`<p class="muted">None.</p>` : html`<ul>
        ${now.data.checkpoints.map(k => html`<li key=${k.name}>${k.name}: ${time(k.time)} on ${k.node}</li>`)}
      </ul>`}
    </div>`}
  </section>`
}
