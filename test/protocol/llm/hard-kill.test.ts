// A member that dies hard in the middle of an answer: a separate `hive-node start` process
// holding the model (the real embedded engine on a generated GGUF in its data directory) is
// killed with SIGKILL while it streams, so nothing says goodbye: no stream close, no muxer
// GoAway, only the kernel closing its sockets. The caller must notice from the connection itself,
// not from its idle timer (set far longer than any test here), and go on to the next route or
// end the call with LlmUnavailable. The answer's bound holds on both sides: a peer that streams
// past it is refused, and a model that talks past it is stopped and answered LlmTooLarge.

import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { peerIdFromString } from '@libp2p/peer-id'
import { LLM_PROTOCOL, encodeFrame } from '../../../protocol/index.ts'
import { MAX_ANSWER_CHARS, MAX_TOKEN_FRAME_CHARS, callPeer } from '../../../protocol/llm/index.ts'
import { exited, runCli, spawnCli } from '../../helpers/cli.ts'
import { startMesh } from '../../helpers/mesh.ts'
import { tinyModelsDir } from '../../helpers/gguf.ts'
import { lineMatching, waitFor } from '../../helpers/wait.ts'
import { testBackend } from './fixtures.ts'
import type { ChildProcessWithoutNullStreams } from 'node:child_process'
import type { CliResult } from '../../helpers/cli.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { LlmRoute } from '../../../protocol/llm/index.ts'

/** Far longer than a call here may take: a call ended by it would fail the test's message check. */
const IDLE_MS = 120_000
/** Thousands of tokens: seconds of work for the tiny model, so the kill lands mid-answer. */
const LONG = 4000

const ask = (maxTokens: number): { models: string[], messages: Array<{ role: 'user', content: string }>, maxTokens: number, temperature: number, seed: number } =>
  ({ models: ['tiny'], messages: [{ role: 'user', content: 'hello hive' }], maxTokens, temperature: 0, seed: 1 })

interface Holder {
  child: ChildProcessWithoutNullStreams
  peerId: string
  ended: Promise<CliResult>
}

let mesh: Mesh
let caller: HiveNode
const children: ChildProcessWithoutNullStreams[] = []
const cleanups: Array<() => Promise<void>> = []

before(async () => {
  mesh = await startMesh(1, {
    label: 'kill',
    init: () => ({ capabilities: { intervalMs: 500, expireMs: 10_000, ollamaUrl: null }, llm: { backends: [], router: { idleTimeoutMs: IDLE_MS } } })
  })
  caller = mesh.nodes[0]!
})

after(async () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  await Promise.all(children.map(async c => { if (c.exitCode === null && c.signalCode === null) await new Promise(resolve => c.once('close', resolve)) }))
  for (const cleanup of cleanups) await cleanup()
  await mesh.stop()
})

/** Starts `hive-node start` as its own process with the tiny model, joins it to the caller's hive. */
async function startHolder (name: string): Promise<Holder> {
  const models = await tinyModelsDir(['tiny'], { contextLength: 4096 })
  cleanups.push(models.remove)
  const child = spawnCli(['--data', models.dataDir, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--loopback', '--json',
    '--name', name, '--capability', 'load=0'])
  children.push(child)
  const ended = exited(child)
  const ready = JSON.parse(await lineMatching(child.stdout, line => line.startsWith('{'), { message: `${name} is ready` })) as { peerId: string }
  const joined = await runCli(['--data', models.dataDir, 'join', caller.hive.pairing.createInvite().uri, '--json'])
  assert.equal(joined.code, 0, joined.stderr)
  await waitFor(() => caller.capabilities.get(ready.peerId)?.caps.models.includes('tiny'), { message: `the caller hears that ${name} holds tiny` })
  return { child, peerId: ready.peerId, ended }
}

test('a member killed mid-answer (SIGKILL) ends the call with LlmUnavailable, from the connection, not the idle timer', async () => {
  const holder = await startHolder('doomed')
  const tokens: string[] = []
  const err = await caller.llm.router.chat(ask(LONG), {
    cloud: false,
    onToken: (t) => {
      tokens.push(t)
      if (tokens.length === 1) holder.child.kill('SIGKILL')
    }
  }).then(() => undefined, (e: Error) => e)
  const ended = await holder.ended
  assert.equal(ended.signal, 'SIGKILL')
  assert.equal(err?.name, 'LlmUnavailable', String(err))
  assert.match(err.message, /doomed/)
  assert.doesNotMatch(err.message, /silent for|took longer than/, 'the dead connection ended the call, not a timer')
  assert.ok(tokens.length >= 1 && tokens.join('').length < LONG, 'the answer was cut off mid-stream')
  assert.ok(caller.llm.router.cooldowns().some(c => c.peerId === holder.peerId), 'the dead member is cooled down')
})

