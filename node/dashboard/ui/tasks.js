// Tasks: the recent ones, newest first; a task's detail with its result, its log lines (live,
// from the event stream, while it runs here or on another device), history, and the
// explanation of where it went (every bid with its reasons, the rule, the rounds).

import { useEffect, useState } from 'preact/hooks'
import { onEvent } from './api.js'
import { useApi } from './hooks.js'
import { ErrorNote, Status, ago, html, namesFrom, nameOf, short, time } from './format.js'

function useNames () {
  const hive = useApi('/hive', ['members'])
  const caps = useApi('/capabilities', ['peers'])
  return namesFrom(hive.data, caps.data)
}

export function TasksView () {
  const tasks = useApi('/tasks?limit=100', ['tasks'])
  const names = useNames()
  const list = tasks.data?.tasks ?? []
  return html`<section>
    <h2>Tasks</h2>
    <${ErrorNote} error=${tasks.error} />
    ${list.length === 0 && tasks.data != null ? html`<p class="muted">No tasks yet: <code>hive-node run AGENT.wasm --input TEXT</code> places one.</p>` : null}
    <table class="list" data-testid="tasks">
      <thead><tr><th>task</th><th>status</th><th>agent</th><th>submitted by</th><th>ran on</th><th>when</th><th>took</th></tr></thead>
      <tbody>
        ${list.map(t => html`<tr key=${t.id} data-task=${t.id} data-status=${t.status}>
          <td><a href=${`#/tasks/${t.id}`}><code>${t.id.slice(0, 12)}</code></a></td>
          <td><${Status} status=${t.status} /></td>
          <td><code>${t.agent.slice(0, 10)}</code></td>
          <td>${nameOf(names, t.submitter)}</td>
          <td>${t.result != null ? nameOf(names, t.result.executor) : t.winner != null ? nameOf(names, t.winner) : '-'}</td>
          <td>${ago(t.createdAt)}</td>
          <td>${t.result != null ? `${Math.round(t.result.durationMs)} ms` : '-'}</td>
        </tr>`)}
      </tbody>
    </table>
  </section>`
}

function Bids ({ explanation, names }) {
  if (explanation == null) return null
  return html`<div>
    <p>Rule: ${explanation.rule}</p>
    ${explanation.missing.length > 0 ? html`<p class="muted">No bid from ${explanation.missing.map(p => nameOf(names, p)).join(', ')}</p>` : null}
    <table class="list" data-testid="bids">
      <thead><tr><th>rank</th><th>device</th><th>cost</th><th>reasons</th><th>holds agent</th><th>via</th></tr></thead>
      <tbody>
        ${explanation.bids.map(b => html`<tr key=${b.bidder} class=${b.bidder === explanation.winner ? 'winner' : b.excluded ? 'excluded' : ''}>
          <td>${b.excluded ? 'excluded' : b.rank}</td>
          <td>${b.name ?? nameOf(names, b.bidder)}${b.bidder === explanation.winner ? ' ★' : ''}</td>
          <td>${b.cost}</td>
          <td>${b.reasons.length === 0 ? '-' : b.reasons.map(r => html`<div>+${r.points} ${r.factor}: ${r.detail}</div>`)}</td>
          <td>${b.holdsAgent ? 'yes' : 'no'}</td>
          <td>${b.via}</td>
        </tr>`)}
      </tbody>
    </table>
    ${explanation.rounds.map(r => html`<p key=${r.round}>Round ${r.round}: ${nameOf(names, r.winner)} at cost ${r.cost}. ${r.why}</p>`)}
  </div>`
}

/** Lines a task page keeps from the stream: the node's own bound on a task's lines. */
const MAX_LIVE_LINES = 1000

/** A task's log lines: those the node holds, then those the stream brought since. */
function useTaskLogs (id) {
  const held = useApi(`/task/${encodeURIComponent(id)}/logs`, ['tasks'])
  const [live, setLive] = useState([])
  useEffect(() => {
    setLive([])
    return onEvent((e) => {
      if (e.type !== 'task.log' || e.data.task !== id) return
      setLive(lines => lines.length >= MAX_LIVE_LINES ? lines : [...lines, { n: e.data.n, level: e.data.level, message: e.data.message }])
    })
  }, [id])
  if (held.data == null && live.length === 0) return undefined
  const lines = held.data?.lines ?? []
  const last = lines.length > 0 ? lines[lines.length - 1].n : 0
  return [...lines, ...live.filter(l => l.n > last)]
}

export function TaskView ({ id }) {
  const task = useApi(`/task/${encodeURIComponent(id)}`, ['tasks'])
  const explain = useApi(`/task/${encodeURIComponent(id)}/explain`, ['tasks'])
  const streamed = useTaskLogs(id)
  const names = useNames()
  const t = task.data?.task
  if (t == null) return html`<section><h2>Task ${short(id)}</h2><${ErrorNote} error=${task.error} /></section>`
  const logs = streamed ?? t.result?.logs ?? []
  return html`<section data-testid="task-detail" data-status=${t.status}>
    <p><a href="#/tasks">← all tasks</a></p>
    <h2>Task <code>${t.id}</code></h2>
    <dl class="facts">
      <dt>status</dt><dd><${Status} status=${t.status} /></dd>
      <dt>agent</dt><dd><code>${t.agent}</code></dd>
      <dt>submitted by</dt><dd>${nameOf(names, t.submitter)} at ${time(t.createdAt)}</dd>
      ${t.result != null ? html`<dt>ran on</dt><dd>${nameOf(names, t.result.executor)} in ${Math.round(t.result.durationMs)} ms (round ${t.result.round})${t.result.ledger?.seq != null ? `, ledger record ${t.result.ledger.seq}` : ''}</dd>` : null}
      ${t.contextId != null ? html`<dt>context</dt><dd><a href=${`#/contexts/${encodeURIComponent(t.contextId)}`}>${t.contextId}</a></dd>` : null}
      <dt>permissions</dt><dd>${t.permissions.length === 0 ? 'none' : t.permissions.join(', ')}</dd>
    </dl>
    ${t.result?.output != null ? html`<h3>Output</h3><pre data-testid="task-output">${t.result.output}</pre>` : null}
    ${t.result?.error != null || t.error != null ? html`<h3>Error</h3><pre class="error">${t.result?.error ?? `${t.error.code}: ${t.error.message}`}</pre>` : null}
    <h3>Logs</h3>
    ${logs.length === 0 ? html`<p class="muted">No log lines${t.result == null ? ' yet' : ''}.</p>` : html`<pre class="logs" data-testid="task-logs">${logs.map(l => `${l.level.padEnd(5)} ${l.message}\n`)}</pre>`}
    <h3>Why it went where it went</h3>
    <${ErrorNote} error=${explain.error} />
    <${Bids} explanation=${explain.data?.explanation} names=${names} />
    <h3>History</h3>
    <table class="list">
      <tbody>${t.history.map((e, i) => html`<tr key=${i}><td class="nowrap">${time(e.at)}</td><td>${e.type}</td><td class="nowrap">${e.peer != null ? nameOf(names, e.peer) : ''}</td><td>${e.detail}</td></tr>`)}</tbody>
    </table>
  </section>`
}
