// The dashboard in a real headless browser (Debian's Chromium through playwright-core) against a
// real hive of three nodes on loopback: the one-time login, the refusals, every view, and the
// page following the event stream (a running task's log line live on its page, the task on its
// way on the map). Each view's screenshot is kept as a test artefact in a temporary folder whose
// path is printed.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { main } from '../../node/cli.ts'
import { browserSkip, launchChromium } from '../helpers/browser.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { apiToken, followEvents } from '../helpers/sse.ts'
import { waitFor } from '../helpers/wait.ts'
import { LOG_THEN_LOOP, watAgent } from '../sandbox/fixtures.ts'
import { echoAgent, startHive } from '../protocol/placement/fixture.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'
import type { EventClient } from '../helpers/sse.ts'
import type { Server } from 'node:http'
import type { Browser, BrowserContext, Page } from 'playwright-core'

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

const skip = await browserSkip()
const TIMEOUT = 60_000

describe('the dashboard in a browser, on a hive of three', { skip }, () => {
  let hive: TestHive
  let browser: Browser
  let context: BrowserContext
  let page: Page
  let api: string
  let data: string
  let files: string
  let shots: string
  let echo: string

  /** A fresh single-use login address from the CLI, as `hive-node dashboard --print` gives it. */
  const loginUrl = async (): Promise<string> => {
    const printed = await cli('--data', data, 'dashboard', '--json')
    assert.equal(printed.code, 0, printed.err)
    return (JSON.parse(printed.out) as { url: string }).url
  }

  const shoot = async (name: string): Promise<void> => {
    const path = join(shots, `${name}.png`)
    await page.screenshot({ path, fullPage: true })
    console.log(`screenshot: ${path}`)
  }

  before(async () => {
    hive = await startHive(3)
    data = hive.mesh.dirs[0]!
    api = hive.nodes[0]!.apiUrl!
    files = await makeTempDir('hive-dashboard-')
    shots = await mkdtemp(join(tmpdir(), 'hive-dashboard-shots-'))
    echo = join(files, 'echo.wasm')
    await writeFile(echo, await echoAgent('dash-echo'))
    browser = await launchChromium()
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
    page = await context.newPage()
  })

  after(async () => {
    await browser?.close()
    await hive?.stop()
    await rm(files, { recursive: true, force: true })
  })

  it('gives a page, its modules and its library nothing without the session cookie', async () => {
    for (const path of ['/', '/ui/app.js', '/ui/lib/preact.mjs']) {
      const response = await fetch(api + path)
      assert.equal(response.status, 401, path)
      const body = await response.text()
      assert.doesNotMatch(body, /import|preact|<script/i, `${path} shows nothing of the dashboard`)
    }
    // a cookie the node never issued is no session
    const forged = await fetch(api + '/', { headers: { cookie: `hive_session_${new URL(api).port}=${'ab'.repeat(32)}` } })
    assert.equal(forged.status, 401)
    // and in the browser: the refusal, which says how to log in
    const stranger = await browser.newContext()
    const p = await stranger.newPage()
    const answer = await p.goto(api + '/')
    assert.equal(answer?.status(), 401)
    assert.match(await p.textContent('body') ?? '', /Not logged in.*hive-node dashboard/s)
    await stranger.close()
  })

  it('logs in once through the code, which then works no more, with an HttpOnly, SameSite=Strict cookie and no code left in the address', async () => {
    const url = await loginUrl()
    assert.match(url, new RegExp(`^${api}/login\\?code=[0-9a-f]{64}$`))
    const answer = await page.goto(url)
    assert.equal(answer?.status(), 200)
    assert.equal(page.url(), `${api}/`, 'redirected to the dashboard, the code gone from the address bar')
    await page.waitForSelector('svg.map', { timeout: TIMEOUT })
    const cookies = await context.cookies(api)
    assert.equal(cookies.length, 1)
    assert.equal(cookies[0]?.httpOnly, true)
    assert.equal(cookies[0]?.sameSite, 'Strict')
    assert.equal(await page.evaluate(() => document.cookie), '', 'no script on the page can read the session')
    assert.doesNotMatch(await page.content(), /[0-9a-f]{64}/, 'neither the token nor the session is in the page')

    // the same code again, from another browser: refused
    const other = await browser.newContext()
    const again = await (await other.newPage()).goto(url)
    assert.equal(again?.status(), 401)
    assert.match(await again?.text() ?? '', /Login refused/)
    assert.equal((await other.cookies(api)).length, 0)
    await other.close()
  })

  it('shows the three devices on the map with the connections between them', async () => {
    await page.goto(`${api}/#/map`)
    await waitFor(async () => await page.locator('svg.map g.device').count() === 3 && await page.locator('svg.map line.edge').count() === 3,
      { message: 'the map shows 3 devices and 3 edges', timeoutMs: TIMEOUT })
    const names = await page.locator('svg.map g.device').evaluateAll(gs => gs.map(g => g.getAttribute('data-name')))
    assert.deepEqual(names.sort(), hive.nodes.map(n => n.name).sort())
    const ids = new Set(hive.nodes.map(n => n.peerId.toString()))
    for (const edge of await page.locator('svg.map line.edge').evaluateAll(ls => ls.map(l => [l.getAttribute('data-a'), l.getAttribute('data-b')]))) {
      assert.ok(edge.every(p => p != null && ids.has(p)), 'an edge joins two of the three devices')
    }
    assert.match(await page.locator('svg.map g.device.self').textContent() ?? '', /cores/)
    await shoot('map')
  })

  let task: string

  it('shows a task submitted through the CLI, until it is done with its output, its bids and its logs', async () => {
    const run = await cli('--data', data, 'run', echo, '--input', 'hello dashboard', '--json')
    assert.equal(run.code, 0, run.err)
    task = (JSON.parse(run.out) as { task: string }).task
    await page.goto(`${api}/#/tasks`)
    await page.waitForSelector(`tr[data-task="${task}"][data-status="done"]`, { timeout: TIMEOUT })
    await shoot('tasks')
    await page.click(`tr[data-task="${task}"] a`)
    await page.waitForSelector('[data-testid="task-detail"][data-status="done"]', { timeout: TIMEOUT })
    assert.equal(await page.textContent('[data-testid="task-output"]'), 'hello dashboard')
    await page.waitForSelector('[data-testid="bids"] tbody tr', { timeout: TIMEOUT })
    assert.equal(await page.locator('[data-testid="bids"] tbody tr').count(), 3, 'every device\'s bid')
    await shoot('task')
    // the map shows it on the device that ran it
    await page.goto(`${api}/#/map`)
    await page.waitForSelector(`svg.map g.device [data-task="${task}"]`, { timeout: TIMEOUT })
    await shoot('map-after-task')
  })

  it('follows the event stream: a running task\'s log line shows on its page before the task ends, and the task on its way on the map', async () => {
    const [submitter, runner] = [hive.nodes[0]!, hive.nodes[1]!]
    assert.equal(await page.evaluate(() => document.documentElement.dataset.live), 'stream', 'the page follows GET /events, not polling')
    // it logs, then loops until its deadline (long after this test): the task runs on another device throughout
    const agent = await watAgent(LOG_THEN_LOOP, { name: 'dash-live', permissions: ['log'], limits: { timeoutMs: 300_000, memoryMiB: 1 } })
    const response = await fetch(`${api}/task`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await apiToken(submitter)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: Buffer.from(agent).toString('base64'), input: 'live in the browser', on: runner.peerId.toString() })
    })
    assert.equal(response.status, 202)
    const live = (await response.json() as { task: { id: string } }).task.id
    await page.goto(`${api}/#/tasks/${live}`)
    await waitFor(async () => /live in the browser/.test(await page.locator('[data-testid="task-logs"]').textContent().catch(() => '') ?? ''),
      { message: 'the log line on the task page', timeoutMs: TIMEOUT })
    assert.equal(submitter.placement.get(live)?.status, 'running', 'the task has not ended')
    assert.equal(await page.getAttribute('[data-testid="task-detail"]', 'data-status'), 'running')
    await shoot('task-live')
    await page.goto(`${api}/#/map`)
    await page.waitForSelector(`svg.map circle.moving[data-task="${live}"]`, { timeout: TIMEOUT })
    assert.match(await page.locator(`svg.map circle.moving[data-task="${live}"] title`).textContent() ?? '', new RegExp(`→ ${runner.name}`))
    assert.equal(submitter.placement.get(live)?.status, 'running')
    await shoot('map-task-moving')
  })

  it('polls while the event stream is refused (every subscriber slot taken), and goes back to the stream once one frees', async () => {
    const node = hive.nodes[0]!
    const held: EventClient[] = []
    const second = await context.newPage()
    try {
      // every slot taken, the page's own included: a new page's stream is refused with 503
      await page.goto('about:blank')
      await waitFor(() => node.events.subscriberCount === 0, { message: 'the first page let its stream go', timeoutMs: TIMEOUT })
      for (;;) {
        const response = await fetch(`${api}/events`, { headers: { authorization: `Bearer ${await apiToken(node)}` } })
        await response.body?.cancel()
        if (response.status === 503) break
        held.push(await followEvents(node))
      }
      await second.goto(`${api}/#/tasks`)
      await waitFor(async () => await second.evaluate(() => document.documentElement.dataset.live) === 'poll', { message: 'the page polls', timeoutMs: TIMEOUT })
      // and still sees a new task reach done
      const run = await cli('--data', data, 'run', echo, '--input', 'seen by polling', '--json')
      assert.equal(run.code, 0, run.err)
      const polled = (JSON.parse(run.out) as { task: string }).task
      await second.waitForSelector(`tr[data-task="${polled}"][data-status="done"]`, { timeout: TIMEOUT })
      // a slot frees: the page opens its stream again
      held.pop()?.close()
      await waitFor(async () => await second.evaluate(() => document.documentElement.dataset.live) === 'stream', { message: 'the page follows the stream again', timeoutMs: TIMEOUT })
    } finally {
      for (const c of held) c.close()
      await second.close()
    }
  })

  it('verifies the ledger from its view and reports it clean', async () => {
    await page.goto(`${api}/#/ledger`)
    await waitFor(async () => await page.locator('[data-testid="chains"] tbody tr').count() >= 1, { message: 'chains listed', timeoutMs: TIMEOUT })
    await page.click('[data-testid="verify"]')
    await page.waitForSelector('[data-testid="verify-result"]', { timeout: TIMEOUT })
    assert.equal(await page.getAttribute('[data-testid="verify-result"]', 'data-ok'), 'true')
    assert.match(await page.textContent('[data-testid="verify-result"]') ?? '', /^Clean: \d+ chains?, \d+ records? checked/)
    await shoot('ledger')
  })

  it('shows contexts, members with a pairing QR code, and agents', async () => {
    await cli('--data', data, 'context', 'append', 'notes', 'a first line', '--role', 'user')
    await cli('--data', data, 'context', 'set', 'notes', 'topic', '"the dashboard"')
    await page.goto(`${api}/#/contexts`)
    await page.waitForSelector('[data-testid="contexts"] a', { timeout: TIMEOUT })
    await page.click('[data-testid="contexts"] a')
    await page.waitForSelector('ol.conversation li', { timeout: TIMEOUT })
    await shoot('context')

    await page.goto(`${api}/#/members`)
    await waitFor(async () => await page.locator('[data-testid="members"] tbody tr').count() === 3, { message: 'three members', timeoutMs: TIMEOUT })
    await page.click('[data-testid="pair"]')
    await page.waitForSelector('[data-testid="invite"] img', { timeout: TIMEOUT })
    assert.match(await page.textContent('[data-testid="invite"]') ?? '', /hive-node join hive:\/\/join\//)
    await waitFor(async () => (await page.locator('[data-testid="invite"] img').evaluate(img => (img as HTMLImageElement).naturalWidth)) > 0, { message: 'the QR code is drawn' })
    await shoot('members')

    await page.goto(`${api}/#/agents`)
    await page.waitForSelector('[data-testid="agents"] tbody tr', { timeout: TIMEOUT })
    assert.match(await page.textContent('[data-testid="agents"]') ?? '', /dash-echo/)
    await shoot('agents')
  })

  it('refuses a foreign Origin, even from the logged-in browser, and a write that carries the cookie but no Origin', async () => {
    const before = hive.nodes[0]!.hive.membership.members().length
    const victim = hive.nodes[2]!.peerId.toString()
    // a page on another port of 127.0.0.1 (same site, so the browser sends the cookie) posts to the API
    const foreign: Server = createServer((_req, res) => { res.setHeader('content-type', 'text/html').end('<!doctype html><p>elsewhere</p>') })
    await new Promise<void>(resolve => { foreign.listen(0, '127.0.0.1', resolve) })
    try {
      const port = (foreign.address() as { port: number }).port
      await page.goto(`http://127.0.0.1:${port}/`)
      const status = await page.evaluate(async ([target, peer]) => {
        const r = await fetch(`${target}/hive/remove`, { method: 'POST', credentials: 'include', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ peer }) })
        return r.type
      }, [api, victim] as const)
      assert.equal(status, 'opaque')
    } finally {
      foreign.close()
    }
    // the same, seen from the API's side: the cookie with a foreign Origin, and with none
    const cookie = (await context.cookies(api)).map(c => `${c.name}=${c.value}`).join('; ')
    const foreignOrigin = await fetch(`${api}/hive/remove`, { method: 'POST', headers: { cookie, origin: 'http://evil.example', 'content-type': 'application/json' }, body: JSON.stringify({ peer: victim }) })
    assert.equal(foreignOrigin.status, 403)
    assert.equal((await foreignOrigin.json() as { error: { code: string } }).error.code, 'ForbiddenOrigin')
    const noOrigin = await fetch(`${api}/hive/remove`, { method: 'POST', headers: { cookie, 'content-type': 'application/json' }, body: JSON.stringify({ peer: victim }) })
    assert.equal(noOrigin.status, 401)
    assert.equal(hive.nodes[0]!.hive.membership.members().length, before, 'nobody was removed')
    // while the page itself writes with its cookie and its own Origin
    const own = await fetch(`${api}/pairing/invites`, { method: 'POST', headers: { cookie, origin: api, 'content-type': 'application/json' }, body: '{}' })
    assert.equal(own.status, 201)
  })
})
