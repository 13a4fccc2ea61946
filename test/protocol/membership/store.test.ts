// Membership on a real LevelDB: a new device founds a hive of one, and the hive and its member
// list survive a restart; a device that learns of its own removal starts over alone.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { createMembership, toWire } from '../../../protocol/membership/index.ts'
import type { Membership, MembershipChange, MembershipSigner } from '../../../protocol/membership/index.ts'

async function signer (): Promise<MembershipSigner> {
  const key = await generateKeyPair('Ed25519')
  return { peerId: peerIdFromPrivateKey(key).toString(), sign: async (bytes) => key.sign(bytes) }
}

async function open (dir: string, who: MembershipSigner, name: string): Promise<{ membership: Membership, close: () => Promise<void> }> {
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.open()
  const membership = createMembership({ name }, { signer: who, db: db.sublevel<string, Uint8Array>('membership', { keyEncoding: 'utf8', valueEncoding: 'view' }) })
  await membership.start()
  return { membership, close: async () => { await membership.stop(); await db.close() } }
}

describe('membership store', () => {
  it('founds a hive of one, and keeps hive and members across a restart', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'hive-membership-'))
    t.after(async () => { await rm(dir, { recursive: true, force: true }) })
    const [a, b] = await Promise.all([signer(), signer()])

    const first = await open(dir, a, 'laptop')
    const hive = first.membership.hiveId
    assert.deepEqual(first.membership.members().map(m => [m.peerId, m.name, m.founder, m.self]), [[a.peerId, 'laptop', true, true]])
    await first.membership.add(b.peerId, { name: 'desktop', addrs: ['/ip4/192.168.1.3/tcp/4190'] })
    await first.membership.rememberAddresses(b.peerId, ['/ip4/192.168.1.3/tcp/4191'])
    await first.close()

    const second = await open(dir, a, 'laptop')
    t.after(second.close)
    assert.equal(second.membership.hiveId, hive)
    assert.deepEqual(second.membership.members().map(m => m.peerId).sort(), [a.peerId, b.peerId].sort())
    assert.equal(second.membership.member(b.peerId)?.name, 'desktop')
    assert.deepEqual(second.membership.addressesOf(b.peerId), ['/ip4/192.168.1.3/tcp/4191', '/ip4/192.168.1.3/tcp/4190'])
  })

  it('a device that learns it was removed founds a new hive of one, and keeps it after a restart', async (t) => {
    const dirA = await mkdtemp(join(tmpdir(), 'hive-membership-'))
    const dirB = await mkdtemp(join(tmpdir(), 'hive-membership-'))
    t.after(async () => { await Promise.all([dirA, dirB].map(async d => { await rm(d, { recursive: true, force: true }) })) })
    const [a, b] = await Promise.all([signer(), signer()])
    const atA = await open(dirA, a, 'a')
    t.after(atA.close)
    let atB = await open(dirB, b, 'b')
    await atA.membership.add(b.peerId, { name: 'b' })
    await atB.membership.adopt(atA.membership.hiveId, atA.membership.entries().map(toWire))
    assert.equal(atB.membership.hiveId, atA.membership.hiveId)
    assert.equal(atB.membership.isMember(a.peerId), true)

    await atA.membership.remove(b.peerId)
    const changes: MembershipChange[] = []
    atB.membership.addEventListener('change', (e) => { changes.push((e as CustomEvent<MembershipChange>).detail) })
    await atB.membership.merge(atA.membership.entries().map(toWire), { origin: a.peerId })
    assert.notEqual(atB.membership.hiveId, atA.membership.hiveId)
    assert.deepEqual(atB.membership.members().map(m => m.peerId), [b.peerId])
    assert.equal(changes.at(-1)?.hiveChanged, true)
    assert.deepEqual(changes.at(-1)?.left, [a.peerId])

    const newHive = atB.membership.hiveId
    await atB.close()
    atB = await open(dirB, b, 'b')
    t.after(atB.close)
    assert.equal(atB.membership.hiveId, newHive)
    assert.equal(atB.membership.isMember(a.peerId), false)
  })

  it('refuses to remove itself or a stranger, each with its own error', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'hive-membership-'))
    t.after(async () => { await rm(dir, { recursive: true, force: true }) })
    const [a, stranger] = await Promise.all([signer(), signer()])
    const node = await open(dir, a, 'a')
    t.after(node.close)
    await assert.rejects(node.membership.remove(a.peerId), { name: 'CannotRemoveSelf' })
    await assert.rejects(node.membership.remove(stranger.peerId), { name: 'NotAMember' })
    await assert.rejects(node.membership.remove('not-a-peer-id'), { name: 'InvalidPeerId' })
  })
})
