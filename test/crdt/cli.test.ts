// `hive-node context …` on two real nodes: what the CLI writes on one node, the CLI reads on
// the other, through each node's local API and the context replication between them.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { main } from '../../node/cli.ts'
import { runCli } from '../helpers/cli.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { Mesh } from '../helpers/mesh.ts'

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

describe('hive-node context', () => {
  let mesh: Mesh
  let laptop: string
  let desktop: string

  before(async () => {
    mesh = await startMesh(2, { label: 'ctx' })
    ;[laptop, desktop] = mesh.dirs as [string, string]
    await waitFor(() => mesh.nodes.every(n => n.contexts.linkedPeers().length === 1), { message: 'context replication linked' })
  })
  after(async () => {
    await mesh.stop()
  })

  it('reads on one node what the CLI wrote on another', async () => {
    assert.equal((await cli('--data', laptop, 'context', 'append', 'trip', 'book the train')).code, 0)
    assert.equal((await cli('--data', laptop, 'context', 'set', 'trip', 'budget', '300')).code, 0)
    const cp = await cli('--data', laptop, 'context', 'checkpoint', 'trip', 'planned', '--json')
    assert.equal(cp.code, 0, cp.err)
    assert.equal(JSON.parse(cp.out).name, 'planned')
    assert.equal((await cli('--data', laptop, 'context', 'append', 'trip', 'booked', '--role', 'assistant')).code, 0)

    const desktopNode = mesh.nodes[1]
    assert.ok(desktopNode != null)
    await waitFor(() => desktopNode.contexts.store.get('trip')?.view().conversation.length === 2, { message: 'trip replicated to the desktop' })

    // the real command, as a separate process, on the other node
    const got = await runCli(['--data', desktop, 'context', 'get', 'trip', '--json'])
    assert.equal(got.code, 0, got.stderr)
    const view = JSON.parse(got.stdout) as { id: string, conversation: Array<{ text: string, role: string, node: string }>, state: Record<string, unknown>, checkpoints: Array<{ name: string }> }
    assert.equal(view.id, 'trip')
    assert.deepEqual(view.conversation.map(e => [e.role, e.text, e.node]), [['user', 'book the train', 'ctx-0'], ['assistant', 'booked', 'ctx-0']])
    assert.deepEqual(view.state, { budget: '300' })
    assert.deepEqual(view.checkpoints.map(c => c.name), ['planned'])

    const human = await cli('--data', desktop, 'context', 'get', 'trip')
    assert.equal(human.code, 0)
    assert.match(human.out, /user: book the train/)
    assert.match(human.out, /budget = 300/)

    const then = await cli('--data', desktop, 'context', 'get', 'trip', '--at', 'planned', '--json')
    assert.equal(then.code, 0, then.err)
    assert.deepEqual((JSON.parse(then.out) as { conversation: unknown[] }).conversation.length, 1)

    const list = await cli('--data', desktop, 'context', 'list', '--json')
    assert.equal(list.code, 0)
    const { contexts } = JSON.parse(list.out) as { contexts: Array<{ id: string, entries: number, keys: number, checkpoints: number }> }
    assert.deepEqual(contexts.map(c => [c.id, c.entries, c.keys, c.checkpoints]), [['trip', 2, 1, 1]])
  })

  it('answers bad input with clear errors and the right exit codes', async () => {
    const badId = await cli('--data', laptop, 'context', 'get', 'no/such')
    assert.equal(badId.code, 2)
    assert.match(badId.err, /invalid context id/)
    const missing = await cli('--data', laptop, 'context', 'get', 'nothing-here')
    assert.equal(missing.code, 1)
    assert.match(missing.err, /no context "nothing-here"/)
    const twice = await cli('--data', laptop, 'context', 'checkpoint', 'trip', 'planned')
    assert.equal(twice.code, 1)
    assert.match(twice.err, /already has a checkpoint named "planned"/)
    const noCheckpoint = await cli('--data', laptop, 'context', 'get', 'trip', '--at', 'never')
    assert.equal(noCheckpoint.code, 1)
    assert.match(noCheckpoint.err, /no checkpoint named "never"/)
    const usage = await cli('--data', laptop, 'context', 'set', 'trip')
    assert.equal(usage.code, 2)
  })
})
