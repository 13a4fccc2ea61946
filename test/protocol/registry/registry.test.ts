// The registry on a hive of three real nodes on loopback: an agent published on A is run by name
// on B, which never had the file (its bytes come from A or C, checked against the digest); a
// forged entry gets its sender dropped, a second publish of a version with other bytes is
// refused (and, signed elsewhere, kept only as a conflict), a non-member's entry counts for
// nothing; with A gone, B and C still run the agent, each holding it once it ran; the catalog
// survives a restart and a device that was offline catches up when it connects.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { after, before, describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { z } from 'zod'
import { REGISTRY_PROTOCOL, createCatalogEntry } from '../../../protocol/registry/index.ts'
import { dialFramed } from '../../../protocol/wire/serve.ts'
import { dataPaths } from '../../../node/config.ts'
import { ECHO_BODY, agentWat, watAgent } from '../../sandbox/fixtures.ts'
import { waitFor } from '../../helpers/wait.ts'
import { startHive } from '../placement/fixture.ts'
import type { CatalogEntry, RegistryEvents } from '../../../protocol/registry/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { TestHive } from '../placement/fixture.ts'

const id = (node: HiveNode): string => node.peerId.toString()

async function next<K extends keyof RegistryEvents & string> (node: HiveNode, type: K, filter: (d: RegistryEvents[K]) => boolean, timeoutMs = 30_000): Promise<RegistryEvents[K]> {
  const { promise, resolve, reject } = Promise.withResolvers<RegistryEvents[K]>()
  const off = node.registry.on(type, (detail) => { if (filter(detail)) resolve(detail) })
  const timer = setTimeout(() => { reject(new Error(`${node.name}: no registry ${type} within ${timeoutMs} ms`)) }, timeoutMs)
  try {
    return await promise
  } finally {
    clearTimeout(timer)
    off()
  }
}

