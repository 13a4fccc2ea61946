// The hive:agent/llm host interface: the ABI through tiny WAT agents, the permissions (`llm`,
// `llm:cloud`, the `models` allowlist), the bounds, each error the agent can see, the run's
// deadline during a slow model, and the per-call and per-route report.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { BudgetExceededError, LlmNotPermittedError, LlmTooLargeError, LlmUnavailableError, ModelNotFoundError } from '../../protocol/llm/errors.ts'
import { LLM_LIMITS, createMemoryContext, createSandbox, embedManifest } from '../../sandbox/index.ts'
import { CONVERSATION_READER, ECHO, llmChatWat, llmEmbedWat, llmError, tempDir, watAgent, watComponent } from './fixtures.ts'
import type { LlmService } from '../../protocol/llm/types.ts'
import type { AgentChatRequest, AgentChatResult, AgentLlm, AgentLlmCaller, Sandbox } from '../../sandbox/index.ts'

// The node hands the hive's LLM router to the sandbox as it is: this line fails to compile if
// the two shapes drift apart.
export const routerFitsThePort = (router: LlmService): AgentLlm => router

interface Seen { request?: AgentChatRequest, model?: string, texts?: string[], caller: AgentLlmCaller }

/** A port that records each call and answers with `answer` (or throws what it throws). */
function stubPort (answer: (request: AgentChatRequest, caller: AgentLlmCaller) => AgentChatResult | Promise<AgentChatResult>): AgentLlm & { seen: Seen[] } {
  const seen: Seen[] = []
  return {
    seen,
    async chat (request, caller) { seen.push({ request, caller }); return await answer(request, caller) },
    async embed (model, texts, caller) {
      seen.push({ model, texts, caller })
      return { model, vectors: texts.map((_, i) => [0.5, 0.25 * (i + 1), 0]), tokensIn: texts.length * 2, route: { kind: 'local' } }
    }
  }
}

const LOCAL_ANSWER = (request: AgentChatRequest): AgentChatResult => ({
  text: 'a short answer', model: request.models[0] ?? 'tiny', tokensIn: 7, tokensOut: 3, finish: 'stop', route: { kind: 'local' }
})

/** ok output of the chat fixture: text|model|tokens-in|tokens-out|finish|route-case|route-name */
function chatOutput (output: string): string[] {
  return output.split('|')
}