test('a member killed mid-answer (SIGKILL) hands the call to the next member, which answers it', async () => {
  const backupModel = testBackend('embedded', ['tiny'], ['x', 'y', 'z'])
  // the spare reports a heavy load, so the holder, which reports none, is tried first
  const again = await startMesh(1, {
    label: 'kill-backup',
    init: () => ({ capabilities: { intervalMs: 500, ollamaUrl: null }, capabilityOverrides: { load: 64 }, llm: { backends: [backupModel] } })
  })
  cleanups.push(again.stop)
  const spare = again.nodes[0]!
  assert.equal((await runCli(['--data', spare.dataDir, 'join', caller.hive.pairing.createInvite().uri])).code, 0)
  const holder = await startHolder('doomed-2')
  await waitFor(() => caller.capabilities.get(spare.peerId.toString())?.caps.models.includes('tiny'), { message: 'the caller hears that the spare holds tiny' })

  const routes: LlmRoute[] = []
  const tokens: string[] = []
  const answered = backupModel.calls.length
  const result = await caller.llm.router.chat(ask(LONG), {
    cloud: false,
    onRoute: (r) => routes.push(r),
    onToken: (t) => {
      tokens.push(t)
      if (tokens.length === 1) holder.child.kill('SIGKILL')
    }
  })
  assert.equal((await holder.ended).signal, 'SIGKILL')
  assert.deepEqual(routes.map(r => r.kind === 'peer' ? r.device : r.kind), ['doomed-2', 'kill-backup-0'], 'the killed member first, then the next')
  assert.deepEqual(result.route, { kind: 'peer', peer: spare.peerId.toString(), device: 'kill-backup-0' })
  assert.equal(result.text, 'xyz')
  assert.equal(backupModel.calls.length, answered + 1)
  assert.ok(tokens.join('').endsWith('xyz'))
})

test('a member that sends more answer than the bound is refused with LlmUnavailable', async () => {
  const liar = await startMesh(1, { label: 'liar', init: () => ({ capabilities: { ollamaUrl: null } }) })
  cleanups.push(liar.stop)
  const node = liar.nodes[0]!
  assert.equal((await runCli(['--data', node.dataDir, 'join', caller.hive.pairing.createInvite().uri])).code, 0)
  // this member's own /hive/llm is replaced by one that streams past the bound and never ends
  await node.libp2p.unhandle(LLM_PROTOCOL)
  await node.libp2p.handle(LLM_PROTOCOL, (stream) => {
    const piece = 'x'.repeat(MAX_TOKEN_FRAME_CHARS)
    for (let sent = 0; sent <= MAX_ANSWER_CHARS; sent += piece.length) stream.send(encodeFrame({ t: 'token', text: piece }))
  })
  let received = 0
  const err = await callPeer(caller.libp2p, peerIdFromString(node.peerId.toString()), { t: 'chat', request: ask(8) }, {
    timeoutMs: IDLE_MS,
    idleMs: IDLE_MS,
    onToken: (t) => { received += t.length }
  }).then(() => undefined, (e: Error) => e)
  assert.equal(err?.name, 'LlmUnavailable')
  assert.match(err.message, /longer than/)
  assert.ok(received <= MAX_ANSWER_CHARS)
})

test('a model whose answer passes the bound is stopped on its device and the call answered LlmTooLarge', async () => {
  const third = Math.ceil(MAX_ANSWER_CHARS / 3)
  const verbose = testBackend('embedded', ['verbose'], ['a'.repeat(third), 'b'.repeat(third), 'c'.repeat(third), 'd'])
  const member = await startMesh(1, { label: 'verbose', init: () => ({ capabilities: { ollamaUrl: null }, llm: { backends: [verbose] } }) })
  cleanups.push(member.stop)
  const node = member.nodes[0]!
  assert.equal((await runCli(['--data', node.dataDir, 'join', caller.hive.pairing.createInvite().uri])).code, 0)
  let received = 0
  const err = await callPeer(caller.libp2p, peerIdFromString(node.peerId.toString()), { t: 'chat', request: { ...ask(8), models: ['verbose'] } }, {
    timeoutMs: IDLE_MS,
    idleMs: IDLE_MS,
    onToken: (t) => { received += t.length }
  }).then(() => undefined, (e: Error) => e)
  assert.equal(err?.name, 'LlmTooLarge', String(err))
  assert.ok(received <= MAX_ANSWER_CHARS, `the caller received ${received} characters`)
  assert.equal(verbose.calls.length, 1)
})
