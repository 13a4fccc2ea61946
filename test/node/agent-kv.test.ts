// Agents' kv stores on real nodes: a store is a replicated context, so it converges across three
// nodes after a partition, and every write acknowledged to the agent survives a SIGKILL of the
// `hive-node start` process that made it.

import assert from 'node:assert/strict'
import { readFile, rm } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { dataPaths } from '../../node/config.ts'
import { kvContextId } from '../../node/agents.ts'
import { exited, spawnCli } from '../helpers/cli.ts'
import { connect, makeTempDir, startMesh, startNode } from '../helpers/mesh.ts'
import { lineMatching, waitFor } from '../helpers/wait.ts'
import { KV_AGENT, watAgent } from '../sandbox/fixtures.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { Mesh } from '../helpers/mesh.ts'

const NAME = 'kv-agent'
const MANIFEST = { name: NAME, permissions: ['kv:read', 'kv:write'] }

function kvState (node: HiveNode): Record<string, unknown> {
  return node.contexts.store.get(kvContextId(NAME))?.view().state ?? {}
}

/**
 * Cuts `node` off from `peers` as a firewall would: its connection gater refuses to dial them and
 * refuses their connections, until the returned function heals it. Open connections are closed.
 */
async function partition (node: HiveNode, peers: HiveNode[]): Promise<() => void> {
  const gater = node.hive.gate.connectionGater
  const cut = new Set(peers.map(p => p.peerId.toString()))
  const saved = { dial: gater.denyDialPeer, inbound: gater.denyInboundEncryptedConnection, outbound: gater.denyOutboundEncryptedConnection }
  gater.denyDialPeer = async (peer) => cut.has(peer.toString()) || (await saved.dial?.(peer) ?? false)
  gater.denyInboundEncryptedConnection = async (peer, conn) => cut.has(peer.toString()) || (await saved.inbound?.(peer, conn) ?? false)
  gater.denyOutboundEncryptedConnection = async (peer, conn) => cut.has(peer.toString()) || (await saved.outbound?.(peer, conn) ?? false)
  for (const p of peers) {
    await node.libp2p.hangUp(p.peerId)
    await p.libp2p.hangUp(node.peerId)
  }
  return () => {
    gater.denyDialPeer = saved.dial
    gater.denyInboundEncryptedConnection = saved.inbound
    gater.denyOutboundEncryptedConnection = saved.outbound
  }
}

describe('agent kv on a hive', () => {
  let mesh: Mesh
  let agent: Uint8Array

  before(async () => {
    agent = await watAgent(KV_AGENT, MANIFEST)
    mesh = await startMesh(3, { label: 'kv' })
  })

  after(async () => { await mesh?.stop() })

  it('converges across three nodes after a partition, and stays out of context listings', async () => {
    const [a, b, c] = mesh.nodes as [HiveNode, HiveNode, HiveNode]
    const set = async (node: HiveNode, key: string, value: string): Promise<void> => {
      assert.equal((await node.sandbox.run(agent, { input: `s ${key} ${value}` })).output, '')
    }
    await set(a, 'before', 'from-a')
    await waitFor(() => [b, c].every(n => kvState(n).before === 'from-a'), { message: 'the first write everywhere' })

    // cut c off from both others
    const heal = await partition(c, [a, b])
    await waitFor(() => !c.contexts.linkedPeers().some(p => p === a.peerId.toString() || p === b.peerId.toString()), { message: 'c is cut off' })
    await set(c, 'offline', 'from-c')
    await set(c, 'both', 'from-c')
    await set(a, 'meanwhile', 'from-a')
    await set(a, 'both', 'from-a')
    assert.equal((await b.sandbox.run(agent, { input: 'd before' })).output, '1')
    assert.equal(kvState(a).offline, undefined, 'the partition held: c\'s write has not reached a')

    heal()
    await connect(c, a)
    await connect(c, b)
    await waitFor(() => {
      const states = mesh.nodes.map(n => JSON.stringify(Object.entries(kvState(n)).sort()))
      return states.every(s => s === states[0]) && kvState(a).offline === 'from-c' && kvState(c).meanwhile === 'from-a'
    }, { message: 'every node holds the same store, with both sides\' writes', timeoutMs: 30_000 })
    const merged = kvState(b)
    assert.equal(merged.before, undefined, 'the delete made during the partition holds')
    assert.ok(merged.both === 'from-a' || merged.both === 'from-c', 'one of the concurrent writes wins, the same everywhere')
    // and an agent on any node reads the merged store
    assert.equal((await c.sandbox.run(agent, { input: 'l  xxxxxxxxxx' })).output, 'both,meanwhile,offline')
    assert.ok(a.contexts.store.list().some(ctx => ctx.id === kvContextId(NAME)), 'held as a context')
    const listed = await (await fetch(`${a.apiUrl ?? ''}/contexts`)).json() as { contexts: Array<{ id: string }> }
    assert.ok(!listed.contexts.some(ctx => ctx.id.startsWith('hive.')), 'but not listed as an agent\'s context')
  })
})

describe('agent kv durability', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('every write acknowledged before a SIGKILL of hive-node start is there after a restart', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const child = spawnCli(['--data', dir, 'start', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--json'])
    const done = exited(child)
    const acknowledged: string[] = []
    try {
      const ready = JSON.parse(await lineMatching(child.stdout, line => line.startsWith('{'), { message: 'ready line', timeoutMs: 60_000 })) as { apiUrl: string }
      const token = (await readFile(dataPaths(dir).token, 'utf8')).trim()
      const bytes = Buffer.from(await watAgent(KV_AGENT, MANIFEST)).toString('base64')
      const write = async (i: number): Promise<void> => {
        const res = await fetch(`${ready.apiUrl}/agents/run`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ agent: bytes, input: `s key-${i} value-${i}` })
        })
        const body = await res.json() as { output?: string, error?: unknown }
        if (res.status === 200 && body.output === '') acknowledged.push(`key-${i}`)
        else throw new Error(`write ${i}: ${res.status} ${JSON.stringify(body)}`)
      }
      for (let i = 0; i < 20; i++) await write(i)
      // more writes in flight when the process dies: those not acknowledged may be lost, no others
      const inFlight = Array.from({ length: 10 }, async (_, i) => { await write(20 + i) })
      await waitFor(() => acknowledged.length >= 22, { message: 'a few in-flight writes acknowledged' })
      child.kill('SIGKILL')
      await Promise.allSettled(inFlight)
    } finally {
      child.kill('SIGKILL')
      await done
    }
    assert.ok(acknowledged.length >= 22)
    const node = await startNode('kv-restarted', {}, dir)
    try {
      const store = await node.contexts.store.open(kvContextId(NAME))
      const state = store.view().state
      const missing = acknowledged.filter(k => state[k] !== `value-${k.slice(4)}`)
      assert.deepEqual(missing, [], 'every acknowledged write is present')
    } finally {
      await node.stop()
    }
  })
})
