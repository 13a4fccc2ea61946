// The dashboard's shell: a header with this device's name and health, the views' tabs, and a
// hash router (#/map, #/tasks, #/tasks/ID, #/ledger, #/contexts, #/contexts/ID, #/members,
// #/agents), so every view has an address and the back button works.

import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { loggedOut, post, startLive, stopLive } from './api.js'
import { useApi } from './hooks.js'
import { html } from './format.js'
import { MapView } from './map.js'
import { TaskView, TasksView } from './tasks.js'
import { LedgerView } from './ledger.js'
import { ContextView, ContextsView } from './contexts.js'
import { MembersView } from './members.js'
import { AgentsView } from './agents.js'

const TABS = [
  ['map', 'Map'],
  ['tasks', 'Tasks'],
  ['ledger', 'Ledger'],
  ['contexts', 'Contexts'],
  ['members', 'Members'],
  ['agents', 'Agents']
]

function route () {
  const [, view = 'map', ...rest] = window.location.hash.replace(/^#/, '').split('/')
  return { view, arg: rest.length > 0 ? decodeURIComponent(rest.join('/')) : undefined }
}

function Header () {
  const health = useApi('/health', ['peers', 'ledger'])
  const h = health.data
  const logout = async () => {
    stopLive()
    await post('/logout').catch(() => {})
    window.location.reload()
  }
  return html`<header>
    <h1>hive-node</h1>
    ${h != null ? html`<span class="device" data-testid="self">${h.name} · ${h.peerCount} peers · v${h.version}${h.ledger?.state === 'damaged' ? html` · <span class="error">ledger damaged</span>` : null}</span>` : null}
    <button type="button" class="quiet" onClick=${logout}>Log out</button>
  </header>`
}

function View ({ view, arg }) {
  if (view === 'tasks') return arg != null ? html`<${TaskView} id=${arg} />` : html`<${TasksView} />`
  if (view === 'ledger') return html`<${LedgerView} />`
  if (view === 'contexts') return arg != null ? html`<${ContextView} id=${arg} />` : html`<${ContextsView} />`
  if (view === 'members') return html`<${MembersView} />`
  if (view === 'agents') return html`<${AgentsView} />`
  return html`<${MapView} />`
}

function App () {
  const [where, setWhere] = useState(route())
  useEffect(() => {
    const onHash = () => { setWhere(route()) }
    window.addEventListener('hashchange', onHash)
    return () => { window.removeEventListener('hashchange', onHash) }
  }, [])
  return html`<div>
    <${Header} />
    <nav>${TABS.map(([id, label]) => html`<a key=${id} href=${`#/${id}`} class=${where.view === id || (where.view === '' && id === 'map') ? 'active' : ''}>${label}</a>`)}</nav>
    ${loggedOut ? html`<p class="error" role="alert">The node no longer knows this browser (it restarted, or the session ended): run <code>hive-node dashboard</code> again.</p>` : null}
    <main><${View} key=${`${where.view}/${where.arg ?? ''}`} view=${where.view} arg=${where.arg} /></main>
  </div>`
}

startLive()
const root = document.getElementById('app')
// the placeholder goes: render() adds to what the container holds
root.replaceChildren()
render(html`<${App} />`, root)
