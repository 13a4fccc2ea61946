// The bounds of an agent's http requests, one test per row of the README's limits checklist: the
// request body (1 MiB), its headers (64, 8 KiB together), its URL (8 KiB), the `net:` origins a
// manifest names (32) and the origins a device refuses (32). Each bound holds for what arrives
// (an agent's request, a component, a peer's capabilities) and for what this node writes itself
// (a redirect it follows, the headers it hands back, a manifest it builds, its own capabilities).
// A request past a bound is refused before a socket opens: the test server counts connections.

import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { HiveNode } from '../../node/hive-node.ts'
import { CapabilityMessage, MAX_NET_REFUSE, decodeCapabilityMessage } from '../../protocol/capabilities/schema.ts'
import { appendCustomSection } from '../../sandbox/binary.ts'
import { inspectAgentBytes } from '../../sandbox/index.ts'
import { MANIFEST_SECTION, embedManifest } from '../../sandbox/manifest.ts'
import { NET_LIMITS, createNetRun, parseOrigin } from '../../sandbox/net.ts'
import { encode as cborEncode } from 'cborg'
import { loopbackInit, makeTempDir, startNode } from '../helpers/mesh.ts'
import { BASE_MANIFEST, ECHO, watComponent } from './fixtures.ts'
import type { IncomingMessage, Server } from 'node:http'
import type { NetRequest } from '../../sandbox/net.ts'

interface Seen { method: string, url: string, headers: IncomingMessage['headers'], rawHeaders: string[], body: number }

describe('bounds of an agent\'s http requests', () => {
  let server: Server
  let origin: string
  let connections = 0
  const seen: Seen[] = []
  /** What the server answers on a path; the default is a short 200. */
  const answer = new Map<string, (res: import('node:http').ServerResponse) => void>()

  before(async () => {
    server = createServer((req, res) => {
      let body = 0
      req.on('data', (c: Buffer) => { body += c.byteLength })
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body })
        const reply = answer.get((req.url ?? '').split('?')[0] ?? '')
        if (reply != null) reply(res)
        else res.end('ok')
      })
    })
    // large enough for an 8 KiB URL and 8 KiB of headers
    server.maxHeadersCount = 200
    server.on('connection', () => { connections++ })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  })

  after(async () => {
    server?.closeAllConnections()
    await new Promise<void>(resolve => server?.close(() => { resolve() }))
  })

  const run = (): ReturnType<typeof createNetRun> => createNetRun({ origins: [parseOrigin(origin)] })
  const request = (r: Partial<NetRequest>): NetRequest => ({ method: 'GET', url: `${origin}/`, headers: [], body: new Uint8Array(0), ...r })

  /** Runs a request that must be refused as too-large without the server seeing a connection. */
  async function refusedUnsent (r: NetRequest, message: RegExp): Promise<void> {
    const before = { connections, requests: seen.length }
    const net = run()
    const answer = await net.request(r, AbortSignal.timeout(10_000))
    assert.equal(answer.ok, false)
    assert.equal(answer.ok ? '' : answer.error.tag, 'too-large')
    assert.match(answer.ok ? '' : answer.error.val, message)
    assert.deepEqual({ connections, requests: seen.length }, before, 'nothing reached the server')
  }

  it(`request body: ${NET_LIMITS.maxRequestBodyBytes} bytes are sent whole; one byte more is too-large and opens no connection`, async () => {
    assert.equal(NET_LIMITS.maxRequestBodyBytes, 1024 * 1024)
    const net = run()
    const ok = await net.request(request({ method: 'POST', url: `${origin}/upload`, body: new Uint8Array(NET_LIMITS.maxRequestBodyBytes).fill(7) }), AbortSignal.timeout(10_000))
    assert.equal(ok.ok, true, JSON.stringify(ok.ok ? '' : ok.error))
    assert.equal(seen.at(-1)?.body, NET_LIMITS.maxRequestBodyBytes)
    await refusedUnsent(request({ method: 'POST', body: new Uint8Array(NET_LIMITS.maxRequestBodyBytes + 1) }), /request body is 1048577 bytes; at most 1048576/)
    // a 307 sends the body again, to a granted origin and within the same bound
    answer.set('/again', (res) => { res.writeHead(307, { location: '/upload' }); res.end() })
    const again = await run().request(request({ method: 'PUT', url: `${origin}/again`, body: new Uint8Array(1000) }), AbortSignal.timeout(10_000))
    assert.equal(again.ok, true)
    assert.deepEqual(seen.slice(-2).map(s => [s.url, s.body]), [['/again', 1000], ['/upload', 1000]])
  })

  it(`request headers: ${NET_LIMITS.maxHeaders} headers of ${NET_LIMITS.maxHeaderChars} characters together are sent; one header more or one character more is too-large and opens no connection`, async () => {
    assert.deepEqual([NET_LIMITS.maxHeaders, NET_LIMITS.maxHeaderChars], [64, 8192])
    // 64 headers, names x-h00..x-h63 (5 characters) and values making 8192 characters in all
    const value = (i: number): string => 'v'.repeat(Math.floor(8192 / 64) - 5 + (i === 0 ? 8192 % 64 : 0))
    const full = Array.from({ length: 64 }, (_, i) => ({ name: `x-h${String(i).padStart(2, '0')}`, value: value(i) }))
    assert.equal(full.reduce((n, h) => n + h.name.length + h.value.length, 0), 8192)
    const ok = await run().request(request({ url: `${origin}/headers`, headers: full }), AbortSignal.timeout(10_000))
    assert.equal(ok.ok, true, JSON.stringify(ok.ok ? '' : ok.error))
    const got = seen.at(-1)!
    assert.equal(got.headers['x-h63'], value(63))
    // what the node adds itself are host and connection (and content-length with a body), headers the agent may not set
    assert.deepEqual(Object.keys(got.headers).filter(k => !k.startsWith('x-h')).sort(), ['connection', 'host'])
    await refusedUnsent(request({ headers: [...full.slice(0, 63), { name: 'x-h63', value: value(63) + 'v' }] }), /headers hold 8193 characters; at most 8192/)
    await refusedUnsent(request({ headers: [...full.map(h => ({ name: h.name, value: 'v' })), { name: 'x-more', value: 'v' }] }), /65 headers; at most 64/)
  })

  it('response headers reach the agent within the same bounds: at most 64, 8 KiB together', async () => {
    answer.set('/many', (res) => {
      for (let i = 0; i < 100; i++) res.setHeader(`x-r${String(i).padStart(3, '0')}`, 'r'.repeat(150))
      res.end('many')
    })
    const got = await run().request(request({ url: `${origin}/many` }), AbortSignal.timeout(10_000))
    assert.equal(got.ok, true)
    const headers = got.ok ? got.value.headers : []
    assert.ok(headers.length <= NET_LIMITS.maxHeaders, `${headers.length} headers`)
    assert.ok(headers.reduce((n, h) => n + h.name.length + h.value.length, 0) <= NET_LIMITS.maxHeaderChars)
    assert.ok(headers.length >= 40, 'as many as fit are handed over')
    assert.equal(new TextDecoder().decode(got.ok ? got.value.body : new Uint8Array()), 'many')
  })

  it(`URL: ${NET_LIMITS.maxUrlChars} characters are requested; one more is too-large and opens no connection, and so is a redirect to a longer one`, async () => {
    assert.equal(NET_LIMITS.maxUrlChars, 8192)
    const path = (total: number): string => `${origin}/long?${'q'.repeat(total - origin.length - 6)}`
    assert.equal(path(8192).length, 8192)
    const ok = await run().request(request({ url: path(8192) }), AbortSignal.timeout(10_000))
    assert.equal(ok.ok, true, JSON.stringify(ok.ok ? '' : ok.error))
    assert.equal(seen.at(-1)?.url.length, 8192 - origin.length)
    await refusedUnsent(request({ url: path(8193) }), /URL is 8193 characters; at most 8192/)
    // a server sending the node on to a URL past the bound: the node does not write that request
    answer.set('/away', (res) => { res.writeHead(302, { location: path(8193) }); res.end() })
    const requests = seen.length
    const net = run()
    const away = await net.request(request({ url: `${origin}/away` }), AbortSignal.timeout(10_000))
    assert.equal(away.ok ? '' : away.error.tag, 'too-large')
    assert.match(away.ok ? '' : away.error.val, /redirected to a URL of 8193 characters; at most 8192/)
    assert.deepEqual(seen.slice(requests).map(s => s.url), ['/away'])
    assert.equal(net.report().requests, 1)
  })
})