describe('llm host interface', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox
  let port: AgentLlm & { seen: Seen[] } = stubPort(LOCAL_ANSWER)

  before(async () => {
    dir = await tempDir()
    // The sandbox holds one port for its life; tests swap what stands behind it.
    sandbox = createSandbox({ cacheDir: dir.path, warmWorkers: 1, maxConcurrentRuns: 2 }, {
      llm: { chat: async (r, c) => await port.chat(r, c), embed: async (m, t, c) => await port.embed(m, t, c) }
    })
    await sandbox.start()
  })

  after(async () => {
    await sandbox.stop()
    await dir.remove()
  })

  async function agentError (run: Promise<unknown>): Promise<{ case: string, message: string }> {
    let seen: { case: string, message: string } | undefined
    await assert.rejects(run, (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed', err.message)
      seen = llmError(err.agentError ?? '')
      return true
    })
    return seen as { case: string, message: string }
  }

  it('chats through the port: the agent gets the answer, the route, and the run reports the call', async () => {
    port = stubPort(request => ({ text: 'hello from the laptop ✓', model: 'tiny-q4', tokensIn: 12, tokensOut: 5, finish: 'length', route: { kind: 'peer', peer: '12D3KooWpeer', device: 'laptop' }, ...(request.maxTokens === 16 ? {} : { text: 'wrong max-tokens' }) }))
    const agent = await sandbox.load(await watAgent(llmChatWat(), { permissions: ['llm'] }))
    const result = await sandbox.run(agent, { input: 'summarise this', task: 'task-1' })
    assert.deepEqual(chatOutput(result.output), ['hello from the laptop ✓', 'tiny-q4', '12', '5', '1', '1', 'laptop'])
    assert.equal(port.seen.length, 1)
    const [{ request, caller }] = port.seen as [Seen]
    assert.deepEqual(request, { models: [], messages: [{ role: 'user', content: 'summarise this' }], maxTokens: 16 })
    assert.equal(caller.agent, agent.digest)
    assert.equal(caller.task, 'task-1')
    assert.equal(caller.cloud, false)
    assert.equal(caller.allow, undefined)
    assert.equal(caller.signal.aborted, true, 'the call signal ends with the run')
    assert.equal(result.llm.calls.length, 1)
    const [call] = result.llm.calls
    assert.deepEqual({ ...call, ms: undefined }, { op: 'chat', route: { kind: 'peer', peer: '12D3KooWpeer', device: 'laptop' }, model: 'tiny-q4', tokensIn: 12, tokensOut: 5, ms: undefined })
    assert.ok(call !== undefined && call.ms >= 0)
    assert.deepEqual(result.llm.usage, [{ route: 'peer', calls: 1, tokensIn: 12, tokensOut: 5 }])
  })

  it('sums several calls per route kind', async () => {
    let n = 0
    port = stubPort(() => {
      n++
      const route = n === 2 ? { kind: 'peer' as const, peer: 'p', device: 'desk' } : { kind: 'local' as const }
      return { text: `answer ${n}`, model: 'tiny', tokensIn: n, tokensOut: 10 * n, finish: 'stop', route }
    })
    const agent = await watAgent(llmChatWat({ calls: 3 }), { permissions: ['llm'] })
    const live: string[] = []
    const result = await sandbox.run(agent, { input: 'again', onLlmCall: c => live.push(c.route.kind) })
    assert.equal(chatOutput(result.output)[0], 'answer 3')
    assert.deepEqual(live, ['local', 'peer', 'local'])
    assert.deepEqual(result.llm.calls.map(c => c.route.kind), ['local', 'peer', 'local'])
    assert.deepEqual(result.llm.usage, [
      { route: 'local', calls: 2, tokensIn: 4, tokensOut: 40 },
      { route: 'peer', calls: 1, tokensIn: 2, tokensOut: 20 }
    ])
  })

  it('embeds through the port: one vector per text', async () => {
    port = stubPort(LOCAL_ANSWER)
    const agent = await watAgent(llmEmbedWat('nomic-embed'), { permissions: ['llm'] })
    const result = await sandbox.run(agent, { input: 'a text' })
    // model | vectors | first vector's length | first value × 1000 | tokens-in | route case | name
    assert.equal(result.output, 'nomic-embed|2|3|500|4|0|')
    assert.deepEqual(port.seen.map(s => [s.model, s.texts]), [['nomic-embed', ['a text', 'a text']]])
    assert.deepEqual(result.llm.usage, [{ route: 'local', calls: 1, tokensIn: 4, tokensOut: 0 }])
  })

  it('a run without model calls reports none', async () => {
    const result = await sandbox.run(await watAgent(ECHO), { input: 'x' })
    assert.deepEqual(result.llm, { calls: [], usage: [] })
  })

  describe('permissions', () => {
    it('refuses, before running, an agent importing llm without the grant, naming the import', async () => {
      port = stubPort(LOCAL_ANSWER)
      await assert.rejects(sandbox.run(await watAgent(llmChatWat(), { permissions: [] }), { input: 'x' }), (err: Error & { importName?: string }) => {
        assert.equal(err.name, 'ImportNotGranted')
        assert.equal(err.importName, 'hive:agent/llm@0.1.0#chat')
        assert.match(err.message, /needs permission "llm"/)
        return true
      })
      assert.equal(port.seen.length, 0)
    })

    it('a sandbox without a model port grants no llm, and says so', async () => {
      const d = await tempDir()
      const bare = createSandbox({ cacheDir: d.path, prestartWorkers: false })
      await bare.start()
      try {
        assert.ok(!bare.runtime().permissions.includes('llm'))
        await assert.rejects(bare.load(await watAgent(llmChatWat(), { permissions: ['llm'] })), (err: Error) => {
          assert.equal(err.name, 'ImportNotGranted')
          assert.match(err.message, /this node does not grant "llm"/)
          return true
        })
      } finally {
        await bare.stop()
        await d.remove()
      }
    })

    it('without llm:cloud the port is asked with cloud forbidden, and its refusal reaches the agent as not-permitted', async () => {
      // The port holds only a cloud model, as the router would with nothing in the hive.
      port = stubPort((_request, caller) => {
        if (!caller.cloud) throw new LlmNotPermittedError('only the cloud holds gpt-4o-mini and the agent lacks llm:cloud')
        return { text: 'from the cloud', model: 'gpt-4o-mini', tokensIn: 1, tokensOut: 1, finish: 'stop', route: { kind: 'cloud', provider: 'openai' } }
      })
      const inHive = await watAgent(llmChatWat({ models: ['gpt-4o-mini'] }), { permissions: ['llm'] })
      const refused = await agentError(sandbox.run(inHive, { input: 'x' }))
      assert.equal(refused.case, 'not-permitted')
      assert.match(refused.message, /llm:cloud/)
      assert.deepEqual(port.seen.map(s => s.caller.cloud), [false])

      const cloudy = await watAgent(llmChatWat({ models: ['gpt-4o-mini'] }), { permissions: ['llm', 'llm:cloud'] })
      const result = await sandbox.run(cloudy, { input: 'x' })
      assert.deepEqual(chatOutput(result.output).slice(0, 2).concat(chatOutput(result.output).slice(5)), ['from the cloud', 'gpt-4o-mini', '2', 'openai'])
      assert.deepEqual(port.seen.map(s => s.caller.cloud), [false, true])
      assert.deepEqual(result.llm.usage.map(u => u.route), ['cloud'])
    })

    it('refuses a cloud answer to a run without llm:cloud even when the port gives one', async () => {
      port = stubPort(() => ({ text: 'leaked', model: 'm', tokensIn: 1, tokensOut: 1, finish: 'stop', route: { kind: 'cloud', provider: 'openai' } }))
      const agent = await watAgent(llmChatWat(), { permissions: ['llm'] })
      const refused = await agentError(sandbox.run(agent, { input: 'x' }))
      assert.equal(refused.case, 'not-permitted')
    })

    it('refuses a model outside the manifest allowlist before the port is asked', async () => {
      port = stubPort(LOCAL_ANSWER)
      const agent = await watAgent(llmChatWat({ models: ['big-model'] }), { permissions: ['llm'], models: ['tiny', 'small'] })
      const refused = await agentError(sandbox.run(agent, { input: 'x' }))
      assert.equal(refused.case, 'not-permitted')
      assert.match(refused.message, /"big-model" is not in the agent's manifest "models"/)
      const embedder = await watAgent(llmEmbedWat('big-embed'), { permissions: ['llm'], models: ['tiny'] })
      assert.equal((await agentError(sandbox.run(embedder, { input: 'x' }))).case, 'not-permitted')
      assert.equal(port.seen.length, 0)
    })

    it('a call naming no model is offered the allowlist', async () => {
      port = stubPort(LOCAL_ANSWER)
      const agent = await watAgent(llmChatWat(), { permissions: ['llm'], models: ['tiny', 'small'] })
      assert.equal(chatOutput((await sandbox.run(agent, { input: 'x' })).output)[1], 'tiny')
      assert.deepEqual(port.seen.map(s => [s.request?.models, s.caller.allow]), [[['tiny', 'small'], ['tiny', 'small']]])
    })

    for (const [what, manifest, message] of [
      ['llm:cloud without llm', { permissions: ['llm:cloud'] }, /"llm:cloud" widens "llm"/],
      ['a models allowlist without llm', { permissions: [], models: ['tiny'] }, /models: a "models" allowlist needs the permission "llm"/],
      ['too many models', { permissions: ['llm'], models: Array.from({ length: LLM_LIMITS.maxModels + 1 }, (_, i) => `m${i}`) }, /models:/],
      ['a repeated model', { permissions: ['llm'], models: ['a', 'a'] }, /each model at most once/]
    ] as const) {
      it(`refuses a manifest with ${what}`, async () => {
        const component = await watComponent(ECHO)
        assert.throws(() => embedManifest(component, { name: 'x', version: '1.0.0', ...manifest } as never), (err: Error) => {
          assert.equal(err.name, 'ManifestInvalid')
          assert.match(err.message, message)
          return true
        })
      })
    }
  })

  describe('bounds and errors', () => {
    it('refuses oversized and malformed requests before the port is asked', async () => {
      port = stubPort(LOCAL_ANSWER)
      const chat = await watAgent(llmChatWat(), { permissions: ['llm'], limits: { timeoutMs: 5000, memoryMiB: 4 } })
      const big = await agentError(sandbox.run(chat, { input: 'x'.repeat(LLM_LIMITS.maxPromptChars + 1) }))
      assert.equal(big.case, 'too-large')
      assert.match(big.message, new RegExp(`at most ${LLM_LIMITS.maxPromptChars}`))
      const greedy = await watAgent(llmChatWat({ maxTokens: LLM_LIMITS.maxTokens + 1 }), { permissions: ['llm'] })
      assert.equal((await agentError(sandbox.run(greedy, { input: 'x' }))).case, 'too-large')
      const zero = await watAgent(llmChatWat({ maxTokens: 0 }), { permissions: ['llm'] })
      assert.equal((await agentError(sandbox.run(zero, { input: 'x' }))).case, 'invalid-input')
      assert.equal(port.seen.length, 0)
    })

    for (const [thrown, expected] of [
      [new ModelNotFoundError('no route holds tiny'), 'model-not-found'],
      [new BudgetExceededError('the hive spent its 2.00 USD today'), 'budget-exceeded'],
      [new LlmUnavailableError('the peer went away mid-stream'), 'unavailable'],
      [new LlmTooLargeError('the prompt exceeds the context window of tiny'), 'too-large'],
      [new TypeError('something inside the router broke'), 'unavailable']
    ] as const) {
      it(`hands the port's ${thrown.name} to the agent as ${expected}, with its message`, async () => {
        port = stubPort(() => { throw thrown })
        const seen = await agentError(sandbox.run(await watAgent(llmChatWat(), { permissions: ['llm'] }), { input: 'x' }))
        assert.equal(seen.case, expected)
        assert.ok(seen.message.includes(thrown.message), seen.message)
      })
    }

    it('reports the calls of a run that then fails', async () => {
      let n = 0
      port = stubPort(() => {
        if (++n === 2) throw new LlmUnavailableError('the peer went away')
        return { text: 'first', model: 'tiny', tokensIn: 5, tokensOut: 6, finish: 'stop', route: { kind: 'local' } }
      })
      const live: Array<[string, number]> = []
      const agent = await watAgent(llmChatWat({ calls: 2 }), { permissions: ['llm'] })
      assert.equal((await agentError(sandbox.run(agent, { input: 'x', onLlmCall: c => live.push([c.model, c.tokensOut]) }))).case, 'unavailable')
      assert.deepEqual(live, [['tiny', 6]])
    })

    it('refuses a malformed answer as unavailable and cuts an overlong one', async () => {
      port = stubPort(() => ({ text: 'x', model: 'm', tokensIn: -1, tokensOut: 0, finish: 'stop', route: { kind: 'local' } }))
      const agent = await watAgent(llmChatWat(), { permissions: ['llm'], limits: { timeoutMs: 5000, memoryMiB: 8 } })
      assert.equal((await agentError(sandbox.run(agent, { input: 'x' }))).case, 'unavailable')
      port = stubPort(() => ({ text: 'y'.repeat(LLM_LIMITS.maxAnswerChars + 10), model: 'm', tokensIn: 1, tokensOut: 1, finish: 'stop', route: { kind: 'local' } }))
      const [text, , , , finish] = chatOutput((await sandbox.run(agent, { input: 'x' })).output)
      assert.equal(text?.length, LLM_LIMITS.maxAnswerChars)
      assert.equal(finish, '1', 'finish is length')
    })
  })

  describe('deadline', () => {
    it('holds while the model is slow: the run times out and the call is aborted', async () => {
      let callSignal: AbortSignal | undefined
      let called!: () => void
      const asked = new Promise<void>(resolve => { called = resolve })
      port = stubPort(async (_request, caller) => {
        callSignal = caller.signal
        called()
        return await new Promise<never>(() => {})
      })
      const agent = await watAgent(llmChatWat(), { permissions: ['llm'], limits: { timeoutMs: 400, memoryMiB: 1 } })
      await assert.rejects(sandbox.run(agent, { input: 'x' }), { name: 'AgentTimedOut' })
      await asked
      assert.equal(callSignal?.aborted, true)
      assert.equal(callSignal?.reason?.name, 'AgentTimedOut')
    })

    it("the caller's abort ends the run and the call", async () => {
      const controller = new AbortController()
      let callSignal: AbortSignal | undefined
      port = stubPort(async (_request, caller) => {
        callSignal = caller.signal
        controller.abort()
        return await new Promise<never>(() => {})
      })
      const agent = await watAgent(llmChatWat(), { permissions: ['llm'], limits: { timeoutMs: 60_000, memoryMiB: 1 } })
      await assert.rejects(sandbox.run(agent, { input: 'x', signal: controller.signal }), { name: 'AbortError' })
      assert.equal(callSignal?.aborted, true)
    })
  })
})

