import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { TopicValidatorResult } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { joinTopic } from '../../../protocol/wire/index.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'

const PEER = peerIdFromString('12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA')
const message = (data: string): Message => ({ type: 'unsigned', topic: 't', data: new TextEncoder().encode(data) })

function fakePubSub (): { subscribed: Set<string>, topicValidators: Map<string, TopicValidatorFn>, subscribe: (t: string) => void, unsubscribe: (t: string) => void } {
  const subscribed = new Set<string>()
  return {
    subscribed,
    topicValidators: new Map(),
    subscribe: (t) => { subscribed.add(t) },
    unsubscribe: (t) => { subscribed.delete(t) }
  }
}

describe('joinTopic', () => {
  it('subscribes, validates, and on leave unsubscribes and removes its validator', async () => {
    const pubsub = fakePubSub()
    const topic = joinTopic(pubsub, 't', (_from, m) => new TextDecoder().decode(m.data) === 'ok' ? TopicValidatorResult.Accept : TopicValidatorResult.Reject)
    assert.equal(pubsub.subscribed.has('t'), true)
    const validator = pubsub.topicValidators.get('t')
    assert.ok(validator)
    assert.equal(await validator(PEER, message('ok')), TopicValidatorResult.Accept)
    assert.equal(await validator(PEER, message('no')), TopicValidatorResult.Reject)
    topic.leave()
    assert.equal(pubsub.subscribed.has('t'), false)
    assert.equal(pubsub.topicValidators.has('t'), false)
    topic.leave()
  })

  it('keeps the prior validator in front, and puts it back on leave', async () => {
    const pubsub = fakePubSub()
    const seen: string[] = []
    const gate: TopicValidatorFn = (from) => from.equals(PEER) ? TopicValidatorResult.Accept : TopicValidatorResult.Ignore
    pubsub.topicValidators.set('t', gate)
    const topic = joinTopic(pubsub, 't', (_from, m) => { seen.push(new TextDecoder().decode(m.data)); return TopicValidatorResult.Accept })
    const validator = pubsub.topicValidators.get('t')
    assert.ok(validator != null && validator !== gate)
    const stranger = peerIdFromString('12D3KooWRBy97UB99e3J6hiPesre1MZeuNQvfan4gBziswrRJsNK')
    assert.equal(await validator(stranger, message('from a stranger')), TopicValidatorResult.Ignore)
    assert.deepEqual(seen, [], 'a message the prior validator refuses never reaches the new one')
    assert.equal(await validator(PEER, message('from a member')), TopicValidatorResult.Accept)
    assert.deepEqual(seen, ['from a member'])
    topic.leave()
    assert.equal(pubsub.topicValidators.get('t'), gate)
  })

  it('leaves a validator installed after it alone', () => {
    const pubsub = fakePubSub()
    const topic = joinTopic(pubsub, 't', () => TopicValidatorResult.Accept)
    const later: TopicValidatorFn = () => TopicValidatorResult.Reject
    pubsub.topicValidators.set('t', later)
    topic.leave()
    assert.equal(pubsub.topicValidators.get('t'), later)
  })

  it('without a validator, or without validator support, only subscribes', () => {
    const pubsub = fakePubSub()
    const gate: TopicValidatorFn = () => TopicValidatorResult.Accept
    pubsub.topicValidators.set('t', gate)
    joinTopic(pubsub, 't').leave()
    assert.equal(pubsub.topicValidators.get('t'), gate)
    const bare = { subscribed: new Set<string>(), subscribe (t: string) { this.subscribed.add(t) }, unsubscribe (t: string) { this.subscribed.delete(t) } }
    const topic = joinTopic(bare, 'u', () => TopicValidatorResult.Reject)
    assert.equal(bare.subscribed.has('u'), true)
    topic.leave()
    assert.equal(bare.subscribed.has('u'), false)
  })

  it('a validator that returns nothing accepts', async () => {
    const pubsub = fakePubSub()
    joinTopic(pubsub, 't', () => undefined)
    assert.equal(await pubsub.topicValidators.get('t')?.(PEER, message('x')), TopicValidatorResult.Accept)
  })
})
