// The hive:agent/http host interface, one test per denial: every refused request is proven not to
// reach its server (a loopback server that counts connections and requests, which must stay 0),
// and the granted path answers. Servers listen on 127.0.0.1 only; names resolve through a
// resolver handed to the sandbox, so a "DNS answer" is whatever the test says it is.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { NET_LIMITS, addressKind, canonicalIp, createSandbox, parseOrigin } from '../../sandbox/index.ts'
import { ECHO, httpError, httpWat, tempDir, watAgent } from './fixtures.ts'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { NetResolver, Sandbox } from '../../sandbox/index.ts'

interface TestServer {
  port: number
  origin: string
  /** Requests served, and TCP connections accepted (a refused request opens none). */
  requests: number
  connections: number
  paths: string[]
  close: () => Promise<void>
}

async function serve (handler: (req: IncomingMessage, res: ServerResponse, self: TestServer) => void): Promise<TestServer> {
  const server: Server = createServer((req, res) => { self.requests++; self.paths.push(req.url ?? ''); handler(req, res, self) })
  server.on('connection', () => { self.connections++ })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const self: TestServer = {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests: 0,
    connections: 0,
    paths: [],
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => { resolve() }))
    }
  }
  return self
}

/** A server whose reaching is the failure: the default refusal is proven by its counts staying 0. */
function untouched (s: TestServer): void {
  assert.equal(s.connections, 0, `nothing may connect to ${s.origin}`)
  assert.equal(s.requests, 0, `nothing may request from ${s.origin}`)
}

