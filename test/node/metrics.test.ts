// GET /metrics on a real two-device hive: the scrape passes promtool, needs no token, refuses a
// foreign Host or Origin like every route, and its counters move when a task runs through the
// API (placement on both devices, the sandbox where it ran, the ledger on both), when a context
// changes, when the ledger is audited and when a model answers a chat on the device.

import assert from 'node:assert/strict'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { dataPaths } from '../../node/config.ts'
import { makeTempDir, startMesh } from '../helpers/mesh.ts'
import { writeTinyGguf } from '../helpers/gguf.ts'
import { assertPromtoolPasses, checkRules, promtoolSkip } from '../helpers/promtool.ts'
import { waitFor } from '../helpers/wait.ts'
import { ECHO, TRAP, watAgent } from '../sandbox/fixtures.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { Mesh } from '../helpers/mesh.ts'
import type { TaskView } from '../../protocol/index.ts'

const skip = await promtoolSkip()

async function scrape (node: HiveNode): Promise<string> {
  const response = await fetch(`${node.apiUrl ?? ''}/metrics`)
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8')
  return await response.text()
}

/** One sample's value, by name and labels as rendered; 0 when the series is absent. */
function value (text: string, series: string): number {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

/** The sum of every series of a metric whose labels include all of `labels`. */
function total (text: string, name: string, labels: string[] = []): number {
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    if (labels.every(l => line.includes(l))) sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

/** A GET with a Host header of our choosing (fetch always sends the URL's own). */
async function getWithHost (url: string, host: string): Promise<{ status: number, body: string }> {
  const u = new URL(url)
  return await new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, headers: { host } }, (res) => {
      let body = ''
      res.on('data', (d: Buffer) => { body += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    req.end()
  })
}

describe('GET /metrics', () => {
  let mesh: Mesh
  let a: HiveNode
  let b: HiveNode
  let tokenA: string

  before(async () => {
    // the model list is read at each call, so a model added mid-test is found
    mesh = await startMesh(2, { label: 'metrics', init: { capabilities: { ollamaUrl: null }, llm: { router: { modelsCacheMs: 0 } } } })
    ;[a, b] = mesh.nodes as [HiveNode, HiveNode]
    tokenA = (await readFile(dataPaths(mesh.dirs[0]!).token, 'utf8')).trim()
  })
  after(async () => { await mesh.stop() })

  const post = async (node: HiveNode, token: string, path: string, body: unknown): Promise<Response> =>
    fetch(`${node.apiUrl ?? ''}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(body) })

  it('answers without the token, in the text format promtool accepts', { skip }, async () => {
    const text = await scrape(a)
    await assertPromtoolPasses(text)
    assert.equal(value(text, 'hive_members'), 2)
    assert.equal(value(text, 'hive_connected_peers'), 1)
    assert.equal(value(text, `hive_node_info{name="metrics-0",version="0.1.0",peer_id="${a.peerId.toString()}"}`), 1)
    // libp2p's own metrics are there, and they counted the connection to the other device
    assert.ok(value(text, 'libp2p_noise_xxhandshake_successes_total') >= 1, 'noise handshakes')
    assert.ok(value(text, 'libp2p_data_transfer_bytes_total{protocol="global",direction="sent"}') > 0, 'bytes sent')
    assert.ok(value(text, 'libp2p_data_transfer_bytes_total{protocol="global",direction="received"}') > 0, 'bytes received')
  })

  it('the Grafana dashboard\'s queries are valid PromQL naming only metrics a node serves, and the README lists each of ours', { skip }, async () => {
    const text = await scrape(a)
    const served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map(m => m[1] as string))
    const dashboard = JSON.parse(await readFile(new URL('../../docs/grafana/hive-node.json', import.meta.url), 'utf8')) as { panels: Array<{ targets?: Array<{ expr: string }> }> }
    const exprs = dashboard.panels.flatMap(p => p.targets ?? []).map(t => t.expr)
    assert.ok(exprs.length > 20, `the dashboard has its queries (${exprs.length})`)
    for (const expr of exprs) {
      for (const [name] of expr.matchAll(/\b(?:hive|libp2p|process|nodejs)_[a-z0-9_]+/g)) {
        const family = name.replace(/_(bucket|sum|count)$/, '')
        assert.ok(served.has(name) || served.has(family), `the dashboard's ${name} is served (in: ${expr})`)
      }
    }
    // Grafana's variables stand for a regex and a range; what is left must be PromQL
    const dir = await makeTempDir('hive-dashboard-')
    try {
      const rules = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: e.replaceAll('$instance', '.*').replaceAll('$__rate_interval', '5m') })) }] }
      await writeFile(join(dir, 'rules.yml'), JSON.stringify(rules))
      const checked = await checkRules(join(dir, 'rules.yml'))
      assert.equal(checked.code, 0, checked.output)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8')
    for (const name of served) {
      if (name.startsWith('hive_') || name.startsWith('process_') || name.startsWith('nodejs_')) assert.ok(readme.includes(`| \`${name}\` |`), `the README's metrics table lists ${name}`)
    }
  })

  it('refuses a foreign Host and a foreign Origin with 403, as every route does', async () => {
    const url = `${a.apiUrl ?? ''}/metrics`
    const host = await getWithHost(url, 'evil.example')
    assert.equal(host.status, 403)
    assert.equal((JSON.parse(host.body) as { error: { code: string } }).error.code, 'ForbiddenHost')
    const origin = await fetch(url, { headers: { origin: 'http://evil.example' } })
    assert.equal(origin.status, 403)
    assert.equal((await origin.json() as { error: { code: string } }).error.code, 'ForbiddenOrigin')
    // localhost by the API's port is the API's own address too
    assert.equal((await getWithHost(url, `localhost:${new URL(url).port}`)).status, 200)
  })

  it('counters move when a task runs: placement on both devices, the sandbox and ledger where it ran', { skip }, async () => {
    const beforeA = await scrape(a)
    const beforeB = await scrape(b)
    const agent = Buffer.from(await watAgent(ECHO)).toString('base64')
    const submitted = await post(a, tokenA, '/task', { agent, input: 'metrics', on: b.peerId.toString() })
    assert.equal(submitted.status, 202, await submitted.clone().text())
    const { task } = await submitted.json() as { task: TaskView }
    const done = await (await fetch(`${a.apiUrl ?? ''}/task/${task.id}?waitMs=60000`)).json() as { task: TaskView }
    assert.equal(done.task.status, 'done', JSON.stringify(done.task.error ?? done.task.history.at(-1)))
    assert.equal(done.task.result?.output, 'metrics')

    const moved = (after: string, before: string, series: string): number => value(after, series) - value(before, series)
    // the submitter: the task through every status, its durations, the bid it received
    const afterA = await waitFor(async () => {
      const text = await scrape(a)
      // the ledger record b appended reaches a by gossip and fetch
      return moved(text, beforeA, 'hive_ledger_records_total{chain="peers"}') >= 1 ? text : undefined
    }, { message: 'a copies b\'s ledger record' })
    for (const status of ['bidding', 'awarded', 'running', 'done']) {
      assert.equal(moved(afterA, beforeA, `hive_tasks_total{status="${status}"}`), 1, status)
    }
    assert.equal(moved(afterA, beforeA, 'hive_tasks_total{status="failed"}'), 0)
    assert.equal(moved(afterA, beforeA, 'hive_task_duration_seconds_count{outcome="done"}'), 1)
    assert.equal(moved(afterA, beforeA, 'hive_task_placement_overhead_seconds_count'), 1)
    assert.ok(value(afterA, 'hive_task_duration_seconds_sum{outcome="done"}') > value(beforeA, 'hive_task_duration_seconds_sum{outcome="done"}'))
    assert.ok(moved(afterA, beforeA, 'hive_bids_received_total{outcome="accepted"}') + moved(afterA, beforeA, 'hive_bids_received_total{outcome="dht"}') >= 1, 'b\'s bid reached a')
    assert.equal(total(afterA, 'hive_bids_total') - total(beforeA, 'hive_bids_total'), 1, 'a answered its own announcement once')
    assert.equal(moved(afterA, beforeA, 'hive_sandbox_runs_total{outcome="ok"}'), 0, 'the task did not run on a')

    // the device that ran it: its bid, its run, the sandbox, its own ledger record
    const afterB = await scrape(b)
    assert.ok(moved(afterB, beforeB, 'hive_bids_total{outcome="sent"}') + moved(afterB, beforeB, 'hive_bids_total{outcome="dht"}') >= 1)
    assert.equal(moved(afterB, beforeB, 'hive_task_runs_total{outcome="accepted"}'), 1)
    assert.equal(moved(afterB, beforeB, 'hive_sandbox_runs_total{outcome="ok"}'), 1)
    assert.equal(moved(afterB, beforeB, 'hive_sandbox_run_duration_seconds_count{outcome="ok"}'), 1)
    assert.equal(moved(afterB, beforeB, 'hive_sandbox_starts_total{start="warm"}') + moved(afterB, beforeB, 'hive_sandbox_starts_total{start="cold"}'), 1)
    assert.equal(moved(afterB, beforeB, 'hive_ledger_records_total{chain="self"}'), 1)
    assert.equal(value(afterB, 'hive_ledger_records{chain="self"}'), value(beforeB, 'hive_ledger_records{chain="self"}') + 1)
    assert.ok(moved(afterB, beforeB, 'libp2p_data_transfer_bytes_total{protocol="/hive/agent-fetch/1.0.0",direction="received"}') > 0, 'b fetched the agent from a')
    await assertPromtoolPasses(afterA)
    await assertPromtoolPasses(afterB)
  })

  it('a failed run is counted by its error code', async () => {
    const before = await scrape(a)
    const bad = await post(a, tokenA, '/agents/run', { agent: Buffer.from(await watAgent(TRAP)).toString('base64'), input: 'x' })
    assert.equal((await bad.json() as { error: { code: string } }).error.code, 'AgentTrapped')
    const after = await scrape(a)
    assert.equal(value(after, 'hive_sandbox_run_failures_total{code="AgentTrapped"}') - value(before, 'hive_sandbox_run_failures_total{code="AgentTrapped"}'), 1)
    assert.equal(total(after, 'hive_sandbox_run_failures_total') - total(before, 'hive_sandbox_run_failures_total'), 1)
    assert.equal(value(after, 'hive_sandbox_runs_total{outcome="error"}') - value(before, 'hive_sandbox_runs_total{outcome="error"}'), 1)
  })

  it('context updates, their bytes and ledger audits are counted', async () => {
    const before = await scrape(a)
    const set = await post(a, tokenA, '/contexts/metrics-ctx/state', { key: 'note', value: 'x'.repeat(100) })
    assert.equal(set.status, 200, await set.clone().text())
    const verify = await fetch(`${a.apiUrl ?? ''}/ledger/verify`)
    assert.equal(verify.status, 200)
    const after = await scrape(a)
    assert.ok(value(after, 'hive_context_updates_total{origin="local"}') > value(before, 'hive_context_updates_total{origin="local"}'))
    assert.ok(value(after, 'hive_context_update_bytes_total{origin="local"}') - value(before, 'hive_context_update_bytes_total{origin="local"}') >= 100)
    assert.equal(value(after, 'hive_ledger_verifications_total{result="ok"}') - value(before, 'hive_ledger_verifications_total{result="ok"}'), 1)
    assert.ok(value(after, 'hive_contexts') >= 1)
    // the update reaches b, which counts it as a peer's
    await waitFor(async () => value(await scrape(b), 'hive_context_updates_total{origin="remote"}') > 0, { message: 'b applies a\'s context update' })
  })

  it('a chat answered on this device counts a call and its tokens under the local route', async () => {
    const models = join(mesh.dirs[0]!, 'models')
    await mkdir(models, { recursive: true })
    await writeTinyGguf(join(models, 'tiny.gguf'), { name: 'tiny' })
    const before = await scrape(a)
    const response = await post(a, tokenA, '/llm/chat', { prompt: 'hello', models: ['tiny'], maxTokens: 3, temperature: 0, seed: 1 })
    assert.equal(response.status, 200)
    const lines = (await response.text()).trim().split('\n').map(l => JSON.parse(l) as { done?: { tokensIn: number, tokensOut: number }, error?: unknown })
    const done = lines.find(l => l.done != null)?.done
    assert.ok(done != null, JSON.stringify(lines.at(-1)))
    const after = await scrape(a)
    assert.equal(value(after, 'hive_llm_calls_total{route="local",kind="chat"}') - value(before, 'hive_llm_calls_total{route="local",kind="chat"}'), 1)
    assert.equal(value(after, 'hive_llm_tokens_total{route="local",direction="out"}') - value(before, 'hive_llm_tokens_total{route="local",direction="out"}'), done.tokensOut)
    assert.equal(value(after, 'hive_llm_tokens_total{route="local",direction="in"}') - value(before, 'hive_llm_tokens_total{route="local",direction="in"}'), done.tokensIn)
  })
})
