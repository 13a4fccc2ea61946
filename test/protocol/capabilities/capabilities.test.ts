import assert from 'node:assert/strict'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { encode as cborEncode } from 'cborg'
import {
  CapabilityMessage, createCapabilities, createDeviceProbe, decodeCapabilityMessage, readOllamaModels, readPower
} from '../../../protocol/capabilities/index.ts'
import { makeTempDir, startMesh } from '../../helpers/mesh.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import type { Capabilities, CapabilityEntry } from '../../../protocol/capabilities/index.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'

async function supply (root: string, name: string, files: Record<string, string>): Promise<void> {
  await mkdir(join(root, name), { recursive: true })
  for (const [file, text] of Object.entries(files)) await writeFile(join(root, name, file), text + '\n')
}

describe('power state from /sys/class/power_supply', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('is unknown where the class is missing, and AC where no system battery exists', async () => {
    const root = await makeTempDir('hive-power-')
    dirs.push(root)
    assert.deepEqual(await readPower(join(root, 'absent')), { state: 'unknown' })
    assert.deepEqual(await readPower(root), { state: 'ac' })
    // a wireless mouse's battery is not the device's
    await supply(root, 'hidpp_battery_0', { type: 'Battery', scope: 'Device', status: 'Discharging', capacity: '40' })
    assert.deepEqual(await readPower(root), { state: 'ac' })
  })

  it('reads a discharging laptop as on battery, and AC once mains is online', async () => {
    const root = await makeTempDir('hive-power-')
    dirs.push(root)
    await supply(root, 'AC', { type: 'Mains', online: '0' })
    await supply(root, 'BAT0', { type: 'Battery', status: 'Discharging', capacity: '37' })
    assert.deepEqual(await readPower(root), { state: 'battery', percent: 37 })
    await supply(root, 'AC', { type: 'Mains', online: '1' })
    await supply(root, 'BAT0', { type: 'Battery', status: 'Charging', capacity: '38' })
    assert.deepEqual(await readPower(root), { state: 'ac', percent: 38 })
  })
})

describe('local LLM models from Ollama', () => {
  let server: Server
  let url: string
  let reply: (res: import('node:http').ServerResponse) => void = (res) => { res.end('{}') }

  before(async () => {
    server = createServer((req, res) => {
      if (req.url !== '/api/tags') { res.statusCode = 404; res.end(); return }
      reply(res)
    })
    await new Promise<void>(resolve => { server.listen(0, '127.0.0.1', resolve) })
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(async () => {
    server.closeAllConnections()
    await new Promise(resolve => { server.close(resolve) })
  })

  it('lists the models the API names', async () => {
    reply = (res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ models: [{ name: 'llama3.2:3b', size: 1 }, { name: 'qwen2.5:7b' }] })) }
    assert.deepEqual(await readOllamaModels(url), ['llama3.2:3b', 'qwen2.5:7b'])
    const probe = createDeviceProbe({ ollamaUrl: url, powerSupplyDir: '/nonexistent' })
    const reading = await probe.read()
    assert.deepEqual(reading.models, ['llama3.2:3b', 'qwen2.5:7b'])
    assert.equal(reading.power.state, 'unknown')
    assert.ok(reading.cores >= 1 && reading.totalMemory > 0)
  })

  it('gives none when the answer is not Ollama\'s, when it does not come in time, or nothing listens', async () => {
    reply = (res) => { res.end('not json') }
    assert.deepEqual(await readOllamaModels(url), [])
    reply = (res) => { res.end(JSON.stringify({ models: 'x' })) }
    assert.deepEqual(await readOllamaModels(url), [])
    reply = () => { /* never answers */ }
    assert.deepEqual(await readOllamaModels(url, { timeoutMs: 100 }), [])
    const closed = createServer()
    await new Promise<void>(resolve => { closed.listen(0, '127.0.0.1', resolve) })
    const port = (closed.address() as AddressInfo).port
    await new Promise(resolve => { closed.close(resolve) })
    assert.deepEqual(await readOllamaModels(`http://127.0.0.1:${port}`), [])
  })
})

