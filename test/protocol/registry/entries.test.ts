// Catalog entries and the catalog on their own: the codec refuses what is not a signed,
// canonical entry under the registry's own domain; a version's bytes are those of its first
// publish and a second publish with other bytes is a conflict, whatever order the entries come
// in; yanks, tags and the syntax of names, versions and references.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { encode as cborEncode } from 'cborg'
import {
  AGENT_NAME_PATTERN, Catalog, MAX_REGISTRY_BODY_BYTES, REGISTRY_ENTRY_DOMAIN, compareVersions, createCatalogEntry, decodeCatalogEntry, encodeCatalogEntry,
  isAgentRefText, openCatalogEntry, parseAgentRef
} from '../../../protocol/registry/index.ts'
import { CONTROL_ENTRY_DOMAIN, createControlEntry } from '../../../protocol/control/index.ts'
import { domainSigningBytes } from '../../../protocol/wire/signing.ts'
import type { CatalogEntry, ManifestSummary } from '../../../protocol/registry/index.ts'
import type { Signer } from '../../../protocol/wire/signing.ts'

const HIVE = 'abcdefghijklmnopqrstuvwxyz'
const MANIFEST: ManifestSummary = { description: 'takes notes', permissions: ['context:read'], limits: { timeoutMs: 5000, memoryMiB: 1 } }
const d = (c: string): string => c.repeat(64)

async function signer (): Promise<Signer> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
}

async function publish (s: Signer, version: string, digest: string, at: number, tags: string[] = []): Promise<CatalogEntry> {
  return createCatalogEntry({ type: 'publish', hive: HIVE, at, name: 'notes', version, digest, size: 10, manifest: MANIFEST, tags }, s)
}

/** Every order of a list (small lists only). */
function orders<T> (list: T[]): T[][] {
  if (list.length <= 1) return [list]
  return list.flatMap((x, i) => orders([...list.slice(0, i), ...list.slice(i + 1)]).map(rest => [x, ...rest]))
}

