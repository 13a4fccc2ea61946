// Agents: the agents this device holds, with their manifests (what they may do) and how many of
// the tasks it remembers ran each.

import { useApi } from './hooks.js'
import { ErrorNote, ago, bytes, html } from './format.js'

export function AgentsView () {
  const agents = useApi('/agents', ['agents'])
  const list = agents.data?.agents ?? []
  return html`<section>
    <h2>Agents</h2>
    <p class="muted">Agents held by this device: ones it ran, and ones it submitted for another to run.</p>
    <${ErrorNote} error=${agents.error} />
    ${list.length === 0 && agents.data != null ? html`<p class="muted">None yet: <code>hive-node agent new DIR --example echo</code> makes one.</p>` : null}
    <table class="list" data-testid="agents">
      <thead><tr><th>agent</th><th>version</th><th>permissions</th><th>limits</th><th>size</th><th>tasks</th><th>digest</th></tr></thead>
      <tbody>${list.map(a => html`<tr key=${a.digest}>
        <td>${a.name ?? html`<span class="error">${a.problem}</span>`}${a.description ? html`<div class="muted">${a.description}</div>` : null}</td>
        <td>${a.version ?? '-'}</td>
        <td>${(a.permissions ?? []).join(', ') || 'none'}${a.models != null ? html`<div class="muted">models: ${a.models.join(', ')}</div>` : null}</td>
        <td>${a.limits != null ? `${a.limits.timeoutMs} ms, ${a.limits.memoryMiB} MiB` : '-'}</td>
        <td>${bytes(a.size)}</td>
        <td>${a.tasks}${a.lastTaskAt != null ? html`<div class="muted">last ${ago(a.lastTaskAt)}</div>` : null}</td>
        <td><code>${a.digest.slice(0, 12)}</code></td>
      </tr>`)}</tbody>
    </table>
  </section>`
}
