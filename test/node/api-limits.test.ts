// Every limit the README states holds at the local API's door, and every refusal, including
// the HTTP framework's own (a long path parameter, a wrong media type, a body too large), is in
// the documented shape `{ error: { code, message } }`.

import assert from 'node:assert/strict'
import { connect as netConnect } from 'node:net'
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { runCli } from '../helpers/cli.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { ECHO_BODY, agentWat, watAgent } from '../sandbox/fixtures.ts'
import type { HiveNode } from '../../node/hive-node.ts'

interface ErrorBody { error: { code: string, message: string } }

function assertErrorShape (body: unknown): ErrorBody {
  const b = body as ErrorBody
  assert.equal(typeof b?.error?.code, 'string', `an error in the documented shape: ${JSON.stringify(body)}`)
  assert.equal(typeof b.error.message, 'string')
  assert.deepEqual(Object.keys(b), ['error'])
  return b
}

/** Sends raw bytes and resolves with everything the server answered once it closes. */
async function raw (port: number, request: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1')
    let answer = ''
    socket.on('data', (chunk) => { answer += chunk.toString() })
    socket.on('error', reject)
    socket.on('close', () => { resolve(answer) })
    socket.end(request)
  })
}

function nestedJson (depth: number): string {
  return '['.repeat(depth) + '1' + ']'.repeat(depth)
}

describe('the local API honours every stated limit, in the documented error shape', () => {
  let node: HiveNode
  let dir: string
  let token: string
  let auth: Record<string, string>

  before(async () => {
    dir = await makeTempDir()
    node = await startNode('api-limits', {}, dir)
    token = (await readFile(join(dir, 'api.token'), 'utf8')).trim()
    auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' }
  })
  after(async () => {
    await node.stop()
    await rm(dir, { recursive: true, force: true })
  })

  for (const depth of [100, 100_000]) {
    it(`a state value nested ${depth} deep is a 400 ValueTooDeep, and nothing is stored`, async () => {
      const response = await fetch(`${node.apiUrl}/contexts/deep/state`, { method: 'POST', headers: auth, body: `{"key":"k","value":${nestedJson(depth)}}` })
      const body = assertErrorShape(await response.json())
      assert.equal(response.status, 400)
      assert.equal(body.error.code, 'ValueTooDeep')
      assert.equal(node.contexts.store.get('deep')?.get('k'), undefined)
    })
  }

  it('a context id of 128 characters works through the API and the CLI', async () => {
    const id = 'c' + 'x'.repeat(127)
    const set = await fetch(`${node.apiUrl}/contexts/${id}/state`, { method: 'POST', headers: auth, body: '{"key":"k","value":"v"}' })
    assert.equal(set.status, 200, await set.clone().text())
    const read = await fetch(`${node.apiUrl}/contexts/${id}`)
    assert.equal(read.status, 200)
    assert.equal(((await read.json()) as { state: Record<string, unknown> }).state.k, 'v')
    const checkpoint = await fetch(`${node.apiUrl}/contexts/${id}/checkpoints`, { method: 'POST', headers: auth, body: '{"name":"one"}' })
    assert.equal(checkpoint.status, 200)
    const at = await fetch(`${node.apiUrl}/contexts/${id}/checkpoints/one`)
    assert.equal(at.status, 200)
    const cli = await runCli(['--data', dir, 'context', 'get', id, '--json'])
    assert.equal(cli.code, 0, cli.stderr)
    assert.equal((JSON.parse(cli.stdout) as { state: Record<string, unknown> }).state.k, 'v')
  })

  it('a context id of 129 characters is a 400 InvalidContextId, not the framework\'s 414', async () => {
    const response = await fetch(`${node.apiUrl}/contexts/${'c'.repeat(129)}`)
    const body = assertErrorShape(await response.json())
    assert.equal(response.status, 400)
    assert.equal(body.error.code, 'InvalidContextId')
  })

  it('a path parameter far beyond any id is refused in the documented shape', async () => {
    const response = await fetch(`${node.apiUrl}/contexts/${'c'.repeat(5000)}`)
    assertErrorShape(await response.json())
    assert.ok(response.status >= 400 && response.status < 500)
  })

  it('a body of the wrong media type is a 415 in the documented shape', async () => {
    const response = await fetch(`${node.apiUrl}/contexts/x/state`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/xml' }, body: '<a/>' })
    const body = assertErrorShape(await response.json())
    assert.equal(response.status, 415)
    assert.equal(body.error.code, 'UnsupportedMediaType')
  })

  it('a body over the size limit is a 413 in the documented shape', async () => {
    const response = await fetch(`${node.apiUrl}/contexts/x/state`, { method: 'POST', headers: auth, body: `{"key":"k","value":"${'x'.repeat(9 * 1024 * 1024)}"}` })
    const body = assertErrorShape(await response.json())
    assert.equal(response.status, 413)
    assert.equal(body.error.code, 'BodyTooLarge')
  })

  it('a task input over 4 MiB is a 400 InvalidTask saying the bound, and nothing is placed; 4 MiB is taken', async () => {
    const agent = Buffer.from(await watAgent(agentWat(ECHO_BODY), { name: 'limits-echo' })).toString('base64')
    const before = node.placement.list().length
    const over = await fetch(`${node.apiUrl}/task`, { method: 'POST', headers: auth, body: JSON.stringify({ agent, input: 'i'.repeat(4 * 1024 * 1024 + 1), local: true }) })
    const body = assertErrorShape(await over.json())
    assert.equal(over.status, 400)
    assert.equal(body.error.code, 'InvalidTask')
    assert.match(body.error.message, /the input is 4194305 bytes; at most 4194304 are accepted/)
    assert.equal(node.placement.list().length, before)
    const fits = await fetch(`${node.apiUrl}/task`, { method: 'POST', headers: auth, body: JSON.stringify({ agent, input: 'i'.repeat(4 * 1024 * 1024), local: true }) })
    assert.equal(fits.status, 202, await fits.clone().text())
  })

  it('malformed JSON is a 400 in the documented shape', async () => {
    const response = await fetch(`${node.apiUrl}/contexts/x/state`, { method: 'POST', headers: auth, body: '{nope' })
    const body = assertErrorShape(await response.json())
    assert.equal(response.status, 400)
    assert.equal(body.error.code, 'BadRequest')
  })

  it('an HTTP/1.0 request without a Host header is refused like a wrong Host, even with the token', async () => {
    const port = new URL(node.apiUrl as string).port
    const get = await raw(Number(port), 'GET /health HTTP/1.0\r\n\r\n')
    assert.match(get, /^HTTP\/1\.[01] 403 /)
    assert.equal(assertErrorShape(JSON.parse(get.slice(get.indexOf('\r\n\r\n') + 4))).error.code, 'ForbiddenHost')
    let stopRequested = false
    node.addEventListener('stop-requested', () => { stopRequested = true }, { once: true })
    const post = await raw(Number(port), `POST /stop HTTP/1.0\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`)
    assert.match(post, /^HTTP\/1\.[01] 403 /)
    assert.equal(stopRequested, false)
    assert.equal(node.running, true)
    // with its own Host it is served
    const ok = await raw(Number(port), `GET /health HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
    assert.match(ok, /^HTTP\/1\.[01] 200 /)
  })
})