describe('context conversation', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox

  before(async () => {
    dir = await tempDir()
    sandbox = createSandbox({ cacheDir: dir.path, warmWorkers: 1 })
    await sandbox.start()
  })

  after(async () => {
    await sandbox.stop()
    await dir.remove()
  })

  it('reads the last entries of the conversation with their roles', async () => {
    const context = createMemoryContext()
    context.say('user', 'first')
    context.say('user', 'what is the hive?')
    await context.append('a mesh of your devices ✓')
    const agent = await watAgent(CONVERSATION_READER, { permissions: ['context:read'] })
    // The fixture reads as many entries as its input has characters.
    assert.equal((await sandbox.run(agent, { input: 'xx', context })).output, '2|user:what is the hive?|agent:a mesh of your devices ✓')
    assert.equal((await sandbox.run(agent, { input: 'x'.repeat(10), context })).output, '3|user:first|user:what is the hive?|agent:a mesh of your devices ✓')
  })

  it('refuses, before running, a conversation reader without context:read', async () => {
    await assert.rejects(sandbox.run(await watAgent(CONVERSATION_READER, { permissions: ['context:write'] }), { input: 'x' }), (err: Error & { importName?: string }) => {
      assert.equal(err.name, 'ImportNotGranted')
      assert.equal(err.importName, 'hive:agent/context@0.1.0#conversation')
      return true
    })
  })

  it('answers with an error when the context cannot list its conversation', async () => {
    const context = { get: () => undefined, set: () => {}, append: () => {} }
    await assert.rejects(sandbox.run(await watAgent(CONVERSATION_READER, { permissions: ['context:read'] }), { input: 'x', context }), (err: Error & { agentError?: string }) => {
      assert.equal(err.name, 'AgentFailed')
      assert.match(err.agentError ?? '', /cannot list its conversation/)
      return true
    })
  })
})
