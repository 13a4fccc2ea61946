// Joining a gossip topic with a validator in front of it. Gossipsub holds one validator per
// topic; the hive gate may already have put one there (it refuses non-members), so a part that
// joins keeps the prior validator, runs it first, and puts it back when it leaves. A message is
// forwarded only when both accept it.

import { TopicValidatorResult } from '@libp2p/gossipsub'
import type { Message, TopicValidatorFn } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'

/** The part of gossipsub a topic needs. */
export interface TopicPubSub {
  subscribe: (topic: string) => void
  unsubscribe: (topic: string) => void
  /** When present, messages are validated before gossipsub forwards them. */
  topicValidators?: Map<string, TopicValidatorFn>
}

/** Decides a message's fate; returning Accept (or nothing) lets it through. */
export type TopicValidate = (from: PeerId, message: Message) => TopicValidatorResult | undefined | Promise<TopicValidatorResult | undefined>

export interface JoinedTopic {
  readonly topic: string
  /** Unsubscribes and restores the validator that was there before (idempotent). */
  leave: () => void
}

export function joinTopic (pubsub: TopicPubSub, topic: string, validate?: TopicValidate): JoinedTopic {
  const validators = pubsub.topicValidators
  const prior = validators?.get(topic)
  let ours: TopicValidatorFn | undefined
  if (validators != null && validate != null) {
    ours = async (from, message) => {
      if (prior != null) {
        const first = await prior(from, message)
        if (first !== TopicValidatorResult.Accept) return first
      }
      return (await validate(from, message)) ?? TopicValidatorResult.Accept
    }
    validators.set(topic, ours)
  }
  pubsub.subscribe(topic)
  let joined = true
  return {
    topic,
    leave () {
      if (!joined) return
      joined = false
      try {
        pubsub.unsubscribe(topic)
      } catch {
        // pubsub may already be stopped with libp2p
      }
      if (ours != null && validators?.get(topic) === ours) {
        if (prior != null) validators.set(topic, prior)
        else validators.delete(topic)
      }
    }
  }
}
