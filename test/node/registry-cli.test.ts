// The registry's user surfaces on two real nodes: `agent publish|list|show|yank`, `run NAME@VERSION`,
// tools with parameters (checked before anything is placed, handed to the agent as its input),
// and `agent export --oci` / `agent import`, with skopeo, an independent OCI tool, reading and
// copying the exported layout and the copy imported back with its digest checked.

import assert from 'node:assert/strict'
import { readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { main } from '../../node/cli.ts'
import { dataPaths } from '../../node/config.ts'
import { readOciLayout } from '../../node/oci.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { skopeo, skopeoSkip } from '../helpers/skopeo.ts'
import { ECHO_BODY, agentWat, watAgent } from '../sandbox/fixtures.ts'
import { startHive } from '../protocol/placement/fixture.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { TestHive } from '../protocol/placement/fixture.ts'

async function cli (...argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(argv, { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

const SEARCH = {
  name: 'search',
  description: 'finds notes',
  parameters: {
    type: 'object',
    properties: { q: { type: 'string', minLength: 1 }, limit: { type: 'integer', minimum: 1, maximum: 50 }, exact: { type: 'boolean' } },
    required: ['q'],
    additionalProperties: false
  }
}

const skipOci = await skopeoSkip()

describe('hive-node agent publish, list, show, yank, export, import and run by name', () => {
  let hive: TestHive
  let a: HiveNode
  let b: HiveNode
  let files: string
  let notesFile: string
  let notes: Uint8Array

  before(async () => {
    hive = await startHive(2)
    ;[a, b] = hive.nodes as [HiveNode, HiveNode]
    files = await makeTempDir('hive-registry-cli-')
    notes = await watAgent(agentWat(ECHO_BODY), { name: 'notes', version: '0.1.0', description: 'keeps notes', tools: [SEARCH] })
    notesFile = join(files, 'notes.wasm')
    await writeFile(notesFile, notes)
  })

  after(async () => {
    await hive.stop()
    await rm(files, { recursive: true, force: true })
  })

  it('publishes on one device; the other lists it, shows every version with its publisher, and runs it by name', async () => {
    const published = await cli('--data', a.dataDir, 'agent', 'publish', notesFile, '--tag', 'latest')
    assert.equal(published.code, 0, published.err)
    assert.match(published.out, /^published notes@0\.1\.0 \(digest [0-9a-f]{64}, .*\) signed by hive-0; tags: latest/)
    await new Promise<void>((resolve, reject) => {
      const off = b.registry.on('entry', (e) => { if (e.name === 'notes') { off(); resolve() } })
      if (b.registry.show('notes') != null) { off(); resolve() }
      setTimeout(() => { off(); reject(new Error('B never heard of notes')) }, 30_000)
    })
    const list = await cli('--data', b.dataDir, 'agent', 'list')
    assert.equal(list.code, 0, list.err)
    assert.match(list.out, /^NAME +LATEST +VERSIONS +PUBLISHED BY +DESCRIPTION\nnotes +0\.1\.0 +1 +hive-0 +keeps notes/)
    const show = await cli('--data', b.dataDir, 'agent', 'show', 'notes')
    assert.equal(show.code, 0, show.err)
    assert.match(show.out, /notes@0\.1\.0 \(latest\)\n {2}digest +[0-9a-f]{64}\n.*\n {2}published +.* by hive-0 \(12D3Koo/)
    assert.match(show.out, / {2}permissions +\(none\)/)
    assert.match(show.out, / {2}tool +search\(q, exact, limit\): finds notes/)

    const ran = await cli('--data', b.dataDir, 'run', 'notes@0.1.0', '--input', 'by name', '--json')
    assert.equal(ran.code, 0, ran.err)
    assert.equal((JSON.parse(ran.out) as { output: string }).output, 'by name')
  })

  it('runs a tool with parameters: checked against its schema before placement, received by the agent as its input', async () => {
    const ran = await cli('--data', b.dataDir, 'run', 'notes', '--tool', 'search', '--param', 'q=milk', '--param', 'limit=3', '--param', 'exact=true', '--json')
    assert.equal(ran.code, 0, ran.err)
    // the echo agent answers with what it received
    assert.deepEqual(JSON.parse((JSON.parse(ran.out) as { output: string }).output), { tool: 'search', params: { q: 'milk', limit: 3, exact: true } })
    const withInput = await cli('--data', b.dataDir, 'run', notesFile, '--tool', 'search', '--param', 'q=x', '--input', 'context text', '--json')
    assert.equal(withInput.code, 0, withInput.err)
    assert.deepEqual(JSON.parse((JSON.parse(withInput.out) as { output: string }).output), { tool: 'search', params: { q: 'x' }, input: 'context text' })

    const tasksBefore = b.placement.list({ limit: 1000 }).length
    const bad = await cli('--data', b.dataDir, 'run', 'notes@0.1.0', '--tool', 'search', '--param', 'limit=0', '--param', 'colour=red')
    assert.equal(bad.code, 1)
    assert.match(bad.err, /ToolParamsInvalid: the parameters of notes's tool "search" do not match its schema: .*q: .*limit: .*>=1/)
    const unknown = await cli('--data', b.dataDir, 'run', 'notes@0.1.0', '--tool', 'delete-all')
    assert.equal(unknown.code, 1)
    assert.match(unknown.err, /ToolNotFound: agent notes declares no tool "delete-all"; its tools are search/)
    // the API checks as well, for any client
    const token = (await readFile(dataPaths(b.dataDir).token, 'utf8')).trim()
    const response = await fetch(`${b.apiUrl ?? ''}/task`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'notes@0.1.0', tool: 'search', params: { q: 7 } })
    })
    assert.equal(response.status, 400)
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'ToolParamsInvalid')
    assert.equal(b.placement.list({ limit: 1000 }).length, tasksBefore, 'nothing was placed')
    assert.equal((await cli('--data', b.dataDir, 'run', 'notes', '--param', 'q=1', '--input', 'x')).code, 2)
  })

  it('refuses a second publish of the version with other bytes, and says what to do', async () => {
    const other = join(files, 'other.wasm')
    await writeFile(other, await watAgent(agentWat(ECHO_BODY), { name: 'notes', version: '0.1.0', description: 'changed' }))
    const again = await cli('--data', b.dataDir, 'agent', 'publish', other)
    assert.equal(again.code, 1)
    assert.match(again.err, /error: notes@0\.1\.0 is already published with other bytes .*raise the version in the manifest/)
    const missing = await cli('--data', b.dataDir, 'run', 'nothing@1.0.0', '--input', 'x')
    assert.equal(missing.code, 1)
    assert.match(missing.err, /AgentNotPublished: no agent named "nothing" is published in this hive/)
  })

  it('exports an OCI image layout that skopeo reads and copies; the copy imports back with its digest checked', { skip: skipOci }, async () => {
    const dir = join(files, 'oci')
    const exported = await cli('--data', b.dataDir, 'agent', 'export', 'notes@0.1.0', '--oci', dir, '--json')
    assert.equal(exported.code, 0, exported.err)
    const raw = await skopeo(['inspect', '--raw', `oci:${dir}:0.1.0`])
    assert.equal(raw.code, 0, raw.stderr)
    const manifest = JSON.parse(raw.stdout) as { mediaType: string, config: { mediaType: string }, layers: Array<{ mediaType: string, digest: string, size: number }>, annotations: Record<string, string> }
    assert.equal(manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json')
    assert.equal(manifest.config.mediaType, 'application/vnd.wasm.config.v0+json')
    assert.deepEqual(manifest.layers.map(l => [l.mediaType, l.size]), [['application/wasm', notes.byteLength]])
    const digest = (await a.registry.resolve('notes@0.1.0')).digest
    assert.equal(manifest.layers[0]?.digest, `sha256:${digest}`)
    assert.equal(manifest.annotations['org.opencontainers.image.title'], 'notes')
    assert.equal(manifest.annotations['org.opencontainers.image.version'], '0.1.0')
    assert.deepEqual((JSON.parse(manifest.annotations['dev.hive-node.agent.manifest'] ?? '{}') as { tools: unknown[] }).tools.length, 1)
    const config = await skopeo(['inspect', '--raw', '--config', `oci:${dir}:0.1.0`])
    assert.equal(config.code, 0, config.stderr)
    assert.deepEqual((JSON.parse(config.stdout) as { layerDigests: string[] }).layerDigests, [`sha256:${digest}`])

    // skopeo copies it (checking every blob's digest as it goes); the copy imports back
    const copy = join(files, 'oci-copy')
    const copied = await skopeo(['copy', `oci:${dir}:0.1.0`, `oci:${copy}:0.1.0`])
    assert.equal(copied.code, 0, copied.stderr)
    const read = await readOciLayout(copy)
    assert.equal(read.digest, digest)
    assert.deepEqual(read.bytes, notes)
    const imported = await cli('--data', a.dataDir, 'agent', 'import', copy, '--json')
    assert.equal(imported.code, 0, imported.err)
    assert.equal((JSON.parse(imported.out) as { digest: string }).digest, digest)
    // into a device of another hive, which never heard of it: published there, same digest, runs by name
    const lone = await startNode('lone')
    try {
      const there = await cli('--data', lone.dataDir, 'agent', 'import', `${copy}:0.1.0`, '--tag', 'latest', '--json')
      assert.equal(there.code, 0, there.err)
      assert.deepEqual([(JSON.parse(there.out) as { digest: string, publisher: string }).digest, (JSON.parse(there.out) as { publisher: string }).publisher], [digest, lone.peerId.toString()])
      const ran = await cli('--data', lone.dataDir, 'run', 'notes', '--input', 'imported', '--json')
      assert.equal(ran.code, 0, ran.err)
      assert.equal((JSON.parse(ran.out) as { output: string }).output, 'imported')
    } finally {
      await lone.stop()
      await rm(lone.dataDir, { recursive: true, force: true })
    }

    // a layout whose component was altered is refused, as skopeo refuses to copy it
    const layer = join(dir, 'blobs', 'sha256', digest)
    const altered = new Uint8Array(notes)
    altered[altered.length - 1] = (altered[altered.length - 1] ?? 0) ^ 1
    await writeFile(layer, altered)
    const refused = await cli('--data', a.dataDir, 'agent', 'import', dir)
    assert.equal(refused.code, 1)
    assert.match(refused.err, /error: the component layer has digest sha256:[0-9a-f]{64}, not the sha256:[0-9a-f]{64} its descriptor names/)
    assert.notEqual((await skopeo(['copy', `oci:${dir}:0.1.0`, `oci:${join(files, 'oci-copy-2')}:0.1.0`])).code, 0)
    assert.ok((await readdir(join(copy, 'blobs', 'sha256'))).includes(digest))
  })

  it('yanks a version: run by name is refused, the version is still shown', async () => {
    const yanked = await cli('--data', a.dataDir, 'agent', 'yank', 'notes@0.1.0', '--reason', 'replaced')
    assert.equal(yanked.code, 0, yanked.err)
    const run = await cli('--data', a.dataDir, 'run', 'notes@0.1.0', '--input', 'x')
    assert.equal(run.code, 1)
    assert.match(run.err, /AgentYanked/)
    const show = await cli('--data', a.dataDir, 'agent', 'show', 'notes@0.1.0')
    assert.match(show.out, /notes@0\.1\.0 +YANKED\n[\s\S]* {2}yanked +.* by 12D3Koo\w+: replaced/)
  })
})