describe('capability gossip between three nodes', () => {
  let mesh: Mesh
  const services: Capabilities[] = []

  before(async () => {
    mesh = await startMesh(3, { label: 'caps' })
    for (const [i, node] of mesh.nodes.entries()) {
      services.push(createCapabilities({
        name: node.name,
        version: '0.1.0',
        intervalMs: 300,
        expireMs: 1_000,
        ollamaUrl: null,
        runtimes: () => ['wasm-component'],
        // the third node is set up as a busy laptop on battery, as a user could configure it
        ...(i === 2 ? { overrides: { power: 'battery', load: 12 } } : {})
      }, { self: node.peerId.toString(), pubsub: node.libp2p.services.pubsub, log: node.log }))
    }
    await Promise.all(services.map(async s => { await s.start() }))
  })

  after(async () => {
    await Promise.all(services.map(async s => { await s.stop() }))
    await mesh.stop()
  })

  it('every node sees every node, with what each reported', async () => {
    const ids = mesh.nodes.map(n => n.peerId.toString()).sort()
    for (const s of services) {
      await waitFor(() => s.view().map(e => e.peerId).join() === ids.join(), { message: 'a full view' })
    }
    const busy = mesh.nodes[2]!.peerId.toString()
    const seen = services[0]!.get(busy)
    assert.ok(seen != null)
    assert.equal(seen.caps.name, 'caps-2')
    assert.deepEqual(seen.caps.power, { state: 'battery' })
    assert.equal(seen.caps.load, 12)
    assert.deepEqual([...seen.caps.overridden].sort(), ['load', 'power'])
    assert.deepEqual(seen.caps.runtimes, ['wasm-component'])
    assert.deepEqual(seen.caps.models, [])
    const idle = services[1]!.get(mesh.nodes[0]!.peerId.toString())
    assert.ok(idle != null)
    assert.deepEqual(idle.caps.overridden, [])
  })

  it('each node\'s own report names the members it is connected to: the edges of the hive\'s map', async () => {
    const ids = mesh.nodes.map(n => n.peerId.toString())
    const viewer = mesh.nodes[0]!.capabilities
    await waitFor(() => ids.every(id => viewer.get(id)?.caps.links?.join() === ids.filter(other => other !== id).sort().join()),
      { message: 'every report links the two other members', timeoutMs: 30_000 })
  })

  it('a change is published at once, not at the next round', async () => {
    const target = mesh.nodes[1]!.peerId.toString()
    const changed = eventPromise<CustomEvent<CapabilityEntry>>(services[0]!, 'change', {
      filter: e => e.detail.peerId === target && e.detail.caps.running === 3 && e.detail.caps.models.includes('phi4'),
      message: 'the new report'
    })
    services[1]!.setRunning(3)
    services[1]!.setOverrides({ models: ['phi4'] })
    await changed
    assert.throws(() => { services[1]!.setOverrides({ power: 'solar' } as never) }, { name: 'InvalidCapabilityOverride' })
  })

  it('malformed reports are rejected and the node keeps listening', async () => {
    const sender = mesh.nodes[2]!.libp2p.services.pubsub
    const topic = services[2]!.topic
    const before = services[0]!.get(mesh.nodes[2]!.peerId.toString())!.seq
    const good = decodeCapabilityMessage(cborEncode(CapabilityMessage.parse({ v: 1, seq: before, time: Date.now(), caps: await services[2]!.local() })))
    await sender.publish(topic, new Uint8Array([0xff, 0x00, 0x13]))
    await sender.publish(topic, cborEncode({ ...good, seq: before + 2e9, caps: { ...good.caps, cores: 0 } }))
    await sender.publish(topic, cborEncode({ ...good, seq: before + 3e9, caps: { ...good.caps, name: 'x'.repeat(5000) } }))
    // a valid report after the garbage still lands: the node kept listening. Its sequence number
    // is below the malformed ones', so it would be ignored had either of those been taken.
    await sender.publish(topic, cborEncode({ ...good, seq: before + 1e9, caps: { ...good.caps, name: 'caps-2-after' } }))
    await waitFor(() => services[0]!.get(mesh.nodes[2]!.peerId.toString())?.caps.name === 'caps-2-after', { message: 'the valid report' })
    const entry = services[0]!.get(mesh.nodes[2]!.peerId.toString())!
    assert.equal(entry.seq, before + 1e9, 'none of the malformed reports was taken')
    assert.ok(mesh.nodes[0]!.running)
  })

  it('a device that goes quiet leaves the view', async () => {
    const quiet = mesh.nodes[1]!.peerId.toString()
    const gone = eventPromise<CustomEvent<string>>(services[0]!, 'expire', {
      filter: (e) => e.detail === quiet,
      message: 'the quiet device expires'
    })
    // expiry is checked when the view is read
    const poll = setInterval(() => { services[0]!.view() }, 100)
    try {
      await services[1]!.stop()
      await gone
    } finally {
      clearInterval(poll)
    }
    assert.equal(services[0]!.isLive(quiet), false)
    // every other node expires it too, on its own clock
    await waitFor(() => !services[2]!.view().some(e => e.peerId === quiet), { message: 'the third node expires the quiet device' })
  })
})

