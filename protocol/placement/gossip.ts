// Placement gossip on the hive's placement topic: `announce` a task, `award` it (the signed award
// record, without the signed bids that the DHT's copy carries), `closed` when it has its outcome. Messages are signed by gossipsub; the topic
// validator refuses what a member would not send (unsigned, not a member, an announcement in
// someone else's name, bytes that do not decode), so gossipsub drops it and scores its sender.

import { TopicValidatorResult } from '@libp2p/gossipsub'
import { encode as cborEncode } from 'cborg'
import { decodeMessage, decodeOnce } from '../wire/codec.ts'
import { errorText } from './components.ts'
import { PlacementGossip } from './messages.ts'
import type { PlacementPubSub } from './components.ts'
import type { Announce } from './messages.ts'
import type { ProtocolLog } from '../wire/serve.ts'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'

export function encodeGossip (message: PlacementGossip): Uint8Array {
  return cborEncode(message)
}

export function decodeGossip (bytes: Uint8Array): PlacementGossip {
  return decodeMessage(bytes, PlacementGossip)
}

export interface GossipHandlers {
  announce: (announce: Announce, author: string) => void
  award: (gossip: Extract<PlacementGossip, { t: 'award' }>, author: string) => void
  closed: (gossip: Extract<PlacementGossip, { t: 'closed' }>, author: string) => void
}

export interface PlacementGossipChannel {
  /** Subscribes to a topic (leaving the one before, if any). */
  join: (topic: string) => void
  leave: () => void
  publish: (message: PlacementGossip) => Promise<void>
}

export function placementGossip (
  components: { pubsub: PlacementPubSub, self: string, isMember?: (peerId: string) => boolean, log: ProtocolLog },
  handlers: GossipHandlers
): PlacementGossipChannel {
  const { pubsub, self, isMember, log } = components
  let topic: string | undefined
  let prior: TopicValidatorFn | undefined
  // the validator decodes a message, its listener takes the same decoding
  const decode = decodeOnce(decodeGossip)

  const validate: TopicValidatorFn = async (peer, message) => {
    if (prior != null) {
      const verdict = await prior(peer, message)
      if (verdict !== TopicValidatorResult.Accept) return verdict
    }
    if (message.type !== 'signed') return TopicValidatorResult.Reject
    if (isMember != null && !isMember(message.from.toString())) return TopicValidatorResult.Reject
    try {
      const gossip = decode(message.data)
      if (gossip.t === 'announce' && gossip.submitter !== message.from.toString()) return TopicValidatorResult.Reject
      // the candidates an announcement names are members: no stranger is asked to bid
      if (gossip.t === 'announce' && isMember != null && gossip.candidates?.some(c => !isMember(c)) === true) return TopicValidatorResult.Reject
    } catch {
      return TopicValidatorResult.Reject
    }
    return TopicValidatorResult.Accept
  }

  const onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== topic || message.type !== 'signed') return
    const author = message.from.toString()
    if (author === self) return
    if (isMember != null && !isMember(author)) return
    let gossip: PlacementGossip
    try {
      gossip = decode(message.data)
    } catch (err) {
      log.debug(`ignored placement gossip from ${author}: ${errorText(err)}`)
      return
    }
    if (gossip.t === 'announce') {
      if (gossip.candidates != null && isMember != null && gossip.candidates.some(c => !isMember(c))) {
        log.debug(`ignored announcement of ${gossip.task} from ${author}: it names a candidate that is not a member`)
        return
      }
      if (gossip.submitter === author) handlers.announce(gossip, author)
    } else if (gossip.t === 'award') {
      handlers.award(gossip, author)
    } else {
      handlers.closed(gossip, author)
    }
  }

  const leave = (): void => {
    if (topic == null) return
    pubsub.removeEventListener('message', onMessage)
    try {
      pubsub.unsubscribe(topic)
    } catch {}
    const validators = pubsub.topicValidators
    if (validators?.get(topic) === validate) {
      if (prior != null) validators.set(topic, prior)
      else validators.delete(topic)
    }
    prior = undefined
    topic = undefined
  }

  return {
    join (next) {
      leave()
      topic = next
      const validators = pubsub.topicValidators
      if (validators != null) {
        prior = validators.get(next)
        validators.set(next, validate)
      }
      pubsub.addEventListener('message', onMessage)
      pubsub.subscribe(next)
    },
    leave,
    async publish (message) {
      if (topic == null) return
      try {
        await pubsub.publish(topic, encodeGossip(message))
      } catch (err) {
        log.debug(`placement gossip ${message.t} for ${message.task} not sent: ${errorText(err)}`)
      }
    }
  }
}
