// Direct links (protocol/wire/direct-links.ts): a topic's direct twin carried on one stream from
// each member to each other member. On three real nodes with links of their own (a test protocol
// id, beside the one each node serves): once every other member has a link, a message goes on
// the links and not on gossip, reaches each member once, from its author, through the topic's
// validators; a message those refuse is dropped, and a link that brings too many is closed and
// its author goes back to gossip; a member
// that serves no links (an older release) keeps the twin on gossip. Then what a peer may send:
// garbage on a link hangs up on it and the node keeps running. Last, a hive of three: placed
// tasks go with every member linked.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { DIRECT_MESSAGE_BYTES, DirectLinks, MAX_REFUSED_PER_LINK, dialFramed, directTwin, encodeFrame, withDirectTwins } from '../../../protocol/wire/index.ts'
import { startMesh } from '../../helpers/mesh.ts'
import { waitFor } from '../../helpers/wait.ts'
import { echoAgent, startHive } from '../placement/fixture.ts'
import type { TwinPubSub } from '../../../protocol/wire/index.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { TestHive } from '../placement/fixture.ts'
import type { Message } from '@libp2p/gossipsub'

const PROTOCOL = '/hive/direct-gossip-test/1.0.0'
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

describe('direct links on three real nodes', () => {
  let mesh: Mesh
  const topic = 'hive-test/links'
  /** What each node's listeners heard on the topic: [author, data]. */
  const heard = new Map<string, Array<[string, string]>>()
  /** What each node handed gossipsub to publish on the topic or its twin. */
  const gossiped = new Map<string, string[]>()
  let links: DirectLinks[]
  let pubsubs: TwinPubSub[]

  before(async () => {
    mesh = await startMesh(3, { label: 'links' })
    links = mesh.nodes.map(node => new DirectLinks({ host: node.libp2p, log: { debug: () => {}, warn: () => {} } }, { protocol: PROTOCOL, noLinkMs: 100 }))
    pubsubs = mesh.nodes.map((node, i) => {
      const raw = node.libp2p.services.pubsub
      const publish = raw.publish.bind(raw)
      raw.publish = async (t, data, ...rest) => {
        if (t.startsWith(topic) && data != null) gossiped.set(node.name, [...gossiped.get(node.name) ?? [], text(data)])
        return publish(t, data, ...rest)
      }
      raw.addEventListener('message', (e) => {
        const m = e.detail
        if (m.topic === topic && m.type === 'signed') heard.set(node.name, [...heard.get(node.name) ?? [], [m.from.toString(), text(m.data)]])
      })
      // the topic's validator: 'bad' is refused
      raw.topicValidators.set(topic, (_from, m: Message) => text(m.data).startsWith('bad') ? TopicValidatorResult.Reject : TopicValidatorResult.Accept)
      return withDirectTwins(raw, () => mesh.nodes.filter(n => n !== node).map(n => n.peerId.toString()), links[i])
    })
    // the third node serves no links for now: an older release
    await links[0]!.start()
    await links[1]!.start()
    for (const pubsub of pubsubs) pubsub.subscribe(topic)
    await waitFor(() => mesh.nodes.every((node, i) => mesh.nodes.every(other => other === node || pubsubs[i]!.getSubscribers(directTwin(topic)).some(p => p.equals(other.peerId)))),
      { message: 'every node sees every other subscribed to the twin' })
  })
  after(async () => {
    for (const l of links ?? []) await l.stop()
    await mesh?.stop()
  })

  const names = (list: string[]): string[] => list.map(p => mesh.nodes.find(n => n.peerId.toString() === p)!.name).sort()
  const hears = async (data: string, by: number[]): Promise<void> => {
    await waitFor(() => by.every(i => heard.get(mesh.nodes[i]!.name)?.some(([, d]) => d === data) === true), { message: `nodes ${by.join(', ')} hear ${data}` })
  }

  it('with a member that serves no links, the twin stays on gossip and every member hears it', async () => {
    const [a, b, c] = mesh.nodes
    await pubsubs[0]!.publish(topic, bytes('one'))
    await hears('one', [1, 2])
    // the author tried links: to b it has one, c (an older release) serves none
    await waitFor(() => links[0]!.linked().length === 1, { message: `${a!.name} links to ${b!.name}` })
    assert.deepEqual(names(links[0]!.linked()), [b!.name])
    await pubsubs[0]!.publish(topic, bytes('two'))
    await hears('two', [1, 2])
    assert.deepEqual(gossiped.get(a!.name), ['one', 'two'], 'both went on gossip')
    assert.ok(!names(links[0]!.linked()).includes(c!.name))
  })

  it('once every other member has a link, a message goes on the links, not gossip, and each hears it once from its author', async () => {
    const [a, b, c] = mesh.nodes
    await links[2]!.start()
    // a message on the twin opens the link to c, which serves links now
    let probe = 0
    await waitFor(async () => {
      await pubsubs[0]!.publish(topic, bytes(`probe ${probe++}`))
      return links[0]!.linked().length === 2
    }, { message: `${a!.name} links to both others` })
    const before = gossiped.get(a!.name)!.length
    await pubsubs[0]!.publish(topic, bytes('four'))
    await hears('four', [1, 2])
    assert.equal(gossiped.get(a!.name)!.length, before, 'the fourth went on links only')
    for (const node of [b!, c!]) {
      const got = heard.get(node.name)!.filter(([, d]) => d === 'four')
      assert.deepEqual(got, [[a!.peerId.toString(), 'four']], `${node.name} heard it once, from ${a!.name}`)
    }
  })

  it('a message larger than a link carries goes on gossip, and the links stay', async () => {
    const [a] = mesh.nodes
    const before = gossiped.get(a!.name)!.length
    const large = new Uint8Array(DIRECT_MESSAGE_BYTES + 1).fill(0x61)
    // gossipsub applies its own bound to it
    await pubsubs[0]!.publish(topic, large).catch(() => {})
    assert.equal(gossiped.get(a!.name)!.length, before + 1, 'it went to gossipsub')
    assert.equal(links[0]!.linked().length, 2, 'no link was dropped')
    await pubsubs[0]!.publish(topic, bytes('after large'))
    await hears('after large', [1, 2])
    assert.equal(gossiped.get(a!.name)!.length, before + 1, 'the next went on links')
  })

  it('a message the topic\'s validators refuse reaches no listener and the link stays; a link that brings too many is closed and its author goes back to gossip', async () => {
    const [a] = mesh.nodes
    const others = mesh.nodes.slice(1).map(n => n.peerId.toString())
    assert.equal(links[0]!.ready(others), true)
    const before = gossiped.get(a!.name)!.length
    await pubsubs[0]!.publish(topic, bytes('bad five'))
    await pubsubs[0]!.publish(topic, bytes('six'))
    await hears('six', [1, 2])
    assert.equal(gossiped.get(a!.name)!.length, before, 'both went on links')
    assert.equal(links[0]!.ready(others), true, 'the links stay')
    for (let i = 1; i < MAX_REFUSED_PER_LINK; i++) await pubsubs[0]!.publish(topic, bytes(`bad ${i}`))
    await waitFor(() => links[0]!.linked().length === 0, { message: `${a!.name} sees both links closed` })
    await pubsubs[0]!.publish(topic, bytes('seven'))
    await hears('seven', [1, 2])
    assert.equal(gossiped.get(a!.name)!.at(-1), 'seven', 'the message after went on gossip')
    assert.equal([...heard.values()].flat().some(([, d]) => d.startsWith('bad')), false, 'no listener heard a refused message')
  })

  it('garbage on a link hangs up on its sender; the node keeps running and hears the next message', async () => {
    const [a, b] = mesh.nodes
    const stream = await dialFramed(a!.libp2p, b!.peerId, PROTOCOL)
    await stream.writeRaw(new Uint8Array([0x05, 0xff, 0xff, 0xff, 0xff, 0xff]))
    const hungUp = (): boolean => b!.libp2p.getConnections(a!.peerId).length === 0 && a!.libp2p.getConnections(b!.peerId).length === 0
    await waitFor(hungUp, { message: `${b!.name} hangs up on ${a!.name}` })
    // a frame too large is refused before its body is read
    const again = await dialFramed(a!.libp2p, b!.peerId, PROTOCOL, { maxMessageBytes: 4 * 1024 * 1024 })
    // not waited on: the stream may end before it drains
    void again.writeRaw(encodeFrame({ topic, data: new Uint8Array(2 * 1024 * 1024) }, 4 * 1024 * 1024)).catch(() => {})
    await waitFor(hungUp, { message: `${b!.name} hangs up on ${a!.name} again` })
    assert.equal(b!.libp2p.status, 'started')
    await pubsubs[2]!.publish(topic, bytes('eight'))
    await hears('eight', [1])
  })
})

