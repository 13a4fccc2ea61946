// The waterfall on a real 3-node hive on loopback, with the real embedded engine on a generated
// model on one device and the real cloud client against a loopback provider: where each call is
// answered, the cloud only with permission and budget, the cap under concurrency, garbage and
// strangers on /hive/llm, a silent peer and a peer that dies mid-stream. Output of random
// weights is noise, so the tests compare texts with each other, never with wording.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { LLM_PROTOCOL, encodeFrame } from '../../../protocol/index.ts'
import { BUDGET_CONTEXT, createEmbeddedBackend } from '../../../protocol/llm/index.ts'
import { connect, startMesh, startNode } from '../../helpers/mesh.ts'
import { runCli } from '../../helpers/cli.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import { instrument } from './fixtures.ts'
import { llmChatWat, watAgent } from '../../sandbox/fixtures.ts'
import { tinyModelsDir } from '../../helpers/gguf.ts'
import { startFakeOpenAi } from '../../helpers/fake-openai.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { Instrumented } from './fixtures.ts'
import type { FakeOpenAi } from '../../helpers/fake-openai.ts'
import type { TinyModelsDir } from '../../helpers/gguf.ts'
import type { PeerId } from '@libp2p/interface'

const prices = { 'gpt-test': { in: 1, out: 10 } }
const ask = (models: string[], maxTokens = 3): { models: string[], messages: Array<{ role: 'user', content: string }>, maxTokens: number, temperature: number, seed: number } =>
  ({ models, messages: [{ role: 'user', content: 'hello hive' }], maxTokens, temperature: 0, seed: 1 })

let mesh: Mesh
let holder: Instrumented
let models: TinyModelsDir
let cloud: FakeOpenAi
let a: HiveNode, b: HiveNode, c: HiveNode

before(async () => {
  models = await tinyModelsDir(['tiny'])
  holder = instrument(createEmbeddedBackend({ modelsDir: models.modelsDir, threads: 1 }))
  cloud = await startFakeOpenAi({ apiKey: 'sk-test-secret', models: ['gpt-test'] })
  mesh = await startMesh(3, {
    label: 'llm',
    init: (i) => ({
      capabilities: { intervalMs: 500, expireMs: 5_000, ollamaUrl: null },
      llm: {
        backends: i === 0 ? [holder] : [],
        prices,
        router: { idleTimeoutMs: 2_000, peerTimeoutMs: 20_000 }
      }
    })
  })
  ;[a, b, c] = mesh.nodes as [HiveNode, HiveNode, HiveNode]
  await waitFor(() => [b, c].every(n => n.capabilities.get(a.peerId.toString())?.caps.models.includes('tiny')), { message: 'every member hears that llm-0 holds tiny' })
})

after(async () => {
  await mesh.stop()
  await cloud.stop()
  await models.remove()
})

const cloudCalls = (): number => cloud.requests.filter(r => r.path === '/v1/chat/completions').length

test('a call is answered on the device that holds the model', async () => {
  const tokens: string[] = []
  const result = await a.llm.router.chat(ask(['tiny'], 8), { cloud: false, onToken: (t) => tokens.push(t) })
  assert.deepEqual(result.route, { kind: 'local' })
  assert.equal(result.model, 'tiny')
  assert.ok(tokens.length > 1)
  assert.equal(tokens.join(''), result.text)
  assert.equal(result.tokensOut, 8)
  assert.equal(result.costMicroUsd, 0)
})

test('a device without the model is answered by the member that holds it, tokens streamed back', async () => {
  const before = holder.calls
  const tokens: string[] = []
  const result = await c.llm.router.chat(ask(['tiny'], 8), { cloud: false, onToken: (t) => tokens.push(t) })
  assert.deepEqual(result.route, { kind: 'peer', peer: a.peerId.toString(), device: 'llm-0' })
  assert.ok(tokens.length > 1)
  assert.equal(tokens.join(''), result.text)
  assert.equal(holder.calls, before + 1)
  // the same model with the same seed on the same device: the peer route changes nothing
  const direct = await a.llm.router.chat(ask(['tiny'], 8), { cloud: false })
  assert.equal(result.text, direct.text)
  assert.equal(result.tokensIn, direct.tokensIn)
  const embedded = await c.llm.router.embed('tiny', ['one', 'three'], { cloud: false })
  const local = await a.llm.router.embed('tiny', ['one', 'three'], { cloud: false })
  assert.equal(embedded.route.kind, 'peer')
  assert.equal(embedded.vectors.length, 2)
  assert.deepEqual(embedded.vectors, local.vectors)
})