describe('the report interval grows with the hive', () => {
  it('is the floor in a small hive, 300 ms a member past it, and bounded', () => {
    const at = (members: number): number => createCapabilities({ name: 'n', version: '0.1.0', ollamaUrl: null }, {
      self: 'self', pubsub: {} as never, members: () => members
    }).reportInterval()
    assert.equal(at(2), 3_000)
    assert.equal(at(10), 3_000)
    assert.equal(at(50), 15_000)
    assert.equal(at(100_000), 120_000)
  })

  it('rejects a report that announces an interval out of bounds', async () => {
    const caps = await createCapabilities({ name: 'n', version: '0.1.0', ollamaUrl: null }, { self: 'self', pubsub: {} as never }).local()
    const message = { v: 1, seq: 1, time: Date.now(), caps }
    assert.equal(decodeCapabilityMessage(cborEncode({ ...message, every: 15_000 })).every, 15_000)
    assert.throws(() => decodeCapabilityMessage(cborEncode({ ...message, every: 10 })), /every/)
    assert.throws(() => decodeCapabilityMessage(cborEncode({ ...message, every: 3_600_000 })), /every/)
  })

  it('a device in a large hive announces its longer interval, and others keep it live for 3.5 times that', async () => {
    const mesh = await startMesh(2, { label: 'interval' })
    const services: Capabilities[] = []
    try {
      // the first counts a hive of 50: 40 ms a member makes 2 s, past its 300 ms floor
      services.push(createCapabilities({ name: 'large', version: '0.1.0', intervalMs: 300, perMemberMs: 40, ollamaUrl: null },
        { self: mesh.nodes[0]!.peerId.toString(), pubsub: mesh.nodes[0]!.libp2p.services.pubsub, members: () => 50 }))
      services.push(createCapabilities({ name: 'listener', version: '0.1.0', intervalMs: 300, expireMs: 1_000, ollamaUrl: null },
        { self: mesh.nodes[1]!.peerId.toString(), pubsub: mesh.nodes[1]!.libp2p.services.pubsub }))
      await Promise.all(services.map(async s => { await s.start() }))
      const large = mesh.nodes[0]!.peerId.toString()
      const heard = await waitFor(() => services[1]!.get(large), { timeoutMs: 30_000, message: 'the listener hears the large hive\'s device' })
      assert.equal(heard.every, 2_000)
      // past the listener's own expiry (1 s) since the last report, the device is still live
      await waitFor(() => Date.now() - services[1]!.get(large)!.receivedAt > 1_500 ? true : undefined, { timeoutMs: 30_000, message: 'a quiet spell longer than the listener\'s own expiry' })
      assert.equal(services[1]!.isLive(large), true)
      // and once it stops, it still leaves the view
      const gone = eventPromise<CustomEvent<string>>(services[1]!, 'expire', { filter: (e) => e.detail === large, timeoutMs: 30_000, message: 'the stopped device expires' })
      const poll = setInterval(() => { services[1]!.view() }, 200)
      try {
        await services[0]!.stop()
        await gone
      } finally {
        clearInterval(poll)
      }
    } finally {
      await Promise.all(services.map(async s => { await s.stop() }))
      await mesh.stop()
    }
  })
})

describe('the system\'s own figures', () => {
  it('reuses the system\'s figures for systemRefreshMs, then reads them again', async () => {
    let reads = 0
    const readSystem = (): { cores: number, load: number, freeMemory: number, totalMemory: number } => ({ cores: 4, load: 0.5, freeMemory: 1000 + ++reads, totalMemory: 4096 })
    const probe = createDeviceProbe({ ollamaUrl: null, powerSupplyDir: '/nonexistent', systemRefreshMs: 60_000, readSystem })
    assert.equal((await probe.read()).freeMemory, 1001)
    assert.equal((await probe.read()).freeMemory, 1001)
    assert.equal(reads, 1)
    const fresh = createDeviceProbe({ ollamaUrl: null, powerSupplyDir: '/nonexistent', systemRefreshMs: 0, readSystem })
    assert.equal((await fresh.read()).freeMemory, 1002)
    assert.equal((await fresh.read()).freeMemory, 1003)
  })
})
