import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createBudget, createLlmRouter, LlmUnavailableError, ModelNotFoundError } from '../../../protocol/llm/index.ts'
import { testBackend } from './fixtures.ts'
import type { CloudProvider, LlmPeer, LlmRouterComponents, PeerCaller } from '../../../protocol/llm/index.ts'

const ask = { models: ['tiny'], messages: [{ role: 'user' as const, content: 'hello hive' }], maxTokens: 8 }

function setup (opts: { local?: string[], peers?: LlmPeer[], peerCall?: PeerCaller, cloud?: CloudProvider[], day?: number, now?: () => number } = {}): { router: ReturnType<typeof createLlmRouter>, local: ReturnType<typeof testBackend>, asked: string[] } {
  const local = testBackend('embedded', opts.local ?? [])
  const asked: string[] = []
  const peerCall: PeerCaller = opts.peerCall ?? (async (peerId: string, message: { t: string }) => {
    asked.push(peerId)
    if (message.t !== 'chat') throw new Error('chat only')
    return { t: 'done', text: 'p', model: 'tiny', tokensIn: 2, tokensOut: 1, finish: 'stop' }
  }) as unknown as PeerCaller
  const components: LlmRouterComponents = {
    backends: () => [local],
    peers: () => opts.peers ?? [],
    callPeer: peerCall,
    cloud: () => opts.cloud ?? [],
    budget: createBudget({ caps: () => ({ ...(opts.day != null ? { dayMicroUsd: opts.day } : {}), agents: {} }), members: () => 1, prices: () => ({ 'gpt-test': { in: 1, out: 1 } }), store: { load: async () => undefined, save: async () => {} } }),
    ...(opts.now != null ? { now: opts.now } : {})
  }
  return { router: createLlmRouter({}, components), local, asked }
}

const peer = (id: string, models: string[], extra: Partial<LlmPeer> = {}): LlmPeer => ({ peerId: id, name: `dev-${id}`, models, load: 0, running: 0, gpus: 0, ...extra })

test('a model this device holds is answered here, with its tokens streamed', async () => {
  const { router, local, asked } = setup({ local: ['tiny'], peers: [peer('p1', ['tiny'])] })
  const tokens: string[] = []
  const result = await router.chat(ask, { cloud: false, onToken: (t) => tokens.push(t) })
  assert.deepEqual(result.route, { kind: 'local' })
  assert.equal(local.calls.length, 1)
  assert.deepEqual(tokens, ['a', 'b', 'c'])
  assert.deepEqual(asked, [])
})

test('a model only a peer holds goes to that peer: a GPU first, then the least loaded', async () => {
  const { router, asked } = setup({ local: ['other'], peers: [peer('busy', ['tiny'], { load: 3 }), peer('idle', ['tiny:latest']), peer('gpu', ['tiny'], { load: 5, gpus: 1 }), peer('none', ['x'])] })
  const result = await router.chat(ask, { cloud: false })
  assert.deepEqual(result.route, { kind: 'peer', peer: 'gpu', device: 'dev-gpu' })
  assert.deepEqual(asked, ['gpu'])
})

test('a failing peer is cooled down and the next one answers; after the cooldown it is tried again', async () => {
  let clock = 1_000_000
  const asked: string[] = []
  const peerCall = (async (peerId: string) => {
    asked.push(peerId)
    if (peerId === 'a') throw new LlmUnavailableError('reset')
    return { t: 'done', text: 'p', model: 'tiny', tokensIn: 2, tokensOut: 1, finish: 'stop' }
  }) as unknown as PeerCaller
  const { router } = setup({ peers: [peer('a', ['tiny']), peer('b', ['tiny'], { load: 1 })], peerCall, now: () => clock })
  assert.equal((await router.chat(ask, { cloud: false })).route.kind, 'peer')
  assert.deepEqual(asked, ['a', 'b'])
  await router.chat(ask, { cloud: false })
  assert.deepEqual(asked, ['a', 'b', 'b'], 'a cooled-down peer is left out')
  clock += 31_000
  await router.chat(ask, { cloud: false })
  assert.deepEqual(asked, ['a', 'b', 'b', 'a', 'b'])
})

test('the allowlist narrows the request, and a request outside it is refused', async () => {
  const { router, local } = setup({ local: ['tiny', 'big'] })
  await assert.rejects(router.chat({ ...ask, models: ['big'] }, { cloud: false, allow: ['tiny'] }), { name: 'LlmNotPermitted' })
  const result = await router.chat({ ...ask, models: [] }, { cloud: false, allow: ['tiny'] })
  assert.equal(result.model, 'tiny')
  assert.equal(local.calls.length, 1)
})

test('the cloud is used only with permission, a held key and a budget', async () => {
  const cloud = testBackend('ollama', ['gpt-test'])
  const providers = [{ provider: 'openai', backend: cloud }]
  const noBudget = setup({ cloud: providers })
  await assert.rejects(noBudget.router.chat({ ...ask, models: ['gpt-test'] }, { cloud: false }), ModelNotFoundError)
  await assert.rejects(noBudget.router.chat({ ...ask, models: ['gpt-test'] }, { cloud: true }), { name: 'BudgetExceeded' })
  assert.equal(cloud.calls.length, 0)
  const funded = setup({ cloud: providers, day: 1_000 })
  const result = await funded.router.chat({ ...ask, models: ['gpt-test'] }, { cloud: true })
  assert.deepEqual(result.route, { kind: 'cloud', provider: 'openai' })
  assert.ok(result.costMicroUsd > 0)
  assert.equal(cloud.calls.length, 1)
})

test('nothing holding the model is ModelNotFound; every route failing is LlmUnavailable', async () => {
  await assert.rejects(setup().router.chat(ask, { cloud: false }), { name: 'ModelNotFound' })
  const { router, local } = setup({ local: ['tiny'] })
  local.fail(new Error('engine crashed'))
  await assert.rejects(router.chat(ask, { cloud: false }), { name: 'LlmUnavailable', message: /engine crashed/ })
})

test('the caller\'s signal ends a slow model and no other route is tried', async () => {
  const { router, local, asked } = setup({ local: ['tiny'], peers: [peer('p', ['tiny'])] })
  local.hang(1)
  const controller = new AbortController()
  const call = router.chat(ask, { cloud: false, signal: controller.signal })
  await local.started()
  controller.abort(new Error('deadline'))
  await assert.rejects(call, { message: 'deadline' })
  assert.deepEqual(asked, [])
})
