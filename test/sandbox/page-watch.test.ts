// The page-watch example, built by the real build with its manifest's origin pointed at a
// loopback server: it fetches through http, keeps the page in kv, and asks the model what
// changed only when it did.

import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { buildAgent } from '../../sandbox/build.ts'
import { createMemoryKv, createSandbox } from '../../sandbox/index.ts'
import { tempDir } from './fixtures.ts'
import type { Server } from 'node:http'
import type { AgentChatRequest, AgentLlm, LoadedAgent, Sandbox } from '../../sandbox/index.ts'

const SOURCE = new URL('../../sandbox/agents/page-watch', import.meta.url).pathname

describe('page-watch example', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox
  let server: Server
  let origin: string
  let agent: LoadedAgent
  let page = 'opening hours: 9 to 5'
  const kv = createMemoryKv()
  const asked: AgentChatRequest[] = []
  const llm: AgentLlm = {
    chat: async request => { asked.push(request); return { text: ' The hours moved to 10 to 6. ', model: 'tiny', tokensIn: 30, tokensOut: 8, finish: 'stop', route: { kind: 'local' } } },
    embed: async () => { throw new Error('not used') }
  }

  before(async () => {
    dir = await tempDir()
    server = createServer((_req, res) => { res.end(page) })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`
    const manifest = JSON.parse(await readFile(join(SOURCE, 'manifest.json'), 'utf8')) as { permissions: string[] }
    manifest.permissions = manifest.permissions.map(p => p.startsWith('net:') ? `net:${origin}` : p)
    await writeFile(join(dir.path, 'manifest.json'), JSON.stringify(manifest))
    const out = join(dir.path, 'page-watch.wasm')
    await buildAgent(join(SOURCE, 'agent.ts'), out, { manifestPath: join(dir.path, 'manifest.json') })
    sandbox = createSandbox({ cacheDir: join(dir.path, 'cache') }, { llm, kv })
    await sandbox.start()
    agent = await sandbox.load(await readFile(out))
  })

  after(async () => {
    await sandbox?.stop()
    server?.closeAllConnections()
    await new Promise<void>(resolve => server?.close(() => { resolve() }))
    await dir?.remove()
  })

  it('imports exactly http.request, kv get and set, and llm.chat', () => {
    assert.deepEqual(agent.info.imports.map(i => [i.name, i.functions]).sort(), [
      ['hive:agent/http@0.1.0', ['request']],
      ['hive:agent/kv@0.1.0', ['get', 'set']],
      ['hive:agent/llm@0.1.0', ['chat']]
    ])
  })

  it('keeps the page, says nothing changed, then summarises a change', async () => {
    const url = `${origin}/hours`
    assert.equal((await sandbox.run(agent, { input: url })).output, `now watching ${url} (21 characters kept)`)
    assert.equal(kv.stores.get('page-watch')?.get(`page:${url}`), 'opening hours: 9 to 5')
    assert.equal((await sandbox.run(agent, { input: url })).output, `no change at ${url}`)
    assert.equal(asked.length, 0, 'no model call without a change')
    page = 'opening hours: 10 to 6'
    const changed = await sandbox.run(agent, { input: url })
    assert.equal(changed.output, 'changed: The hours moved to 10 to 6.')
    assert.match(asked[0]?.messages[1]?.content ?? '', /Before:\nopening hours: 9 to 5\n\nAfter:\nopening hours: 10 to 6/)
    assert.equal(kv.stores.get('page-watch')?.get(`summary:${url}`), 'The hours moved to 10 to 6.')
    assert.deepEqual(changed.net.origins, [{ origin, requests: 1 }])
  })

  it('reports a refused origin as its own error', async () => {
    await assert.rejects(sandbox.run(agent, { input: 'http://127.0.0.1:1/' }), (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed')
      assert.match(err.agentError ?? '', /fetching http:\/\/127\.0\.0\.1:1\/ failed \(host-not-granted\)/)
      return true
    })
  })
})