describe('bounds of the origins a manifest names and a device refuses', () => {
  const origins = (n: number): string[] => Array.from({ length: n }, (_, i) => `https://o${String(i).padStart(2, '0')}.example.org`)

  it(`a manifest names at most ${NET_LIMITS.maxOrigins} net: origins: building one with more is refused, and so is a component that arrives with more`, async () => {
    assert.equal(NET_LIMITS.maxOrigins, 32)
    const component = await watComponent(ECHO)
    const ok = embedManifest(component, { ...BASE_MANIFEST, permissions: origins(32).map(o => `net:${o}`) })
    assert.equal(inspectAgentBytes(ok).manifest.permissions.length, 32)
    // what this node writes: `hive-node agent build` embeds through embedManifest
    assert.throws(() => embedManifest(component, { ...BASE_MANIFEST, permissions: origins(33).map(o => `net:${o}`) }), { name: 'ManifestInvalid', message: /at most 32 net: origins/ })
    // what arrives: a component whose manifest section was written by someone else
    const forged = appendCustomSection(component, MANIFEST_SECTION, new TextEncoder().encode(JSON.stringify({ ...BASE_MANIFEST, permissions: origins(33).map(o => `net:${o}`) })))
    assert.throws(() => inspectAgentBytes(forged), { name: 'ManifestInvalid', message: /at most 32 net: origins/ })
  })

  it(`a device refuses at most ${MAX_NET_REFUSE} origins: 32 start and go out in its capabilities; 33 are refused before anything opens, and a peer's capabilities with 33 are refused`, async () => {
    assert.equal(MAX_NET_REFUSE, 32)
    const dir = await makeTempDir('hive-net-refuse-')
    await assert.rejects(HiveNode.open({ ...loopbackInit(join(dir, 'too-many'), 'too-many'), net: { refuse: origins(33) } }), {
      name: 'InvalidConfig',
      message: /at most 32 origins may be refused to agents \(33 given\); refuse a domain's sub-domains with https:\/\/\*\.example\.org, or all with \*/
    })
    assert.equal(existsSync(join(dir, 'too-many')), false, 'nothing was created')
    const node = await startNode('refuse-32', { net: { refuse: origins(32) } })
    try {
      const caps = await node.capabilities.local()
      assert.deepEqual(caps.netRefuse, origins(32))
      const message = { v: 1 as const, seq: 1, time: Date.now(), caps }
      assert.deepEqual(decodeCapabilityMessage(cborEncode(CapabilityMessage.parse(message))).caps.netRefuse, origins(32))
      // a peer's report past the bound is refused whole
      const over = cborEncode({ ...message, caps: { ...caps, netRefuse: origins(33) } })
      assert.throws(() => decodeCapabilityMessage(over), { name: 'MalformedCapabilities' })
    } finally {
      await node.stop()
    }
  })
})
