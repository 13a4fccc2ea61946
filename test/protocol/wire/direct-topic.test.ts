// A hive topic's direct twin (protocol/wire/direct-topic.ts): first against a stub of gossipsub
// (what is subscribed, which topic a message goes on, what a message on the twin becomes), then
// on four real nodes: a message on the twin reaches every member and none of them forwards it;
// with one member that takes no twins, the message goes on the topic and gossip forwards it.
// Last, on a hive of two: what the topic's validators refuse is refused on its twin too.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { directTwin, withDirectTwins } from '../../../protocol/wire/index.ts'
import { startMesh } from '../../helpers/mesh.ts'
import { encodeGossip, newTaskId, sha256Hex } from '../../../protocol/placement/index.ts'
import { startHive } from '../placement/fixture.ts'
import type { Announce } from '../../../protocol/placement/index.ts'
import type { TestHive } from '../placement/fixture.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { TwinPubSub } from '../../../protocol/wire/index.ts'
import type { Mesh } from '../../helpers/mesh.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

const A = '12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA'
const B = '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDwRyDuAuFGtqc5pnkb'

class StubPubSub extends EventTarget implements TwinPubSub {
  readonly subscribed = new Set<string>()
  readonly published: string[] = []
  readonly subscribers = new Map<string, string[]>()
  readonly scores = new Map<string, number>()
  readonly topicValidators = new Map<string, TopicValidatorFn>()
  subscribe (topic: string): void { this.subscribed.add(topic) }
  unsubscribe (topic: string): void { this.subscribed.delete(topic) }
  async publish (topic: string, _data: Uint8Array): Promise<void> { this.published.push(topic) }
  getSubscribers (topic: string): PeerId[] { return (this.subscribers.get(topic) ?? []).map(p => peerIdFromString(p)) }
  getScore (peer: string): number { return this.scores.get(peer) ?? 0 }
}

const signed = (topic: string, data: string): Message => ({
  type: 'signed', topic, data: new TextEncoder().encode(data), from: peerIdFromString(A), sequenceNumber: 1n, signature: new Uint8Array(64), key: peerIdFromString(A).publicKey!
})

describe('direct twins of a topic, against a stub of gossipsub', () => {
  it('subscribing a topic subscribes its twin; unsubscribing leaves both and takes the twin\'s validator away', () => {
    const stub = new StubPubSub()
    const pubsub = withDirectTwins(stub, () => [])
    pubsub.subscribe('t')
    assert.deepEqual([...stub.subscribed].sort(), ['t', directTwin('t')])
    assert.ok(stub.topicValidators.has(directTwin('t')))
    pubsub.unsubscribe('t')
    assert.deepEqual([...stub.subscribed], [])
    assert.equal(stub.topicValidators.has(directTwin('t')), false)
  })

  it('publishes on the twin only while every other member takes it and none is scored below 0', async () => {
    const stub = new StubPubSub()
    let others = [A, B]
    const pubsub = withDirectTwins(stub, () => others)
    pubsub.subscribe('t')
    stub.subscribers.set(directTwin('t'), [A])
    await pubsub.publish('t', new Uint8Array(1))
    stub.subscribers.set(directTwin('t'), [A, B])
    await pubsub.publish('t', new Uint8Array(1))
    stub.scores.set(B, -1)
    await pubsub.publish('t', new Uint8Array(1))
    others = [A]
    await pubsub.publish('t', new Uint8Array(1))
    // a topic not subscribed through the twins goes on as it is
    await pubsub.publish('u', new Uint8Array(1))
    assert.deepEqual(stub.published, ['t', directTwin('t'), 't', directTwin('t'), 'u'])
  })

  it('a message on the twin is checked by the topic\'s validator, handed to listeners as the topic\'s, and not forwarded', async () => {
    const stub = new StubPubSub()
    const pubsub = withDirectTwins(stub, () => [])
    const checked: string[] = []
    stub.topicValidators.set('t', (_from, m) => {
      checked.push(m.topic)
      return new TextDecoder().decode(m.data) === 'bad' ? TopicValidatorResult.Reject : TopicValidatorResult.Accept
    })
    pubsub.subscribe('t')
    const heard: Message[] = []
    pubsub.addEventListener('message', (e) => { heard.push((e as CustomEvent<Message>).detail) })
    const twin = stub.topicValidators.get(directTwin('t'))!
    assert.equal(await twin(peerIdFromString(B), signed(directTwin('t'), 'good')), TopicValidatorResult.Ignore)
    assert.equal(await twin(peerIdFromString(B), signed(directTwin('t'), 'bad')), TopicValidatorResult.Reject)
    assert.deepEqual(checked, ['t', 't'])
    assert.deepEqual(heard.map(m => [m.topic, new TextDecoder().decode(m.data)]), [['t', 'good']])
    assert.equal(heard[0]!.type === 'signed' && heard[0]!.from.toString(), A)
  })
})