describe('http host interface', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox
  let hello: TestServer
  let never: TestServer
  const answers = new Map<string, string[]>()
  const asked: string[] = []
  const resolve: NetResolver = async (host) => {
    asked.push(host)
    const a = answers.get(host)
    if (a === undefined) throw new Error(`ENOTFOUND ${host}`)
    return a.map(address => ({ address }))
  }

  before(async () => {
    dir = await tempDir()
    sandbox = createSandbox({ cacheDir: dir.path, warmWorkers: 1, maxConcurrentRuns: 2 }, { resolve })
    await sandbox.start()
    hello = await serve((req, res) => { res.end(`hello ${req.method ?? ''} ${req.url ?? ''}`) })
    never = await serve((_req, res) => { res.end('reached') })
  })

  after(async () => {
    await sandbox.stop()
    await hello.close()
    await never.close()
    await dir.remove()
  })

  async function refused (run: Promise<unknown>): Promise<{ case: string, message: string }> {
    let seen: { case: string, message: string } | undefined
    await assert.rejects(run, (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed', err.message)
      seen = httpError(err.agentError ?? '')
      return true
    })
    return seen as { case: string, message: string }
  }

  it('a granted origin on 127.0.0.1 is reached, and the run reports its requests per origin', async () => {
    const agent = await watAgent(httpWat(), { permissions: [`net:${hello.origin}`] })
    const result = await sandbox.run(agent, { input: `${hello.origin}/page?x=1` })
    assert.equal(result.output, '200|hello GET /page?x=1')
    assert.deepEqual(result.net, { requests: 1, origins: [{ origin: hello.origin, requests: 1 }] })
  })

  it('no grant: an agent importing http without a net: origin is refused before it runs', async () => {
    await assert.rejects(sandbox.load(await watAgent(httpWat(), { permissions: [] })), (err: Error & { importName?: string }) => {
      assert.equal(err.name, 'ImportNotGranted')
      assert.equal(err.importName, 'hive:agent/http@0.1.0#request')
      assert.match(err.message, /names no origin; add one "net:<origin>" permission/)
      return true
    })
    untouched(never)
  })

  it('no grant: a task that grants none of the manifest\'s origins gets host-not-granted, before a socket opens', async () => {
    const agent = await watAgent(httpWat(), { permissions: [`net:${never.origin}`] })
    const err = await refused(sandbox.run(agent, { input: `${never.origin}/`, permissions: [] }))
    assert.equal(err.case, 'host-not-granted')
    assert.match(err.message, /holds no origin/)
    untouched(never)
    // a task's grant is read as an origin, however it is spelled
    const spelled = `net:HTTP://127.0.0.1:${hello.port}/`
    const both = await watAgent(httpWat(), { permissions: [`net:${hello.origin}`, `net:${never.origin}`] })
    assert.equal((await sandbox.run(both, { input: `${hello.origin}/x`, permissions: [spelled] })).output, '200|hello GET /x')
    assert.equal((await refused(sandbox.run(both, { input: `${never.origin}/`, permissions: [spelled] }))).case, 'host-not-granted')
    untouched(never)
  })

  it('another origin: the granted host on another port, or another scheme, is refused', async () => {
    const agent = await watAgent(httpWat(), { permissions: [`net:${hello.origin}`] })
    for (const url of [`${never.origin}/`, `https://127.0.0.1:${hello.port}/`, `http://localhost:${hello.port}/`]) {
      const err = await refused(sandbox.run(agent, { input: url }))
      assert.equal(err.case, 'host-not-granted', url)
      assert.match(err.message, /is not granted to this run \(it holds http:\/\/127\.0\.0\.1:\d+\)/)
    }
    untouched(never)
    assert.deepEqual(asked.filter(h => h === 'localhost'), [], 'an ungranted name is not even resolved')
  })

  it('a redirect to an ungranted origin is refused at that hop; one within the grant is followed', async () => {
    const redirector = await serve((req, res) => {
      const to = req.url === '/away' ? `${never.origin}/stolen` : req.url === '/home' ? '/landed' : undefined
      if (to !== undefined) { res.writeHead(302, { location: to }); res.end(); return }
      res.end(`landed at ${req.url ?? ''}`)
    })
    try {
      const agent = await watAgent(httpWat(), { permissions: [`net:${redirector.origin}`] })
      const err = await refused(sandbox.run(agent, { input: `${redirector.origin}/away` }))
      assert.equal(err.case, 'host-not-granted')
      assert.match(err.message, new RegExp(`http://127\\.0\\.0\\.1:${never.port} is not granted`))
      untouched(never)
      const ok = await sandbox.run(agent, { input: `${redirector.origin}/home` })
      assert.equal(ok.output, '200|landed at /landed')
      assert.deepEqual(ok.net.origins, [{ origin: redirector.origin, requests: 2 }], 'each hop counts')
    } finally {
      await redirector.close()
    }
  })

  it('a redirect loop ends after 5 redirects, each hop a request of the run', async () => {
    const loop = await serve((req, res) => { res.writeHead(307, { location: `/again${req.url ?? ''}` }); res.end() })
    try {
      const agent = await watAgent(httpWat(), { permissions: [`net:${loop.origin}`] })
      const err = await refused(sandbox.run(agent, { input: `${loop.origin}/` }))
      assert.equal(err.case, 'connection-failed')
      assert.match(err.message, /more than 5 redirects/)
      assert.equal(loop.requests, 6)
    } finally {
      await loop.close()
    }
  })

  it('a DNS answer pointing at loopback or a private range is refused: a name never stands for the address', async () => {
    answers.set('rebind.example', ['127.0.0.1'])
    answers.set('mapped.example', ['::ffff:127.0.0.1'])
    answers.set('mapped-hex.example', ['::ffff:7f00:1'])
    answers.set('lan.example', ['192.168.1.20'])
    answers.set('v6.example', ['fd12:3456::1', 'fe80::1'])
    answers.set('metadata.example', ['169.254.169.254'])
    for (const [host, kind] of [['rebind.example', 'loopback'], ['mapped.example', 'loopback'], ['mapped-hex.example', 'loopback'],
      ['lan.example', 'private'], ['v6.example', 'unique-local'], ['metadata.example', 'link-local']] as const) {
      const origin = `http://${host}:${never.port}`
      const agent = await watAgent(httpWat(), { permissions: [`net:${origin}`] })
      const err = await refused(sandbox.run(agent, { input: `${origin}/` }))
      assert.equal(err.case, 'not-permitted', host)
      assert.match(err.message, new RegExp(`${host.replace('.', '\\.')} resolves to .*${kind}`))
      assert.ok(asked.includes(host), `${host} was resolved by the node`)
    }
    untouched(never)
  })

  it('a name whose every answer is refused (documentation space, loopback) is dialled at none of them', async () => {
    // 192.0.2.0/24 is documentation space: refused too; only a public answer would be taken,
    // and none is, so nothing is dialled at all
    answers.set('mixed.example', ['192.0.2.7', '127.0.0.1'])
    const agent = await watAgent(httpWat(), { permissions: [`net:http://mixed.example:${never.port}`] })
    const err = await refused(sandbox.run(agent, { input: `http://mixed.example:${never.port}/` }))
    assert.equal(err.case, 'not-permitted')
    assert.match(err.message, /192\.0\.2\.7 \(documentation\), 127\.0\.0\.1 \(loopback\)/)
    untouched(never)
  })

  it('a literal loopback or private address, in any IPv6 spelling, is refused unless an origin names it', async () => {
    answers.set('named.example', ['127.0.0.1'])
    const agent = await watAgent(httpWat(), { permissions: [`net:http://named.example:${never.port}`, `net:http://*.named.example:${never.port}`] })
    for (const url of [`http://127.0.0.1:${never.port}/`, `http://[::ffff:127.0.0.1]:${never.port}/`, `http://[::ffff:7f00:1]:${never.port}/`,
      `http://[::1]:${never.port}/`, `http://2130706433:${never.port}/`, `http://0x7f.1:${never.port}/`, `http://0.0.0.0:${never.port}/`]) {
      const err = await refused(sandbox.run(agent, { input: url }))
      assert.equal(err.case, 'host-not-granted', url)
    }
    untouched(never)
  })

  it('an origin naming the address explicitly permits it, however the URL spells it', async () => {
    const agent = await watAgent(httpWat(), { permissions: [`net:http://[::ffff:127.0.0.1]:${hello.port}`] })
    assert.equal((await sandbox.run(agent, { input: `http://127.0.0.1:${hello.port}/a` })).output, '200|hello GET /a')
    assert.equal((await sandbox.run(agent, { input: `http://[::ffff:7f00:1]:${hello.port}/b` })).output, '200|hello GET /b')
  })

  it('an oversized response is refused, whether declared or streamed', async () => {
    const big = await serve((req, res) => {
      const body = 'x'.repeat(4096)
      if (req.url === '/declared') res.writeHead(200, { 'content-length': String(body.length) })
      // chunked: no length up front, the host counts what arrives
      res.end(body)
    })
    try {
      const agent = await watAgent(httpWat({ maxBytes: 1024 }), { permissions: [`net:${big.origin}`] })
      for (const path of ['/declared', '/chunked']) {
        const err = await refused(sandbox.run(agent, { input: `${big.origin}${path}` }))
        assert.equal(err.case, 'too-large', path)
        assert.match(err.message, /most 1024|than 1024 bytes/)
      }
      const fits = await watAgent(httpWat({ maxBytes: 4096 }), { permissions: [`net:${big.origin}`] })
      assert.equal((await sandbox.run(fits, { input: `${big.origin}/declared` })).output, `200|${'x'.repeat(4096)}`)
      // the agent may lower the bound, never raise it past the host's
      const greedy = await watAgent(httpWat({ maxBytes: 0xffffffff }), { permissions: [`net:${big.origin}`] })
      assert.equal((await sandbox.run(greedy, { input: `${big.origin}/declared` })).output.length, 4 + 4096)
    } finally {
      await big.close()
    }
  })

  it('too many requests: a run past its bound is refused, and the server sees only the allowed ones', async () => {
    const d = await tempDir()
    const tight = createSandbox({ cacheDir: d.path, prestartWorkers: false, maxRequestsPerRun: 3 }, { resolve })
    await tight.start()
    const counted = await serve((_req, res) => { res.end('ok') })
    try {
      const agent = await watAgent(httpWat({ calls: 4 }), { permissions: [`net:${counted.origin}`] })
      const err = await refused(tight.run(agent, { input: `${counted.origin}/` }))
      assert.equal(err.case, 'not-permitted')
      assert.match(err.message, /made its 3 requests/)
      assert.equal(counted.requests, 3)
      // the bound is per run: the next run starts again
      const three = await watAgent(httpWat({ calls: 3 }), { permissions: [`net:${counted.origin}`] })
      assert.equal((await tight.run(three, { input: `${counted.origin}/` })).output, '200|ok')
      assert.equal(counted.requests, 6)
    } finally {
      await tight.stop()
      await counted.close()
      await d.remove()
    }
  })

  it('a server that does not answer in time ends the request with timeout, and the run goes on', async () => {
    const silent = await serve(() => { /* never answers */ })
    try {
      const agent = await watAgent(httpWat({ timeoutMs: 200 }), { permissions: [`net:${silent.origin}`] })
      const err = await refused(sandbox.run(agent, { input: `${silent.origin}/` }))
      assert.equal(err.case, 'timeout')
      assert.match(err.message, /did not answer within 200 ms/)
      assert.equal(silent.requests, 1)
    } finally {
      await silent.close()
    }
  })

  it('a refused connection is connection-failed', async () => {
    const gone = await serve((_req, res) => { res.end() })
    const origin = gone.origin
    await gone.close()
    const agent = await watAgent(httpWat(), { permissions: [`net:${origin}`] })
    const err = await refused(sandbox.run(agent, { input: `${origin}/` }))
    assert.equal(err.case, 'connection-failed')
  })

  it('the device policy refuses an origin whatever the manifest and the task grant; "*" withholds http altogether', async () => {
    const d = await tempDir()
    const strict = createSandbox({ cacheDir: d.path, prestartWorkers: false, netRefuse: [never.origin] }, { resolve })
    const closed = createSandbox({ cacheDir: d.path, prestartWorkers: false, netRefuse: ['*'] }, { resolve })
    await strict.start()
    await closed.start()
    try {
      const agent = await watAgent(httpWat(), { permissions: [`net:${never.origin}`] })
      const err = await refused(strict.run(agent, { input: `${never.origin}/` }))
      assert.equal(err.case, 'host-not-granted')
      assert.ok(!closed.runtime().permissions.includes('net'))
      await assert.rejects(closed.load(agent), (e: Error) => { assert.equal(e.name, 'ImportNotGranted'); assert.match(e.message, /this node does not grant "net"/); return true })
      untouched(never)
      assert.throws(() => createSandbox({ cacheDir: d.path, netRefuse: ['ftp://x'] }), /is not an origin/)
    } finally {
      await strict.stop()
      await closed.stop()
      await d.remove()
    }
  })

  it('malformed requests are invalid-input', async () => {
    const agent = await watAgent(httpWat({ method: 'G ET' }), { permissions: [`net:${never.origin}`] })
    assert.equal((await refused(sandbox.run(agent, { input: `${never.origin}/` }))).case, 'invalid-input')
    const get = await watAgent(httpWat(), { permissions: [`net:${never.origin}`] })
    for (const url of ['not a url', `ftp://127.0.0.1:${never.port}/`, `http://user:pw@127.0.0.1:${never.port}/`]) {
      assert.equal((await refused(sandbox.run(get, { input: url }))).case, 'invalid-input', url)
    }
    untouched(never)
  })

  it('a run without requests reports none', async () => {
    assert.deepEqual((await sandbox.run(await watAgent(ECHO), { input: 'x' })).net, { requests: 0, origins: [] })
  })
})

