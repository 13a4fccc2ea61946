// A bare libp2p client for tests that play a hostile peer: TCP, noise, yamux and ping (a node's
// connection monitor pings every connection), nothing of the hive. Made a member by the test
// (its key added to a node's member list) it speaks hive protocols with raw frames.

import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'
import type { Ping } from '@libp2p/ping'
import type { Libp2p, PrivateKey } from '@libp2p/interface'

export type RawClient = Libp2p<{ ping: Ping }>

export async function startRawClient (options: { privateKey?: PrivateKey } = {}): Promise<RawClient> {
  return createLibp2p({
    privateKey: options.privateKey ?? await generateKeyPair('Ed25519'),
    addresses: { listen: [] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { ping: ping() }
  })
}