test('hive-node ask streams through the API and models names the devices', async () => {
  const asked = await runCli(['--data', c.dataDir, 'ask', 'hello hive', '--model', 'tiny', '--max-tokens', '6', '--temperature', '0', '--seed', '1'])
  assert.equal(asked.code, 0, asked.stderr)
  assert.match(asked.stderr, /\[peer llm-0\]/)
  assert.match(asked.stderr, /\[tiny on peer llm-0: \d+ tokens in, 6 out\]/)
  const direct = await a.llm.router.chat(ask(['tiny'], 6), { cloud: false })
  assert.equal(asked.stdout, direct.text + '\n')
  const listed = await runCli(['--data', b.dataDir, 'models', '--json'])
  assert.equal(listed.code, 0, listed.stderr)
  assert.deepEqual(JSON.parse(listed.stdout).models, [{ name: 'tiny', devices: ['llm-0'] }])
  const missing = await runCli(['--data', b.dataDir, 'ask', 'hello', '--model', 'nowhere'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /no device in the hive holds nowhere/)
})

test('the cloud answers only with permission, a held key and a budget; the key stays on its device', async () => {
  await assert.rejects(c.llm.router.chat(ask(['gpt-test']), { cloud: true }), { name: 'ModelNotFound' }, 'no key held')
  const keyFile = `${c.dataDir}/key.txt`
  const { writeFile, stat, readFile } = await import('node:fs/promises')
  await writeFile(keyFile, 'sk-test-secret\n')
  const set = await runCli(['--data', c.dataDir, 'cloud', 'set', 'openai', '--key-file', keyFile, '--base-url', cloud.url])
  assert.equal(set.code, 0, set.stderr)
  await rm(keyFile)
  assert.equal((await stat(`${c.dataDir}/cloud.json`)).mode & 0o777, 0o600)
  assert.deepEqual(c.llm.cloudList(), [{ provider: 'openai', baseUrl: cloud.url }])
  await assert.rejects(c.llm.router.chat(ask(['gpt-test']), { cloud: false }), { name: 'ModelNotFound' }, 'no llm:cloud')
  await assert.rejects(c.llm.router.chat(ask(['gpt-test']), { cloud: true }), { name: 'BudgetExceeded' }, 'no budget')
  assert.equal(cloudCalls(), 0)

  // set on one device, in force on every member
  const budget = await runCli(['--data', b.dataDir, 'budget', '--day', '0.003', '--json'])
  assert.equal(budget.code, 0, budget.stderr)
  await waitFor(() => c.llm.budgetSetting()?.day === 3000 && a.llm.budgetSetting()?.day === 3000, { message: 'the budget reaches every member' })
  const result = await c.llm.router.chat(ask(['gpt-test']), { cloud: true })
  assert.deepEqual(result.route, { kind: 'cloud', provider: 'openai' })
  const billed = cloud.usage.at(-1)
  assert.ok(billed != null)
  assert.equal(result.tokensOut, billed.completion_tokens)
  assert.equal(result.costMicroUsd, billed.prompt_tokens * 1 + billed.completion_tokens * 10)
  assert.equal(cloudCalls(), 1)
  assert.equal(c.llm.budget.status().spentMicroUsd, result.costMicroUsd)

  // the key is in no context, and nothing the hive replicates carries it
  for (const node of mesh.nodes) {
    for (const id of node.contexts.store.ids()) assert.doesNotMatch(JSON.stringify(node.contexts.store.get(id)?.view()), /sk-test-secret/)
  }
  assert.match(await readFile(`${c.dataDir}/cloud.json`, 'utf8'), /sk-test-secret/)
  assert.ok(a.contexts.store.has(BUDGET_CONTEXT as never))
})

test('20 concurrent cloud calls from three devices never pass the hive cap', async () => {
  for (const node of [a, b]) {
    const keyFile = `${node.dataDir}/key.txt`
    const { writeFile } = await import('node:fs/promises')
    await writeFile(keyFile, 'sk-test-secret\n')
    assert.equal((await runCli(['--data', node.dataDir, 'cloud', 'set', 'openai', '--key-file', keyFile, '--base-url', cloud.url])).code, 0)
    await rm(keyFile)
  }
  await b.llm.setBudget({ dayMicroUsd: 1500 })
  await waitFor(() => mesh.nodes.every(n => n.llm.budgetSetting()?.day === 1500), { message: 'the new cap reaches every member' })
  const before = cloudCalls()
  const spentBefore = mesh.nodes.reduce((sum, n) => sum + n.llm.budget.status().spentMicroUsd, 0)
  const outcomes = await Promise.all(Array.from({ length: 20 }, async (_, i) => {
    const node = mesh.nodes[i % 3]!
    return node.llm.router.chat(ask(['gpt-test'], 30), { cloud: true }).then(r => r.route.kind, (err: Error) => err.name)
  }))
  const asked = cloudCalls() - before
  const spent = mesh.nodes.reduce((sum, n) => sum + n.llm.budget.status().spentMicroUsd, 0) - spentBefore
  assert.ok(outcomes.includes('BudgetExceeded'), `some calls are refused: ${outcomes.join(', ')}`)
  assert.ok(asked > 0, 'some calls reach the cloud')
  assert.equal(outcomes.filter(o => o === 'cloud').length, asked, 'only admitted calls are sent')
  // each device spends at most its slice (cap / 3) of the day, whatever the others do
  const total = mesh.nodes.reduce((sum, n) => sum + n.llm.budget.status().spentMicroUsd, 0)
  assert.ok(total <= 1500, `the hive spent ${total} micro-USD today, within the cap of 1500`)
  assert.ok(spent > 0)
})

test('hive-node run of an LLM agent prints where each model call ran', async () => {
  const { writeFile } = await import('node:fs/promises')
  // seeded: the generated model's sampling may end a reply early; a seed makes it the same every run
  const agent = await watAgent(llmChatWat({ models: ['tiny'], maxTokens: 4, calls: 2, seed: 7 }), { name: 'thinker', permissions: ['llm'], models: ['tiny'] })
  const file = `${b.dataDir}/thinker.wasm`
  await writeFile(file, agent)
  const ran = await runCli(['--data', b.dataDir, 'run', file, '--input', 'hello hive', '--on', 'llm-2', '--timeout', '60000'])
  assert.equal(ran.code, 0, ran.stderr)
  const lines = ran.stderr.split('\n').filter(l => l.includes('llm chat'))
  assert.equal(lines.length, 2, ran.stderr)
  for (const line of lines) assert.match(line, /^\[thinker\] info: llm chat tiny on peer llm-0: \d+ tokens in, 4 out, \d+ ms$/)
  assert.match(ran.stdout, /\|tiny\|\d+\|4\|/)
})

test('malformed /hive/llm frames are refused and the peer dropped; a stranger is refused; the node keeps serving', async () => {
  const dropped = eventPromise<CustomEvent<PeerId>>(c.libp2p, 'peer:disconnect', { filter: (e) => e.detail.equals(a.peerId), message: 'llm-0 hangs up on a peer that sends garbage' })
  const stream = await c.libp2p.dialProtocol(a.peerId, LLM_PROTOCOL)
  stream.send(encodeFrame({ t: 'chat', request: { models: ['tiny'], messages: [], maxTokens: -1 } }))
  await dropped

  const served = holder.calls
  const stranger = await startNode('stranger', { capabilities: { ollamaUrl: null } })
  let received = 0
  let refused = false
  try {
    const s = await stranger.libp2p.dialProtocol(a.libp2p.getMultiaddrs(), LLM_PROTOCOL)
    s.send(encodeFrame({ t: 'chat', request: ask(['tiny']) }))
    for await (const chunk of s) received += chunk.byteLength
  } catch {
    refused = true
  } finally {
    await stranger.stop()
    await rm(stranger.dataDir, { recursive: true, force: true })
  }
  assert.equal(received, 0, 'a stranger learns nothing')
  assert.ok(refused, 'a stranger\'s call is refused')
  assert.equal(holder.calls, served, 'no model ran for the stranger')

  await connect(c, a)
  const result = await b.llm.router.chat(ask(['tiny']), { cloud: false })
  assert.equal(result.route.kind, 'peer')
})

test('a peer that goes silent mid-stream is given up after the idle time, and its model is stopped', async () => {
  await connect(c, a)
  holder.hang(1)
  const aborted = holder.aborted
  const tokens: string[] = []
  const err = await c.llm.router.chat(ask(['tiny'], 16), { cloud: false, onToken: (t) => tokens.push(t) }).then(() => undefined, (e: Error) => e)
  assert.equal(err?.name, 'LlmUnavailable')
  assert.match(err.message, /silent for 2000 ms/)
  assert.equal(tokens.length, 1)
  await waitFor(() => holder.aborted === aborted + 1, { message: 'the caller\'s reset stops the model on llm-0' })
  assert.ok(c.llm.router.cooldowns().some(x => x.peerId === a.peerId.toString()), 'the silent peer is cooled down')
})

test('a peer that dies mid-stream ends the call with LlmUnavailable, not a hang', async () => {
  // llm-2 has llm-0 cooled down after the silence above: llm-1 calls
  holder.hang(2)
  const stalled = holder.stalled
  const tokens: string[] = []
  const outcome = b.llm.router.chat(ask(['tiny'], 16), { cloud: false, onToken: (t) => tokens.push(t) }).then(() => undefined, (err: Error) => err)
  // tokens made while a frame is being written travel together: wait for both to arrive
  await waitFor(() => tokens.length > 0 && holder.stalled > stalled, { message: 'the first tokens arrive and the model stalls' })
  await a.stop()
  const err = await outcome
  assert.equal(err?.name, 'LlmUnavailable')
  assert.match(err.message, /llm-0/)
  assert.ok(tokens.length >= 1 && tokens.length <= 2)
})