/** Calls a node's API with its token. */
async function api<T> (node: HiveNode, method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
  const token = (await readFile(dataPaths(node.dataDir).token, 'utf8')).trim()
  const response = await fetch(`${node.apiUrl ?? ''}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {})
  })
  return { status: response.status, body: await response.json() as T }
}

interface TaskBody { task: { id: string, status: string, result?: { ok: boolean, output?: string, executor: string } } }

/** Runs an agent by name through `POST /task` on `node`, pinned to it, and waits for the result. */
async function runByName (node: HiveNode, ref: string, input: string): Promise<TaskBody['task']> {
  const submitted = await api<TaskBody & { error?: { code: string, message: string } }>(node, 'POST', '/task', { agent: ref, input, local: true })
  assert.equal(submitted.status, 202, JSON.stringify(submitted.body))
  return node.placement.wait(submitted.body.task.id, { signal: AbortSignal.timeout(60_000) })
}

/**
 * Plays the initiator of a registry exchange from `from` to `to`, sending `entries` as they are
 * (so a test can send what a node would never sign or forward).
 */
async function sendEntries (from: HiveNode, to: HiveNode, entries: Array<{ b: Uint8Array, s: Uint8Array }>): Promise<void> {
  const stream = await dialFramed(from.libp2p, peerIdFromString(id(to)), REGISTRY_PROTOCOL, { maxMessageBytes: 4 << 20, signal: AbortSignal.timeout(10_000) })
  try {
    await stream.write({ t: 'have', hive: to.hive.membership.hiveId, ids: to.registry.entries().map(e => e.id) })
    await stream.read(z.unknown())
    for (;;) {
      const m = await stream.read(z.object({ more: z.boolean() }).passthrough())
      if (!m.more) break
    }
    await stream.write({ t: 'entries', entries, more: false })
    await stream.readFrame({ signal: AbortSignal.timeout(5_000) }).catch(() => null)
  } finally {
    stream.abort(new Error('done'))
  }
}

const wire = (e: CatalogEntry): { b: Uint8Array, s: Uint8Array } => ({ b: e.bytes, s: e.sig })

describe('the agent registry on three devices', () => {
  let hive: TestHive
  let a: HiveNode
  let b: HiveNode
  let c: HiveNode
  let notes: Uint8Array
  let digest: string

  before(async () => {
    hive = await startHive(3)
    ;[a, b, c] = hive.nodes as [HiveNode, HiveNode, HiveNode]
    notes = await watAgent(agentWat(ECHO_BODY), { name: 'notes', version: '0.1.0', description: 'echoes what it is told' })
  })
  after(async () => { await hive.stop() })

  it('publishes on A; every member holds the signed entry; B runs notes@0.1.0 by name without ever having had the file', async () => {
    const heard = [b, c].map(async node => next(node, 'entry', e => e.name === 'notes'))
    const published = await api<{ version: { digest: string, publisher: string, publisherName: string, tags: string[] } }>(a, 'POST', '/registry/publish', { agent: Buffer.from(notes).toString('base64'), tags: ['latest'] })
    assert.equal(published.status, 201)
    digest = published.body.version.digest
    assert.equal(published.body.version.publisher, id(a))
    assert.equal(published.body.version.publisherName, a.name)
    assert.deepEqual(published.body.version.tags, ['latest'])
    for (const e of await Promise.all(heard)) assert.equal(e.digest, digest)

    // B never had the bytes: not in memory, not on disk
    assert.equal(b.agents.get(digest as never), undefined)
    assert.equal(await b.components.has(digest as never), false)
    const shown = await api<{ agent: { versions: Array<{ version: string, publisherName: string, digest: string, manifest: { permissions: string[] } }> } }>(b, 'GET', '/registry/notes')
    assert.deepEqual(shown.body.agent.versions.map(v => [v.version, v.publisherName, v.digest]), [['0.1.0', a.name, digest]])

    const task = await runByName(b, 'notes@0.1.0', 'remember the milk')
    assert.equal(task.status, 'done')
    assert.equal(task.result?.output, 'remember the milk')
    assert.equal(task.result?.executor, id(b))
    // fetched, checked and kept: B now holds it, on disk too
    assert.equal(await b.components.has(digest as never), true)
  })

  it('refuses a forged entry and drops its sender; the catalog stays as it was', async () => {
    const real = await createCatalogEntry({
      type: 'publish', hive: a.hive.membership.hiveId, at: Date.now(), name: 'notes', version: '0.1.1', digest: 'e'.repeat(64), size: 10,
      manifest: { description: '', permissions: [], limits: { timeoutMs: 1000, memoryMiB: 1 } }, tags: []
    }, b.signer)
    const sig = new Uint8Array(real.sig)
    sig[3] = (sig[3] ?? 0) ^ 1
    const refused = next(a, 'refused', e => e.peer === id(b))
    await sendEntries(b, a, [{ b: real.bytes, s: sig }])
    assert.match((await refused).error, /InvalidCatalogEntry: .*does not verify/)
    assert.deepEqual(a.registry.show('notes')?.versions.map(v => v.version), ['0.1.0'])
    assert.equal(a.running, true)
  })

  it('refuses a second publish of a version with other bytes; one signed elsewhere is kept only as a conflict', async () => {
    const other = await watAgent(agentWat(ECHO_BODY), { name: 'notes', version: '0.1.0', description: 'other bytes, same version' })
    const again = await api<{ error: { code: string, message: string } }>(a, 'POST', '/registry/publish', { agent: Buffer.from(other).toString('base64') })
    assert.equal(again.status, 409)
    assert.equal(again.body.error.code, 'VersionConflict')
    assert.match(again.body.error.message, /notes@0\.1\.0 is already published with other bytes .*raise the version/)
    // a member that signs one anyway (or two devices apart that both publish): kept as a conflict, never run
    const conflicting = await createCatalogEntry({
      type: 'publish', hive: a.hive.membership.hiveId, at: Date.now(), name: 'notes', version: '0.1.0', digest: 'f'.repeat(64), size: other.byteLength,
      manifest: { description: 'other', permissions: [], limits: { timeoutMs: 1000, memoryMiB: 1 } }, tags: ['latest']
    }, c.signer)
    const conflict = next(a, 'conflict', e => e.name === 'notes')
    await sendEntries(c, a, [wire(conflicting)])
    const seen = await conflict
    assert.deepEqual([seen.digest, seen.conflicting], [digest, 'f'.repeat(64)])
    const v = (await a.registry.resolve('notes@0.1.0'))
    assert.equal(v.digest, digest)
    assert.deepEqual(v.conflicts.map(x => [x.digest, x.publisher]), [['f'.repeat(64), id(c)]])
    const shown = await api<{ version: { conflicts: Array<{ digest: string, publisherName: string }> } }>(a, 'GET', '/registry/notes@0.1.0')
    assert.deepEqual(shown.body.version.conflicts.map(x => [x.digest, x.publisherName]), [['f'.repeat(64), c.name]])
  })

  it('counts nothing a non-member signed, without dropping the member that passed it on', async () => {
    const stranger = await generateKeyPair('Ed25519')
    const outsider = await createCatalogEntry({
      type: 'publish', hive: a.hive.membership.hiveId, at: Date.now(), name: 'intruder', version: '1.0.0', digest: 'd'.repeat(64), size: 10,
      manifest: { description: '', permissions: [], limits: { timeoutMs: 1000, memoryMiB: 1 } }, tags: []
    }, { peerId: peerIdFromPrivateKey(stranger).toString(), sign: async (bytes) => stranger.sign(bytes) })
    // the membership tick dials a dropped member again within two of its 15 s intervals
    await waitFor(() => a.libp2p.getConnections(b.peerId).some(c => c.status === 'open'), { message: 'B is connected to A again', timeoutMs: 60_000 })
    const links = new Set(a.libp2p.getConnections(b.peerId).map(c => c.id))
    const ignored = next(a, 'ignored', e => e.entry === outsider.id)
    await sendEntries(b, a, [wire(outsider)])
    assert.match((await ignored).reason, /not a member/)
    assert.ok(a.libp2p.getConnections(b.peerId).some(c => links.has(c.id) && c.status === 'open'), 'B keeps its connection')
    assert.equal(a.registry.show('intruder'), undefined)
    await assert.rejects(a.registry.resolve('intruder', { signal: AbortSignal.timeout(2_000) }), { name: 'AgentNotPublished' })
  })

  it('a device that ran it as a task\'s winner keeps it: with A gone, C and B run notes by name from what they hold', async () => {
    // A places a run by name on C, which fetches the bytes from A as any winner does, and keeps them
    assert.equal(await c.components.has(digest as never), false)
    const placed = await api<TaskBody>(a, 'POST', '/task', { agent: 'notes@0.1.0', input: 'on C', on: id(c) })
    assert.equal(placed.status, 202)
    const done = await a.placement.wait(placed.body.task.id, { signal: AbortSignal.timeout(60_000) })
    assert.deepEqual([done.status, done.result?.executor, done.result?.output], ['done', id(c), 'on C'])
    await waitFor(async () => c.components.has(digest as never), { message: 'C keeps the component it ran' })

    await hive.kill(a)
    const onC = await runByName(c, 'notes', 'from C')
    assert.deepEqual([onC.status, onC.result?.output], ['done', 'from C'])
    const onB = await runByName(b, 'notes@latest', 'from B')
    assert.deepEqual([onB.status, onB.result?.output], ['done', 'from B'])
  })

  it('yanks a version: signed, replicated, no longer run by name, still listed', async () => {
    const yanked = next(c, 'entry', e => e.type === 'yank')
    const answer = await api<{ version: { yanked: { by: string, reason: string } } }>(b, 'POST', '/registry/yank', { ref: 'notes@0.1.0', reason: 'superseded' })
    assert.equal(answer.status, 200)
    assert.deepEqual([answer.body.version.yanked.by, answer.body.version.yanked.reason], [id(b), 'superseded'])
    await yanked
    const refused = await api<{ error: { code: string, message: string } }>(c, 'POST', '/task', { agent: 'notes@0.1.0', input: 'x', local: true })
    assert.deepEqual([refused.status, refused.body.error.code], [409, 'AgentYanked'])
    const listed = await api<{ agents: Array<{ name: string, versions: Array<{ version: string, yanked?: unknown }> }> }>(c, 'GET', '/registry')
    assert.ok(listed.body.agents.find(x => x.name === 'notes')?.versions.find(v => v.version === '0.1.0')?.yanked != null)
  })

  it('keeps the catalog across a restart', async () => {
    const dir = c.dataDir
    const before = c.registry.entries().map(e => e.id).sort()
    await hive.kill(c)
    const { startNode } = await import('../../helpers/mesh.ts')
    const again = await startNode('hive-again', {}, dir)
    try {
      assert.deepEqual(again.registry.entries().map(e => e.id).sort(), before)
      assert.equal(await again.components.has(digest as never), true)
    } finally {
      await again.stop()
    }
  })
})

describe('a device offline while an agent is published', () => {
  it('catches up when it connects again', async () => {
    const hive = await startHive(2)
    try {
      const [x, y] = hive.nodes as [HiveNode, HiveNode]
      const dir = y.dataDir
      await hive.kill(y)
      await x.registry.publish(await watAgent(agentWat(ECHO_BODY), { name: 'later', version: '1.0.0' }))
      const { startNode, connect } = await import('../../helpers/mesh.ts')
      const back = await startNode('back', {}, dir)
      try {
        await connect(back, x)
        await waitFor(() => back.registry.show('later') != null, { message: 'the returning device hears of the agent published while it was away', timeoutMs: 30_000 })
        assert.equal((await back.registry.resolve('later')).publisher, id(x))
      } finally {
        await back.stop()
      }
    } finally {
      await hive.stop()
    }
  })
})
