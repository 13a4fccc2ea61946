// The ledger: every chain this device holds, one per device by name; a chain's records; the
// audit (verify) of every chain, with the fork proofs it finds.

import { useState } from 'preact/hooks'
import { get } from './api.js'
import { useApi } from './hooks.js'
import { ErrorNote, count, html, namesFrom, nameOf, short, time } from './format.js'

function Audit ({ names }) {
  const [state, setState] = useState({ running: false })
  const verify = async () => {
    setState({ running: true })
    try {
      setState({ running: false, report: await get('/ledger/verify') })
    } catch (error) {
      setState({ running: false, error })
    }
  }
  const report = state.report
  return html`<div class="audit">
    <button type="button" onClick=${verify} disabled=${state.running} data-testid="verify">${state.running ? 'Verifying…' : 'Verify every chain'}</button>
    <${ErrorNote} error=${state.error} />
    ${report != null ? html`<div data-testid="verify-result" data-ok=${String(report.ok)}>
      <p class=${report.ok ? 'ok' : 'error'}>${report.ok
        ? `Clean: ${count(report.chains.length, 'chain')}, ${count(report.records, 'record')} checked in ${Math.round(report.durationMs)} ms.`
        : `Problems found in ${report.chains.filter(c => !c.ok).length} of ${report.chains.length} chains.`}</p>
      ${report.chains.filter(c => !c.ok || c.forks.length > 0 || c.behind != null).map(c => html`<div key=${c.signer} class="problem">
        <h4>${nameOf(names, c.signer)}</h4>
        ${c.firstBad != null ? html`<p class="error">record ${c.firstBad.seq}: ${c.firstBad.reason}: ${c.firstBad.message}</p>` : null}
        ${c.behind != null ? html`<p class="muted">copy catching up: the device has reached record ${c.behind.seq}</p>` : null}
        ${c.forks.map(f => html`<div key=${f.seq} class="fork" data-testid="fork">
          <p class="error">Fork at record ${f.seq}: ${f.records.length} validly signed records${f.head != null ? ' and a signed head' : ''} disagree.</p>
          <pre>${JSON.stringify(f, null, 2)}</pre>
        </div>`)}
      </div>`)}
    </div>` : null}
  </div>`
}

function Records ({ peer, names }) {
  const records = useApi(`/ledger/records?peer=${encodeURIComponent(peer)}&limit=50`, ['ledger'])
  const list = records.data?.records ?? []
  return html`<div>
    <h3>Records of ${nameOf(names, peer)} (newest 50)</h3>
    <${ErrorNote} error=${records.error} />
    <table class="list" data-testid="records">
      <thead><tr><th>seq</th><th>time</th><th>task</th><th>agent</th><th>status</th><th>placement</th><th>hash</th></tr></thead>
      <tbody>${list.slice().reverse().map(r => r.error != null
        ? html`<tr key=${r.seq}><td>${r.seq}</td><td colspan="6" class="error">${r.error}</td></tr>`
        : html`<tr key=${r.seq}><td>${r.seq}</td><td class="nowrap">${time(r.time)}</td>
            <td><a href=${`#/tasks/${r.task}`}><code>${r.task.slice(0, 10)}</code></a></td><td><code>${r.agent.slice(0, 10)}</code></td>
            <td>${r.status}</td><td>${r.placement}</td><td><code>${r.hash.slice(0, 12)}</code></td></tr>`)}</tbody>
    </table>
  </div>`
}

export function LedgerView () {
  const chains = useApi('/ledger/chains', ['ledger'])
  const hive = useApi('/hive', ['members'])
  const caps = useApi('/capabilities', ['peers'])
  const names = namesFrom(hive.data, caps.data)
  const [selected, select] = useState(undefined)
  // a member with no record yet has no chain here: listed all the same
  const held = chains.data?.chains ?? []
  const list = [...held, ...(hive.data?.members ?? []).filter(m => !held.some(c => c.signer === m.peerId))
    .map(m => ({ signer: m.peerId, self: m.self, end: -1, headSeq: null, seenSeq: null }))]
  const shown = selected ?? list.find(c => c.self)?.signer
  return html`<section>
    <h2>Ledger</h2>
    <p class="muted">Each device signs a record of every run into its own hash-chained ledger; every member keeps a copy.</p>
    <${Audit} names=${names} />
    <${ErrorNote} error=${chains.error} />
    <table class="list" data-testid="chains">
      <thead><tr><th>device</th><th>records</th><th>signed head</th><th>newer seen</th><th></th></tr></thead>
      <tbody>${list.map(c => html`<tr key=${c.signer} data-signer=${c.signer} class=${c.signer === shown ? 'selected' : ''}>
        <td>${nameOf(names, c.signer)}${c.self ? ' (this device)' : ''} <span class="muted">${short(c.signer)}</span></td>
        <td>${c.end + 1}</td><td>${c.headSeq ?? '-'}</td><td>${c.seenSeq ?? '-'}</td>
        <td><button type="button" onClick=${() => { select(c.signer) }}>records</button></td>
      </tr>`)}</tbody>
    </table>
    ${shown != null ? html`<${Records} key=${shown} peer=${shown} names=${names} />` : null}
  </section>`
}