describe('direct twins on four real nodes', () => {
  let mesh: Mesh
  const topic = 'hive-test/direct'
  const heard = new Map<string, string[]>()
  const forwarded = new Map<string, string[]>()
  let pubsubs: TwinPubSub[]

  before(async () => {
    mesh = await startMesh(4, { label: 'direct' })
    pubsubs = mesh.nodes.map((node) => {
      const raw = node.libp2p.services.pubsub
      // gossipsub forwards a message it accepted here; count what each node forwards on the topic and its twin
      const internals = raw as unknown as { forwardMessage: (id: string, msg: { topic: string, data?: Uint8Array }, ...rest: unknown[]) => void }
      const forward = internals.forwardMessage.bind(raw)
      internals.forwardMessage = (id, msg, ...rest) => {
        if (msg.topic.startsWith(topic)) forwarded.set(node.name, [...forwarded.get(node.name) ?? [], new TextDecoder().decode(msg.data)])
        forward(id, msg, ...rest)
      }
      raw.addEventListener('message', (e) => {
        if (e.detail.topic === topic) heard.set(node.name, [...heard.get(node.name) ?? [], new TextDecoder().decode(e.detail.data)])
      })
      return withDirectTwins(raw, () => mesh.nodes.filter(n => n !== node).map(n => n.peerId.toString()))
    })
    for (const pubsub of pubsubs) pubsub.subscribe(topic)
  })
  after(async () => { await mesh?.stop() })

  const everyoneTakesTwin = async (): Promise<void> => {
    await waitFor(() => mesh.nodes.every((node, i) => mesh.nodes.every(other => other === node || pubsubs[i]!.getSubscribers(directTwin(topic)).some(p => p.equals(other.peerId)))),
      { message: 'every node sees every other subscribed to the twin' })
  }

  it('in a hive where all are connected, a message reaches every other member once and none forwards it', async () => {
    await everyoneTakesTwin()
    await pubsubs[0]!.publish(topic, new TextEncoder().encode('one'))
    const rest = mesh.nodes.slice(1)
    await waitFor(() => rest.every(n => heard.get(n.name)?.includes('one') === true), { message: 'every other member hears the message' })
    for (const node of rest) assert.deepEqual(heard.get(node.name), ['one'], `${node.name} heard it once`)
    assert.equal([...forwarded.values()].flat().includes('one'), false, 'no node forwarded the message')
  })

  it('with a member that takes no twin (an older release), the message goes on the topic, is forwarded, and reaches it', async () => {
    const old = mesh.nodes[3]!
    old.libp2p.services.pubsub.unsubscribe(directTwin(topic))
    await waitFor(() => !pubsubs[0]!.getSubscribers(directTwin(topic)).some(p => p.equals(old.peerId)), { message: 'the author sees the older member leave the twin' })
    await pubsubs[0]!.publish(topic, new TextEncoder().encode('two'))
    await waitFor(() => mesh.nodes.slice(1).every(n => heard.get(n.name)?.includes('two') === true), { message: 'every other member, the older one too, hears the message' })
    await waitFor(() => [...forwarded.values()].flat().includes('two'), { message: 'a receiver forwards the message, as gossip does' })
    old.libp2p.services.pubsub.subscribe(directTwin(topic))
  })
})

describe('direct twins of a hive\'s topic, refusing what the topic refuses', () => {
  let hive: TestHive

  before(async () => { hive = await startHive(2) })
  after(async () => { await hive?.stop() })

  it('garbage and a forged announcement on the placement twin are dropped; the member keeps running and takes what follows', async () => {
    const [a, b] = hive.nodes as [HiveNode, HiveNode]
    const twin = directTwin(a.hive.topic('placement'))
    const announce = (candidates?: string[]): Announce => ({
      v: 1, t: 'announce', task: newTaskId(), submitter: a.peerId.toString(), agent: sha256Hex('x'), agentSize: 1, input: sha256Hex(''), inputSize: 0,
      requirements: { runtime: 'wasm-component', models: [] }, permissions: [], bidWindowMs: 1_000, ...(candidates != null ? { candidates } : {})
    })
    const stranger = A // a PeerId of no member
    const forged = announce([b.peerId.toString(), stranger])
    const fair = announce()
    await waitFor(() => a.libp2p.services.pubsub.getSubscribers(twin).some(p => p.equals(b.peerId)), { message: `${a.name} sees ${b.name} take the placement twin` })
    // what reaches the topic's listeners on b: only what the topic's validators accepted
    const delivered: Uint8Array[] = []
    const listen = (e: CustomEvent<{ topic: string, data: Uint8Array }>): void => { if (e.detail.topic === a.hive.topic('placement')) delivered.push(e.detail.data) }
    b.libp2p.services.pubsub.addEventListener('message', listen)
    // published straight on the twin, as a member running other code could
    await a.libp2p.services.pubsub.publish(twin, new Uint8Array([0xff, 0x00, 0x13]))
    await a.libp2p.services.pubsub.publish(twin, encodeGossip(forged))
    await a.libp2p.services.pubsub.publish(twin, encodeGossip(fair))
    // what follows from the same author arrives: what came before it did not get through
    await waitFor(() => b.placement.get(fair.task), { message: `${b.name} heard the fair announcement on the twin` })
    b.libp2p.services.pubsub.removeEventListener('message', listen)
    assert.equal(b.placement.get(forged.task), undefined, 'the forged announcement was dropped')
    assert.deepEqual(delivered.map(d => Buffer.from(d).toString('hex')), [Buffer.from(encodeGossip(fair)).toString('hex')], 'only the fair announcement reached the topic\'s listeners')
    assert.equal(b.libp2p.status, 'started')
  })
})
