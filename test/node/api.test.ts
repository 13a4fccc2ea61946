import assert from 'node:assert/strict'
import { readFile, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import type { HiveNode } from '../../node/hive-node.ts'

describe('local HTTP API', () => {
  let node: HiveNode
  let dir: string
  let token: string

  before(async () => {
    dir = await makeTempDir()
    node = await startNode('api', {}, dir)
    token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
  })
  after(async () => {
    await node.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('listens on 127.0.0.1 only and keeps its token private', async () => {
    assert.match(node.apiUrl!, /^http:\/\/127\.0\.0\.1:\d+$/)
    assert.equal((await stat(join(dir, 'api.token'))).mode & 0o777, 0o600)
    assert.match(token, /^[0-9a-f]{64}$/)
  })

  it('POST /stop without the token is 401 and the node keeps running', async () => {
    let stopRequested = false
    node.addEventListener('stop-requested', () => { stopRequested = true }, { once: true })
    const response = await fetch(`${node.apiUrl}/stop`, { method: 'POST' })
    assert.equal(response.status, 401)
    const body = await response.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'Unauthorized')
    const wrong = await fetch(`${node.apiUrl}/stop`, { method: 'POST', headers: { authorization: 'Bearer 00' } })
    assert.equal(wrong.status, 401)
    const health = await fetch(`${node.apiUrl}/health`)
    assert.equal(health.status, 200)
    assert.equal(stopRequested, false)
    assert.equal(node.running, true)
  })

  it('a foreign Origin is refused with 403, even with the token', async () => {
    const response = await fetch(`${node.apiUrl}/stop`, {
      method: 'POST',
      headers: { origin: 'http://evil.example', authorization: `Bearer ${token}` }
    })
    assert.equal(response.status, 403)
    assert.equal((await response.json() as { error: { code: string } }).error.code, 'ForbiddenOrigin')
    const read = await fetch(`${node.apiUrl}/peers`, { headers: { origin: 'http://evil.example' } })
    assert.equal(read.status, 403)
    assert.equal(node.running, true)
  })

  it('an unknown route is a 404 JSON error', async () => {
    const response = await fetch(`${node.apiUrl}/nope`)
    assert.equal(response.status, 404)
    assert.match(response.headers.get('content-type') ?? '', /application\/json/)
    const body = await response.json() as { error: { code: string, message: string } }
    assert.equal(body.error.code, 'NotFound')
    assert.match(body.error.message, /GET \/nope/)
  })

  it('malformed JSON is a 400 JSON error', async () => {
    const response = await fetch(`${node.apiUrl}/stop`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{not json'
    })
    assert.equal(response.status, 400)
    assert.ok((await response.json() as { error: { code: string } }).error.code.length > 0)
  })

  it('GET /runtimes lists the runtimes with a status', async () => {
    const body = await (await fetch(`${node.apiUrl}/runtimes`)).json() as { runtimes: Array<{ name: string, status: string }> }
    assert.ok(body.runtimes.length > 0)
    for (const runtime of body.runtimes) assert.match(runtime.status, /^(ready|unavailable|starting|not built|not configured)$/)
  })

  it('POST /stop with the token asks the node to stop', async () => {
    const asked = new Promise<void>(resolve => { node.addEventListener('stop-requested', () => { resolve() }, { once: true }) })
    const response = await fetch(`${node.apiUrl}/stop`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })
    assert.equal(response.status, 202)
    await asked
  })
})