describe('direct links to a member that reads too slowly', () => {
  let mesh: Mesh
  const topic = 'hive-test/slow'
  let links: DirectLinks[]
  let pubsubs: TwinPubSub[]
  const gossiped: number[] = []
  const heard: string[] = []
  let release: () => void = () => {}
  const held = new Promise<void>((resolve) => { release = resolve })

  before(async () => {
    mesh = await startMesh(2, { label: 'slow' })
    links = mesh.nodes.map(node => new DirectLinks({ host: node.libp2p, log: { debug: () => {}, warn: () => {} } }, { protocol: PROTOCOL }))
    pubsubs = mesh.nodes.map((node, i) => {
      const raw = node.libp2p.services.pubsub
      const publish = raw.publish.bind(raw)
      raw.publish = async (t, data, ...rest) => {
        if (t.startsWith(topic) && data != null) gossiped.push(data.byteLength)
        return publish(t, data, ...rest)
      }
      raw.addEventListener('message', (e) => { if (e.detail.topic === topic) heard.push(text(e.detail.data.subarray(0, 4))) })
      // the second node takes its time over a message that says so, until released
      if (i === 1) raw.topicValidators.set(topic, async (_from, m: Message) => { if (text(m.data.subarray(0, 4)) === 'hold') await held; return TopicValidatorResult.Accept })
      return withDirectTwins(raw, () => mesh.nodes.filter(n => n !== node).map(n => n.peerId.toString()), links[i])
    })
    for (const l of links) await l.start()
    for (const pubsub of pubsubs) pubsub.subscribe(topic)
    await waitFor(() => pubsubs[0]!.getSubscribers(directTwin(topic)).length === 1, { message: 'the author sees the other take the twin' })
  })
  after(async () => {
    release()
    for (const l of links ?? []) await l.stop()
    await mesh?.stop()
  })

  it('a message goes on gossip once the link holds too much unsent, and the link is closed', async () => {
    const [a, b] = mesh.nodes
    let probe = 0
    await waitFor(async () => {
      await pubsubs[0]!.publish(topic, bytes(`prob${probe++}`))
      return links[0]!.ready([b!.peerId.toString()])
    }, { message: `${a!.name} links to ${b!.name}` })
    const before = gossiped.length
    await pubsubs[0]!.publish(topic, bytes('hold'))
    // each as large as a link carries: the link fills while the member holds the first
    const large = new Uint8Array(DIRECT_MESSAGE_BYTES).fill(0x62)
    let sent = 0
    while (gossiped.length === before && sent < 64) {
      await pubsubs[0]!.publish(topic, large).catch(() => {})
      sent++
    }
    assert.equal(gossiped.length, before + 1, 'a message went on gossip')
    assert.ok(sent > 1, `the link took ${sent - 1} large messages first`)
    assert.equal(links[0]!.ready([b!.peerId.toString()]), false, 'the link is no longer used')
    release()
    await waitFor(() => heard.includes('hold'), { message: `${b!.name} hears the held message once released` })
  })
})

describe('direct links in a hive', () => {
  let hive: TestHive

  before(async () => { hive = await startHive(3) })
  after(async () => { await hive?.stop() })

  it('placed tasks link every member to every other, and go on', async () => {
    const agent = await echoAgent('links-echo')
    for (let i = 0; i < 3; i++) {
      const node = hive.nodes[i]!
      const task = await node.placement.submit({ agent, input: `linked ${i}` })
      const done = await node.placement.wait(task.id)
      assert.equal(done.status, 'done')
      assert.equal(done.result?.output, `linked ${i}`)
    }
    for (const node of hive.nodes) {
      const others = hive.nodes.filter(n => n !== node).map(n => n.peerId.toString()).sort()
      await waitFor(() => node.directLinks.linked().sort().join() === others.join(), { message: `${node.name} has a link to every other member` })
    }
    // with every member linked, a task is placed over the links as it was over gossip
    const task = await hive.nodes[1]!.placement.submit({ agent, input: 'over links' })
    assert.equal((await hive.nodes[1]!.placement.wait(task.id)).result?.output, 'over links')
  })
})
