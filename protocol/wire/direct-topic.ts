// A hive topic's direct twin. Gossipsub sends a message its author publishes to every subscribed
// peer it is connected to (flood publish), and every receiver forwards it to its mesh peers (up
// to D = 3) but the one it came from. In a hive where every member is connected to every other,
// the author's copies already reach everyone, so each of those forwards is a copy that is
// encoded, encrypted, sent, read, decrypted and decoded only to be dropped as a duplicate: in a
// hive of five, about two copies in three. Measured on bursts of placed tasks across five
// devices, where each task gossips an announcement, an award and its close, leaving the forwards
// out cut gossip's bytes per task from about 115 KiB to about 32 (README, Placement).
//
// So every topic subscribed through `withDirectTwins` has a twin, `<topic>/direct`, which the
// node subscribes to as well:
//   - A message that arrives on the twin is checked by the topic's own validators (the hive gate
//     and the part's), handed to the topic's listeners as a message of the topic, and answered
//     Ignore: gossipsub then neither delivers it a second time nor forwards it, and an ignored
//     message does not count against its sender.
//   - A device publishes on the twin only when every other member is subscribed to the twin from
//     its side (connected, and running a release that has twins) and has a score of at least 0
//     (flood publish reaches only peers above the publish threshold). Otherwise it publishes on
//     the topic itself, and gossip forwards the message as it always did: to a member this device
//     has no connection to, and to a release without twins, which never subscribes to one.
//   - With direct links (direct-links.ts), a message for the twin goes instead on a stream to
//     each other member, once every one of them has a link from this device: the same delivery,
//     without gossipsub's signature and its checks. A message read on a link is checked by the
//     topic's validators and handed to its listeners exactly as one read on the twin.

import { TopicValidatorResult } from '@libp2p/gossipsub'
import { DIRECT_MESSAGE_BYTES } from './direct-links.ts'
import type { DirectLinks, DirectVerdict } from './direct-links.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

const NO_SIGNATURE = new Uint8Array(0)

/** The twin of a topic: its messages are delivered by their author to every member, and not forwarded. */
export function directTwin (topic: string): string {
  return `${topic}/direct`
}

/** The part of gossipsub the twins need. */
export interface TwinPubSub {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  publish: (topic: string, data: Uint8Array) => Promise<unknown>
  getSubscribers: (topic: string) => PeerId[]
  getScore?: (peer: string) => number
  topicValidators: Map<string, TopicValidatorFn>
  dispatchEvent: (event: Event) => boolean
}

/**
 * `pubsub` with a direct twin for every topic subscribed through it; `others` lists the PeerIds
 * of the hive's other members. With `links`, the twin's messages go on direct links once every
 * other member has one. Everything but subscribe, unsubscribe and publish is gossipsub's.
 */
export function withDirectTwins<P extends TwinPubSub> (pubsub: P, others: () => Iterable<string>, links?: DirectLinks): P {
  const twinned = new Map<string, TopicValidatorFn>()

  /** The topic's validators on a message of its twin; listeners hear it when they accept. */
  const take = async (from: PeerId, message: Message, topic: string): Promise<TopicValidatorResult> => {
    const asTopic: Message = { ...message, topic }
    const own = pubsub.topicValidators.get(topic)
    const verdict = own == null ? TopicValidatorResult.Accept : await own(from, asTopic)
    if (verdict === TopicValidatorResult.Accept) pubsub.dispatchEvent(new CustomEvent('message', { detail: asTopic }))
    return verdict
  }

  const takeTwin = (topic: string): TopicValidatorFn => async (from, message) => {
    const verdict = await take(from, message, topic)
    return verdict === TopicValidatorResult.Accept ? TopicValidatorResult.Ignore : verdict
  }

  // a message on a link is the twin's, authored by the link's peer: the connection
  // authenticated it, so it carries no signature of its own
  let sequence = 0n
  links?.deliverTo(async (from, topic, data): Promise<DirectVerdict> => {
    if (!twinned.has(topic) || from.publicKey == null) return 'ignore'
    sequence++
    const message: Message = { type: 'signed', from, topic, data, sequenceNumber: sequence, signature: NO_SIGNATURE, key: from.publicKey }
    const verdict = await take(from, message, topic)
    return verdict === TopicValidatorResult.Reject ? 'reject' : verdict === TopicValidatorResult.Accept ? 'accept' : 'ignore'
  })

  const everyMemberTakesTwin = (topic: string): boolean => {
    const subscribed = new Set(pubsub.getSubscribers(directTwin(topic)).map(p => p.toString()))
    for (const peer of others()) {
      if (!subscribed.has(peer) || (pubsub.getScore?.(peer) ?? 0) < 0) return false
    }
    return true
  }

  const overrides = {
    subscribe (topic: string): void {
      pubsub.subscribe(topic)
      if (twinned.has(topic)) return
      const validator = takeTwin(topic)
      twinned.set(topic, validator)
      pubsub.topicValidators.set(directTwin(topic), validator)
      pubsub.subscribe(directTwin(topic))
    },
    unsubscribe (topic: string): void {
      pubsub.unsubscribe(topic)
      const validator = twinned.get(topic)
      if (validator == null) return
      twinned.delete(topic)
      pubsub.unsubscribe(directTwin(topic))
      if (pubsub.topicValidators.get(directTwin(topic)) === validator) pubsub.topicValidators.delete(directTwin(topic))
    },
    async publish (topic: string, data: Uint8Array): Promise<unknown> {
      if (!twinned.has(topic)) return pubsub.publish(topic, data)
      const members = links != null ? [...others()] : []
      // a message larger than a link carries goes on gossip, under gossipsub's own bound
      if (links != null && data.byteLength <= DIRECT_MESSAGE_BYTES && links.send(members, topic, data)) return
      if (!everyMemberTakesTwin(topic)) return pubsub.publish(topic, data)
      links?.prepare(members)
      return pubsub.publish(directTwin(topic), data)
    }
  }

  return new Proxy(pubsub, {
    get (target, prop) {
      if (prop === 'subscribe' || prop === 'unsubscribe' || prop === 'publish') return overrides[prop]
      const value: unknown = Reflect.get(target, prop, target)
      return typeof value === 'function' ? value.bind(target) : value
    }
  })
}
