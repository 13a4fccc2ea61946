// The example agents and a probe, built from source by the real build (componentize-js, ~15 s
// each, so all are built once, two at a time, before the tests), then run in the sandbox.

import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { readFile, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { BudgetExceededError } from '../../protocol/llm/errors.ts'
import { buildAgent, inspectAgent } from '../../sandbox/build.ts'
import { createMemoryContext, createSandbox } from '../../sandbox/index.ts'
import { tempDir } from './fixtures.ts'
import type { BuildProgress } from '../../sandbox/build.ts'
import type { AgentChatRequest, AgentChatResult, AgentLlm, LoadedAgent, Sandbox } from '../../sandbox/index.ts'

const SOURCES = {
  echo: new URL('../../sandbox/agents/echo', import.meta.url).pathname,
  'word-count': new URL('../../sandbox/agents/word-count', import.meta.url).pathname,
  notes: new URL('../../sandbox/agents/notes', import.meta.url).pathname,
  summarize: new URL('../../sandbox/agents/summarize', import.meta.url).pathname,
  probe: new URL('./probe', import.meta.url).pathname
}
type Name = keyof typeof SOURCES

describe('agents built from JS/TS', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox
  const agents = {} as Record<Name, LoadedAgent>
  const progress: BuildProgress[] = []
  // The model port: each test says how it answers; every request is kept.
  const asked: AgentChatRequest[] = []
  let answer: (request: AgentChatRequest) => AgentChatResult = () => { throw new Error('no answer set') }
  const llm: AgentLlm = {
    chat: async request => { asked.push(request); return answer(request) },
    embed: async () => { throw new Error('not used') }
  }

  before(async () => {
    dir = await tempDir()
    sandbox = createSandbox({ cacheDir: join(dir.path, 'cache') }, { llm })
    await sandbox.start()
    const names = Object.keys(SOURCES) as Name[]
    // Two builds at a time: each is one busy core for its duration.
    for (let i = 0; i < names.length; i += 2) {
      await Promise.all(names.slice(i, i + 2).map(async name => {
        const out = join(dir.path, `${name}.wasm`)
        await buildAgent(SOURCES[name], out, name === 'echo' ? { onProgress: p => progress.push(p) } : {})
        agents[name] = await sandbox.load(await readFile(out))
      }))
    }
  }, { timeout: 900_000 }) // several builds: minutes on a machine busy with other test files

  after(async () => {
    await sandbox?.stop()
    await dir?.remove()
  })

  it('reports build progress through to done', () => {
    const stages = [...new Set(progress.map(p => p.stage))]
    assert.deepEqual(stages, ['prepare', 'componentize', 'check', 'write', 'done'])
    const fractions = progress.map(p => p.fraction)
    assert.deepEqual(fractions, [...fractions].sort((a, b) => a - b), 'progress only moves forward')
    assert.equal(fractions.at(-1), 1)
  })

  it('embeds the manifest and imports exactly what it grants', async () => {
    const echo = await inspectAgent(join(dir.path, 'echo.wasm'))
    assert.equal(echo.manifest.name, 'echo')
    assert.deepEqual(echo.imports, [])
    const wc = await inspectAgent(join(dir.path, 'word-count.wasm'))
    assert.deepEqual(wc.imports.map(i => [i.name, i.functions]), [['hive:agent/log@0.1.0', ['log']]])
    const notes = await inspectAgent(join(dir.path, 'notes.wasm'))
    assert.deepEqual(notes.imports.map(i => [i.name, i.functions]), [['hive:agent/context@0.1.0', ['get', 'set', 'append']]])
    assert.equal(notes.digest, agents.notes.digest)
    const summarize = await inspectAgent(join(dir.path, 'summarize.wasm'))
    assert.deepEqual(summarize.imports.map(i => [i.name, i.functions]), [
      ['hive:agent/context@0.1.0', ['set', 'conversation']],
      ['hive:agent/llm@0.1.0', ['chat']]
    ])
  })

  it('echo returns its input', async () => {
    assert.equal((await sandbox.run(agents.echo, { input: 'hello, hive ✓' })).output, 'hello, hive ✓')
    assert.equal((await sandbox.run(agents.echo, { input: '' })).output, '')
  })

  it('word-count counts words, lines and characters, and logs', async () => {
    const lines: string[] = []
    const result = await sandbox.run(agents['word-count'], { input: 'one two  three\nfour ✓', onLog: e => lines.push(`${e.level} ${e.message}`) })
    assert.deepEqual(JSON.parse(result.output), { words: 5, lines: 2, characters: 21 })
    assert.deepEqual(lines, ['info counted 5 words'])
  })

  it('notes keeps its notebook in the context, and refuses an empty note with its own error', async () => {
    const context = createMemoryContext()
    assert.equal((await sandbox.run(agents.notes, { input: 'buy milk', context })).output, 'note 1 saved')
    assert.equal((await sandbox.run(agents.notes, { input: 'call home', context })).output, 'note 2 saved; previous note: buy milk')
    assert.deepEqual(context.conversation, ['buy milk', 'call home'])
    assert.equal(context.state.get('notes'), '2')
    await assert.rejects(sandbox.run(agents.notes, { input: '   ', context }), (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed')
      assert.equal(err.agentError, 'nothing to note: give the note as input')
      return true
    })
    const other = createMemoryContext()
    assert.equal((await sandbox.run(agents.notes, { input: 'elsewhere', context: other })).output, 'note 1 saved')
  })

  it('summarize reads the conversation, asks the model, and keeps the summary in the state', async () => {
    const context = createMemoryContext()
    context.say('user', 'shall we meet on friday?')
    context.say('user', 'yes, 10am at the cafe')
    answer = () => ({ text: ' Friday 10am at the cafe. ', model: 'tiny-q4', tokensIn: 40, tokensOut: 9, finish: 'stop', route: { kind: 'peer', peer: '12D3KooWx', device: 'laptop' } })
    asked.length = 0
    const result = await sandbox.run(agents.summarize, { input: 'the meeting', context })
    assert.equal(context.state.get('summary'), 'Friday 10am at the cafe.')
    assert.deepEqual(JSON.parse(context.state.get('summary-source') ?? ''), { model: 'tiny-q4', route: 'peer', at: 'laptop', entries: 2 })
    assert.equal(result.output, 'Friday 10am at the cafe.\n(2 entries, tiny-q4 on peer laptop)')
    assert.deepEqual(result.llm.calls.map(c => [c.route, c.model, c.tokensIn, c.tokensOut]), [[{ kind: 'peer', peer: '12D3KooWx', device: 'laptop' }, 'tiny-q4', 40, 9]])
    assert.deepEqual(result.llm.usage, [{ route: 'peer', calls: 1, tokensIn: 40, tokensOut: 9 }])
    // What the agent asked: the transcript in order, the focus, and its own bounds.
    const [request] = asked
    assert.equal(request?.messages.length, 2)
    assert.match(request?.messages[1]?.content ?? '', /Focus on: the meeting[\s\S]*user: shall we meet on friday\?\nuser: yes, 10am at the cafe$/)
    assert.equal(request?.maxTokens, 256)
    assert.ok(Math.abs((request?.temperature ?? 0) - 0.2) < 1e-6)
  })

  it("summarize reports the model's refusal and an empty conversation as its own errors", async () => {
    const context = createMemoryContext()
    await assert.rejects(sandbox.run(agents.summarize, { input: '', context }), (err: Error & { agentError?: string }) => {
      assert.equal(err.agentError, "nothing to summarise: the context's conversation is empty")
      return true
    })
    context.say('user', 'spend it all')
    answer = () => { throw new BudgetExceededError('the hive spent its cloud budget for today') }
    await assert.rejects(sandbox.run(agents.summarize, { input: '', context }), (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed')
      assert.equal(err.agentError, 'the model call failed (budget-exceeded): the hive spent its cloud budget for today')
      return true
    })
    assert.equal(context.state.get('summary'), undefined)
  })

  it('a JS agent sees no process, require, host clock or host randomness', async () => {
    const first = JSON.parse((await sandbox.run(agents.probe, { input: 'report' })).output) as Record<string, unknown>
    assert.deepEqual([first.process, first.require, first.deno], ['undefined', 'undefined', 'undefined'])
    const second = JSON.parse((await sandbox.run(agents.probe, { input: 'report' })).output) as Record<string, unknown>
    // Time and randomness are fixed when the agent is built, not read from the host.
    assert.equal(second.now, first.now)
    assert.equal(second.random, first.random)
  })

  it('a JS agent cannot open a socket: fetch traps and nothing connects', async () => {
    let connections = 0
    const server = createServer(socket => { connections++; socket.destroy() })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    try {
      const port = (server.address() as { port: number }).port
      const logged: string[] = []
      await assert.rejects(sandbox.run(agents.probe, { input: `fetch http://127.0.0.1:${port}/`, onLog: e => logged.push(e.message) }), { name: 'AgentTrapped' })
      assert.deepEqual(logged, ['fetching'], 'the agent reached its fetch call')
      assert.equal(connections, 0)
    } finally {
      await new Promise(resolve => server.close(resolve))
    }
  })

  it('refuses, before componentize, a source importing a function its manifest does not grant', async () => {
    const src = join(dir.path, 'writer')
    await mkdir(src)
    await writeFile(join(src, 'agent.js'), "import { set } from 'hive:agent/context@0.1.0'\nexport function run (input) { set('k', input); return 'ok' }\n")
    await writeFile(join(src, 'manifest.json'), JSON.stringify({ name: 'writer', version: '0.1.0', permissions: ['context:read'] }))
    await assert.rejects(buildAgent(src, join(dir.path, 'writer.wasm')), (err: Error) => {
      assert.equal(err.name, 'BuildFailed')
      assert.match(err.message, /agent\.js:1 imports "set" from "hive:agent\/context@0\.1\.0", which needs permission "context:write"/)
      return true
    })
  })
})
