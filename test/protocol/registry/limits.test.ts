// The registry's bounds on one device: it holds at most MAX_REGISTRY_ENTRIES entries and refuses
// to publish beyond them (dropping one could change what a name resolves to), and one exchange
// frame carries at most REGISTRY_ENTRIES_PER_FRAME entries.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import {
  MAX_REGISTRY_BODY_BYTES, MAX_REGISTRY_ENTRIES, MAX_REGISTRY_MESSAGE_BYTES, REGISTRY_ENTRIES_PER_FRAME, createCatalogEntry, createRegistry, encodeCatalogEntry
} from '../../../protocol/registry/index.ts'
import { agentDigest } from '../../../protocol/agents/index.ts'
import type { AgentDigest } from '../../../protocol/agents/index.ts'

const HIVE = 'abcdefghijklmnopqrstuvwxyz'

describe('registry limits', () => {
  it(`holds at most ${MAX_REGISTRY_ENTRIES} entries: a publish beyond them is refused, saying so`, async () => {
    const key = await generateKeyPair('Ed25519')
    const signer = { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes: Uint8Array) => key.sign(bytes) }
    const stored = new Map<string, Uint8Array>()
    for (let i = 0; i < MAX_REGISTRY_ENTRIES; i++) {
      const e = await createCatalogEntry({
        type: 'publish', hive: HIVE, at: i, name: `agent-${i}`, version: '1.0.0', digest: agentDigest(new Uint8Array([i & 255, i >> 8])), size: 2,
        manifest: { description: '', permissions: [], limits: { timeoutMs: 1000, memoryMiB: 1 } }, tags: []
      }, signer)
      stored.set(e.id, encodeCatalogEntry(e))
    }
    const memory = new Map<string, Uint8Array>()
    const registry = createRegistry({
      db: { put: async (k, v) => { stored.set(k, v) }, values: async function * () { yield * stored.values() } },
      signer,
      hiveId: () => HIVE,
      isMember: () => true,
      host: {
        handle: async () => {}, unhandle: async () => {}, hangUp: async () => {}, dialProtocol: async () => { throw new Error('no network') },
        getPeers: () => [], getConnections: () => [], addEventListener: () => {}, removeEventListener: () => {}
      },
      memory: { get: (d) => memory.get(d), put: (b) => { const d = agentDigest(b); memory.set(d, b); return d } },
      disk: { read: async () => undefined, write: async (b) => agentDigest(b) as AgentDigest },
      inspect: () => ({ name: 'one-more', version: '1.0.0', manifest: { description: '', permissions: [], limits: { timeoutMs: 1000, memoryMiB: 1 } } })
    })
    await registry.start()
    try {
      assert.equal(registry.entries().length, MAX_REGISTRY_ENTRIES)
      await assert.rejects(registry.publish(new Uint8Array([1, 2, 3])), { name: 'RegistryRefused', message: new RegExp(`holds ${MAX_REGISTRY_ENTRIES} entries, the most a device keeps`) })
      assert.equal(registry.entries().length, MAX_REGISTRY_ENTRIES)
      assert.equal(registry.show('one-more'), undefined)
    } finally {
      await registry.stop()
    }
  })

  it(`fits ${REGISTRY_ENTRIES_PER_FRAME} entries of the largest size in one exchange frame`, () => {
    assert.ok(REGISTRY_ENTRIES_PER_FRAME * (MAX_REGISTRY_BODY_BYTES + 64 + 16) < MAX_REGISTRY_MESSAGE_BYTES)
    assert.ok(MAX_REGISTRY_MESSAGE_BYTES <= 2 * 1024 * 1024, 'a frame stays small enough to buffer per stream')
  })
})