describe('origins and addresses', () => {
  it('parses origins canonically and refuses what is not one', () => {
    assert.equal(parseOrigin('HTTPS://API.Example.org:443').text, 'https://api.example.org')
    assert.equal(parseOrigin('http://[0:0:0:0:0:0:0:1]:8080').text, 'http://[::1]:8080')
    assert.equal(parseOrigin('https://*.example.org').wildcard, true)
    for (const bad of ['https://api.example.org/path', 'ftp://x.org', 'https://*.org', 'https://a.*.org', 'https://*.10.0.0.1', 'https://x.org:0', 'https://x.org:70000', 'https://u@x.org']) {
      assert.throws(() => parseOrigin(bad), Error, bad)
    }
  })

  it('judges an address by what it is, in every spelling', () => {
    for (const [a, kind] of [
      ['127.0.0.1', 'loopback'], ['::1', 'loopback'], ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
      ['::127.0.0.1', 'loopback'], ['64:ff9b::7f00:1', 'loopback'], ['10.1.2.3', 'private'], ['172.31.0.1', 'private'], ['192.168.0.1', 'private'],
      ['::ffff:192.168.0.1', 'private'], ['169.254.169.254', 'link-local'], ['fe80::1%eth0', 'link-local'], ['fd00::1', 'unique-local (private)'],
      ['0.0.0.0', 'unspecified ("this network")'], ['::', 'unspecified'], ['100.64.0.1', 'carrier-grade NAT'], ['224.0.0.1', 'multicast']
    ] as const) {
      assert.equal(addressKind(a), kind, a)
    }
    for (const a of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8']) assert.equal(addressKind(a), undefined, a)
    assert.equal(canonicalIp('::FFFF:7F00:0001'), '127.0.0.1')
  })

  it('states its bounds once', () => {
    assert.ok(NET_LIMITS.maxResponseBytes >= 1024 && NET_LIMITS.maxRequestsPerRun >= 1 && NET_LIMITS.maxTimeoutMs >= 1000)
  })
})
