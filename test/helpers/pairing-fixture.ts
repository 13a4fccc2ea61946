// A device for pairing and membership tests: a real libp2p node on loopback with membership,
// gate, replication and pairing wired the way the node wires them, on a real LevelDB in a temp
// directory. Each layer of the gate can be lifted on its own, so a test can prove that every
// other layer still refuses a non-member.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { gossipsub } from '@libp2p/gossipsub'
import { identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { Level } from 'level'
import { createLibp2p } from 'libp2p'
import { z } from 'zod'
import { DHT_PROTOCOL, HiveRecords, OPEN_GATE, gossipTopic, serveProtocol } from '../../protocol/index.ts'
import { createGate, createMembership, createMembershipSync } from '../../protocol/membership/index.ts'
import { PAIRING_PROTOCOL, createPairing } from '../../protocol/pairing/index.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { Identify } from '@libp2p/identify'
import type { KadDHT } from '@libp2p/kad-dht'
import type { Ping } from '@libp2p/ping'
import type { ConnectionGater, Libp2p } from '@libp2p/interface'
import type { ServedProtocol } from '../../protocol/index.ts'
import type { Membership, MembershipGate, MembershipSigner, MembershipSync, Refusal } from '../../protocol/membership/index.ts'
import type { Pairing } from '../../protocol/pairing/index.ts'

export const ECHO_PROTOCOL = '/hive/test-echo/1.0.0'

export interface Layers {
  /** The libp2p connection gater. */
  gater?: boolean
  /** Stream middleware on libp2p's protocols and the gate on hive protocol handlers. */
  streams?: boolean
  /** The membership check in the DHT record validator. */
  dht?: boolean
  /** 'full': graylisting score and topic validator; 'validator': the topic validator only. */
  gossip?: 'full' | 'validator' | false
}

export interface DeviceOptions {
  layers?: Layers
  /** Clock for invite expiry. */
  now?: () => number
  redialIntervalMs?: number
}

type Services = { identify: Identify, ping: Ping, dht: KadDHT, pubsub: GossipSub }

export interface Device {
  label: string
  peerId: string
  libp2p: Libp2p<Services>
  membership: Membership
  gate: MembershipGate
  sync: MembershipSync
  pairing: Pairing
  records: HiveRecords
  signer: MembershipSigner
  /** Every line this device's parts logged. */
  logs: string[]
  refusals: Refusal[]
  /** Topic the device subscribed to (its hive's `test` topic), guarded when the gossip layer is on. */
  topic: string
  stop: () => Promise<void>
}

/**
 * A gater that asks the gate (so pairing connections are still admitted and marked) but never
 * denies: a device with its connection gate lifted, as a hostile device would run.
 */
function liftedGater (gate: MembershipGate): ConnectionGater {
  const inner = gate.connectionGater as Record<string, ((...args: unknown[]) => unknown) | undefined>
  const out: Record<string, (...args: unknown[]) => Promise<boolean>> = {}
  for (const [name, fn] of Object.entries(inner)) {
    if (fn != null) out[name] = async (...args) => { await fn(...args); return false }
  }
  return out as ConnectionGater
}

const ALL: Required<Layers> = { gater: true, streams: true, dht: true, gossip: 'full' }

export async function startDevice (label: string, options: DeviceOptions = {}): Promise<Device> {
  const layers = { ...ALL, ...options.layers }
  const dir = await mkdtemp(join(tmpdir(), `hive-pairing-${label}-`))
  const db = new Level<string, Uint8Array>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const logs: string[] = []
  const logger = (part: string): { debug: (m: string) => void, info: (m: string) => void, warn: (m: string) => void } => ({
    debug: (m) => { logs.push(`DEBUG [${label}:${part}] ${m}`) },
    info: (m) => { logs.push(`INFO [${label}:${part}] ${m}`) },
    warn: (m) => { logs.push(`WARN [${label}:${part}] ${m}`) }
  })

  const key = await generateKeyPair('Ed25519')
  const signer: MembershipSigner = { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
  const membership = createMembership({ name: label, log: logger('membership') }, {
    signer,
    db: db.sublevel<string, Uint8Array>('membership', { keyEncoding: 'utf8', valueEncoding: 'view' })
  })
  await membership.start()
  const gate = createGate({ pairingProtocol: PAIRING_PROTOCOL, log: logger('gate') }, { membership })
  const refusals: Refusal[] = []
  gate.addEventListener('refused', (event) => { refusals.push((event as CustomEvent<Refusal>).detail) })

  const records = new HiveRecords({ isMember: layers.dht ? (peer) => { gate.checkPublisher(peer); return true } : () => true })
  records.register('test')

  const libp2p = await createLibp2p<Services>({
    privateKey: key,
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionGater: layers.gater ? gate.connectionGater : liftedGater(gate),
    connectionManager: { inboundConnectionThreshold: 10_000 },
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({
        protocol: DHT_PROTOCOL,
        clientMode: false,
        peerInfoMapper: passthroughMapper,
        validators: records.validators(),
        selectors: records.selectors()
      }),
      pubsub: gossipsub({
        allowPublishToZeroTopicPeers: true,
        emitSelf: false,
        ...(layers.gossip === 'full' ? { scoreParams: gate.gossipScoreParams() } : {})
      })
    }
  })

  gate.install(libp2p, { enforceConnections: layers.gater, ...(layers.streams ? {} : { protocols: [] }) })
  const echo: ServedProtocol = await serveProtocol(libp2p, ECHO_PROTOCOL, async (stream) => {
    for await (const frame of stream.messages(z.unknown())) await stream.write(frame)
  }, { log: logger('echo'), gate: layers.streams ? gate : OPEN_GATE })
  const sync = createMembershipSync({ log: logger('sync'), redialIntervalMs: options.redialIntervalMs ?? 1_000 }, { membership, gate, network: libp2p })
  const pairing = createPairing({ name: label, log: logger('pairing'), now: options.now }, { membership, gate, network: libp2p })
  await sync.start()
  await pairing.start()

  const topic = gossipTopic(membership.hiveId, 'test')
  if (layers.gossip !== false) gate.guardTopic(libp2p.services.pubsub, topic)
  libp2p.services.pubsub.subscribe(topic)

  let stopped = false
  return {
    label,
    peerId: signer.peerId,
    libp2p,
    membership,
    gate,
    sync,
    pairing,
    records,
    signer,
    logs,
    refusals,
    topic,
    stop: async () => {
      if (stopped) return
      stopped = true
      await pairing.stop()
      await sync.stop()
      await echo.stop()
      gate.stop()
      await libp2p.stop()
      await membership.stop()
      await db.close()
      await rm(dir, { recursive: true, force: true })
    }
  }
}

/** Starts devices and registers their teardown with the test. */
export async function devices (t: { after: (fn: () => Promise<void>) => void }, labels: string[], options: DeviceOptions | ((label: string) => DeviceOptions) = {}): Promise<Device[]> {
  const started: Device[] = []
  t.after(async () => { await Promise.all(started.map(async d => { await d.stop() })) })
  for (const label of labels) started.push(await startDevice(label, typeof options === 'function' ? options(label) : options))
  return started
}

/** Whether `a` holds an open connection to `b` that is not a pairing connection. */
export function connected (a: Device, b: Device): boolean {
  return a.libp2p.getConnections().some(c => c.remotePeer.toString() === b.peerId && c.limits == null && c.status === 'open')
}

export function memberIds (d: Device): string[] {
  return d.membership.members().map(m => m.peerId).sort()
}