describe('catalog entries', () => {
  it('round-trip, and refuse a flipped signature, another signer, another domain, a non-canonical body and a bad shape', async () => {
    const s = await signer()
    const entry = await publish(s, '0.1.0', d('a'), 1, ['latest'])
    assert.equal(decodeCatalogEntry(encodeCatalogEntry(entry)).id, entry.id)

    const sig = new Uint8Array(entry.sig)
    sig[5] = (sig[5] ?? 0) ^ 1
    assert.throws(() => openCatalogEntry({ b: entry.bytes, s: sig }), { name: 'InvalidCatalogEntry', message: /does not verify/ })

    // the body claims another signer: the signature is not that signer's
    const other = await signer()
    const forged = cborEncode({ ...entry.body, by: other.peerId })
    assert.throws(() => openCatalogEntry({ b: forged, s: entry.sig }), /does not verify/)

    // a signature over the same body under another domain (a halt's) is not a catalog entry's
    const asControl = await s.sign(domainSigningBytes(CONTROL_ENTRY_DOMAIN, entry.bytes))
    assert.throws(() => openCatalogEntry({ b: entry.bytes, s: asControl }), /does not verify/)
    assert.notEqual(REGISTRY_ENTRY_DOMAIN, CONTROL_ENTRY_DOMAIN)
    // and a halt entry's bytes and signature are no catalog entry
    const halt = await createControlEntry({ type: 'halt', hive: HIVE, at: 1, n: 1 }, s)
    assert.throws(() => openCatalogEntry({ b: halt.bytes, s: halt.sig }), { name: 'InvalidCatalogEntry', message: /invalid/ })

    // the same map with its keys in another order, rightly signed: only the canonical check refuses it
    const key = (e: unknown): string => String((e as Array<{ value: unknown }>)[0]?.value)
    const reordered = cborEncode(entry.body, { mapSorter: (x, y) => key(x) < key(y) ? 1 : -1 })
    assert.notDeepEqual(reordered, entry.bytes)
    const reorderedSig = await s.sign(domainSigningBytes(REGISTRY_ENTRY_DOMAIN, reordered))
    assert.throws(() => openCatalogEntry({ b: reordered, s: reorderedSig }), /not canonically encoded/)
    assert.throws(() => openCatalogEntry({ b: new Uint8Array([1, 2, 3]), s: entry.sig }), /invalid|not CBOR/)
    assert.throws(() => openCatalogEntry({ b: cborEncode({ ...entry.body, version: 'one' }), s: entry.sig }), /version/)
    assert.throws(() => openCatalogEntry({ b: new Uint8Array(MAX_REGISTRY_BODY_BYTES + 1), s: entry.sig }), /at most|more than/)
  })

  it(`refuses to sign an entry bigger than ${MAX_REGISTRY_BODY_BYTES} bytes, saying what to shorten`, async () => {
    const s = await signer()
    const big: ManifestSummary = { ...MANIFEST, tools: Array.from({ length: 8 }, (_, i) => ({ name: `t${i}`, description: 'x'.repeat(500), parameters: { type: 'object', description: 'y'.repeat(2000) } })) }
    await assert.rejects(createCatalogEntry({ type: 'publish', hive: HIVE, at: 1, name: 'notes', version: '0.1.0', digest: d('a'), size: 1, manifest: big, tags: [] }, s),
      { name: 'InvalidCatalogEntry', message: /more than the 16384 an entry may be; shorten/ })
  })

  it('keeps the first publish of a version and shows a second with other bytes as a conflict, in every order', async () => {
    const a = await signer()
    const c = await signer()
    const first = await publish(a, '0.1.0', d('a'), 100, ['latest'])
    const conflicting = await publish(c, '0.1.0', d('b'), 200)
    const again = await publish(c, '0.1.0', d('a'), 300, ['stable'])
    const next = await publish(a, '0.2.0', d('c'), 400)
    const answers = new Set<string>()
    for (const order of orders([first, conflicting, again, next])) {
      const catalog = new Catalog()
      for (const e of order) catalog.add(e)
      const v = catalog.resolve({ name: 'notes', version: '0.1.0' })
      answers.add(JSON.stringify(catalog.agent('notes')))
      assert.equal(v.digest, d('a'))
      assert.equal(v.publisher, a.peerId)
      assert.deepEqual(v.conflicts.map(x => x.digest), [d('b')])
    }
    assert.equal(answers.size, 1, 'every order gives the same catalog')
    const catalog = new Catalog()
    for (const e of [first, conflicting, again, next]) catalog.add(e)
    // the latest tag stays on 0.1.0 (0.2.0 was published without it); a bare name follows it
    assert.equal(catalog.resolve({ name: 'notes' }).version, '0.1.0')
    assert.equal(catalog.resolve({ name: 'notes', tag: 'stable' }).version, '0.1.0')
    assert.deepEqual(catalog.agent('notes')?.versions.map(v => v.version), ['0.2.0', '0.1.0'])
  })

  it('yanks a version: not resolved by name any more, still listed; a bare name passes over it', async () => {
    const a = await signer()
    const catalog = new Catalog()
    catalog.add(await publish(a, '0.1.0', d('a'), 1))
    catalog.add(await publish(a, '0.2.0', d('b'), 2))
    assert.equal(catalog.resolve({ name: 'notes' }).version, '0.2.0')
    catalog.add(await createCatalogEntry({ type: 'yank', hive: HIVE, at: 3, name: 'notes', version: '0.2.0', digest: d('b'), reason: 'leaks notes' }, a))
    assert.throws(() => catalog.resolve({ name: 'notes', version: '0.2.0' }), { name: 'AgentYanked', message: /yanked \("leaks notes"\).*not yanked are 0\.1\.0/ })
    assert.equal(catalog.resolve({ name: 'notes' }).version, '0.1.0')
    assert.equal(catalog.agent('notes')?.versions.find(v => v.version === '0.2.0')?.yanked?.reason, 'leaks notes')
    assert.throws(() => catalog.resolve({ name: 'other' }), { name: 'AgentNotPublished' })
    assert.throws(() => catalog.resolve({ name: 'notes', version: '9.9.9' }), { name: 'AgentNotPublished', message: /versions of notes are 0\.2\.0, 0\.1\.0/ })
  })

  it('parses names, versions, tags and references, and orders versions semantically', () => {
    assert.deepEqual(parseAgentRef('notes@0.1.0'), { name: 'notes', version: '0.1.0' })
    assert.deepEqual(parseAgentRef('notes@latest'), { name: 'notes', tag: 'latest' })
    assert.deepEqual(parseAgentRef('notes'), { name: 'notes' })
    for (const bad of ['Notes', 'notes@', 'notes@1.0', '@1.0.0', 'a'.repeat(65), 'notes@1.0.0@2', 'no tes']) {
      assert.throws(() => parseAgentRef(bad), { name: 'InvalidAgentRef' }, bad)
      assert.equal(isAgentRefText(bad), false, bad)
    }
    assert.equal(AGENT_NAME_PATTERN.test('a'.repeat(64)), true)
    // a component in base64 is never read as a name
    assert.equal(isAgentRefText(Buffer.from('\0asm\x0d\0\x01\0').toString('base64')), false)
    const sorted = ['1.0.0', '0.10.0', '0.2.0', '1.0.0-rc.1', '1.0.0-alpha', '0.2.0-1'].sort(compareVersions)
    assert.deepEqual(sorted, ['0.2.0-1', '0.2.0', '0.10.0', '1.0.0-alpha', '1.0.0-rc.1', '1.0.0'])
  })
})
