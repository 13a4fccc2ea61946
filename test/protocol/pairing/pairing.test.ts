// Pairing between real libp2p nodes on loopback: joining by URI and by PNG, a third device
// joining through the second, and each way an invite is refused.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { base32Encode } from '../../../protocol/membership/index.ts'
import { Invite, decodeInvite, encodeInvite, readQrPngFile, writeInvitePng } from '../../../protocol/pairing/index.ts'
import { eventPromise, waitFor } from '../../helpers/wait.ts'
import { connected, devices, memberIds } from '../../helpers/pairing-fixture.ts'
import type { RefusedEvent } from '../../../protocol/pairing/index.ts'
import type { Device } from '../../helpers/pairing-fixture.ts'

async function refusedAt (inviter: Device, run: () => Promise<unknown>): Promise<{ joiner: Error, inviter: Error }> {
  const seen = eventPromise<CustomEvent<RefusedEvent>>(inviter.pairing, 'refused', { timeoutMs: 15_000 })
  const joiner = await run().then(() => { throw new Error('the join was expected to be refused') }, (err: Error) => err)
  return { joiner, inviter: (await seen).detail.error }
}

function snapshot (d: Device): { hive: string, members: string[], entries: number } {
  return { hive: d.membership.hiveId, members: memberIds(d), entries: d.membership.entryIds().length }
}

describe('pairing', () => {
  it('joins by URI: both devices list each other as members and connect', async (t) => {
    const [a, b] = await devices(t, ['a', 'b']) as [Device, Device]
    const invite = a.pairing.createInvite()
    const result = await b.pairing.join(invite.uri)
    assert.equal(result.hiveId, a.membership.hiveId)
    assert.equal(b.membership.hiveId, a.membership.hiveId)
    assert.deepEqual(memberIds(a), [a.peerId, b.peerId].sort())
    assert.deepEqual(memberIds(b), [a.peerId, b.peerId].sort())
    assert.equal(a.membership.member(b.peerId)?.name, 'b')
    assert.equal(a.membership.member(b.peerId)?.addedBy, a.peerId)
    await waitFor(() => connected(a, b) && connected(b, a), { message: 'a and b connected as members' })
    assert.equal(a.pairing.invites()[0]?.state, 'used')
  })

  it('joins by PNG file', async (t) => {
    const [a, b] = await devices(t, ['a', 'b']) as [Device, Device]
    const dir = await mkdtemp(join(tmpdir(), 'hive-png-'))
    t.after(async () => { await rm(dir, { recursive: true, force: true }) })
    const file = join(dir, 'invite.png')
    await writeInvitePng(file, a.pairing.createInvite().uri)
    assert.equal((await stat(file)).mode & 0o777, 0o600, 'the PNG holds the secret: readable by its owner only')
    await b.pairing.join(await readQrPngFile(file))
    assert.deepEqual(memberIds(b), [a.peerId, b.peerId].sort())
    await waitFor(() => connected(a, b) && connected(b, a), { message: 'a and b connected as members' })
  })

  it('a third device joins through the second device\'s invite, and all three know all three', async (t) => {
    const [a, b, c] = await devices(t, ['a', 'b', 'c']) as [Device, Device, Device]
    await b.pairing.join(a.pairing.createInvite().uri)
    await c.pairing.join(b.pairing.createInvite().uri)
    const all = [a.peerId, b.peerId, c.peerId].sort()
    await waitFor(() => [a, b, c].every(d => memberIds(d).join() === all.join()), { message: 'all three list all three' })
    await waitFor(() => connected(a, c) && connected(c, a) && connected(b, c), { message: 'c connected to a and b' })
    // each can check who added whom, back to the founder
    assert.deepEqual(a.membership.chain(c.peerId).map(l => l.peerId), [a.peerId, b.peerId, c.peerId])
    assert.equal(a.membership.member(c.peerId)?.addedBy, b.peerId)
  })

  it('refuses a wrong secret, an expired invite, a reused invite and a damaged invite, each with its own error, leaving the hive unchanged', async (t) => {
    let clockA = Date.now()
    const [a, b, c] = await devices(t, ['a', 'b', 'c'], (label) => label === 'a' ? { now: () => clockA } : {}) as [Device, Device, Device]
    const before = snapshot(a)
    const beforeB = snapshot(b)

    // wrong secret: the right invite with another secret
    const invite = decodeInvite(a.pairing.createInvite().uri)
    const forged = new Invite({ ...invite.toJSON(), secret: new Uint8Array(randomBytes(16)) })
    const wrong = await refusedAt(a, async () => b.pairing.join(forged))
    assert.equal(wrong.joiner.name, 'WrongSecret')
    assert.equal(wrong.inviter.name, 'WrongSecret')

    // expired: the inviter's clock has passed the expiry though the joiner's has not
    const expiring = a.pairing.createInvite({ ttlMs: 60_000 })
    clockA += 61_000
    const expired = await refusedAt(a, async () => b.pairing.join(expiring.uri))
    assert.equal(expired.joiner.name, 'InviteExpired')
    assert.equal(expired.inviter.name, 'InviteExpired')
    clockA = Date.now()
    // and a joiner whose own clock says it has expired does not even try
    const stale = new Invite({ ...decodeInvite(a.pairing.createInvite().uri).toJSON(), secret: invite.revealSecret(), expiresAt: Date.now() - 1_000 })
    await assert.rejects(b.pairing.join(stale), { name: 'InviteExpired' })

    assert.deepEqual(snapshot(a), before, 'nothing changed on the inviter')
    assert.deepEqual(snapshot(b), beforeB, 'nothing changed on the joiner')

    // damaged: one character changed, refused before any network use
    const fresh = a.pairing.createInvite().uri
    const i = fresh.length - 10
    const damaged = fresh.slice(0, i) + (fresh[i] === 'a' ? 'b' : 'a') + fresh.slice(i + 1)
    const ids = (d: Device): Set<string> => new Set(d.libp2p.getConnections().map(c => c.id))
    const [beforeOnA, beforeOnB] = [ids(a), ids(b)]
    await assert.rejects(b.pairing.join(damaged), { name: 'InviteDamaged' })
    assert.ok([...ids(a)].every(id => beforeOnA.has(id)) && [...ids(b)].every(id => beforeOnB.has(id)), 'no connection was made')

    // reused: works once, then refused
    await b.pairing.join(fresh)
    const afterJoin = snapshot(a)
    const reused = await refusedAt(a, async () => c.pairing.join(fresh))
    assert.equal(reused.joiner.name, 'InviteUsed')
    assert.equal(reused.inviter.name, 'InviteUsed')
    assert.deepEqual(snapshot(a), afterJoin)
    assert.equal(c.membership.isMember(a.peerId), false)
    assert.equal(a.membership.isMember(c.peerId), false)
  })

  it('closes an invite after 20 wrong attempts', async (t) => {
    const [a, b] = await devices(t, ['a', 'b']) as [Device, Device]
    // another live invite keeps a open to strangers, so b hears why the closed one is refused
    a.pairing.createInvite()
    const uri = a.pairing.createInvite().uri
    const invite = decodeInvite(uri)
    for (let attempt = 1; attempt <= 20; attempt++) {
      const forged = new Invite({ ...invite.toJSON(), secret: new Uint8Array(randomBytes(16)) })
      await assert.rejects(b.pairing.join(forged), { name: 'WrongSecret' }, `attempt ${attempt}`)
    }
    await assert.rejects(b.pairing.join(uri), { name: 'InviteClosed' })
    const closed = a.pairing.invites().find(i => i.id === invite.id)
    assert.equal(closed?.state, 'closed')
    assert.equal(closed?.failedAttempts, 20)
    assert.deepEqual(memberIds(a), [a.peerId])
  })

  it('never lets the secret into logs or invite status', async (t) => {
    const [a, b, c] = await devices(t, ['a', 'b', 'c']) as [Device, Device, Device]
    const created = a.pairing.createInvite()
    const secret = decodeInvite(created.uri).revealSecret()
    await b.pairing.join(created.uri)
    // a second live invite lets c connect to pair, and hear that the first is used
    a.pairing.createInvite()
    await assert.rejects(c.pairing.join(created.uri), { name: 'InviteUsed' })
    const forms = [
      Buffer.from(secret).toString('hex'),
      Buffer.from(secret).toString('base64'),
      Buffer.from(secret).toString('base64url'),
      base32Encode(secret),
      created.uri.slice('hive://join/'.length)
    ]
    const outputs = [...a.logs, ...b.logs, ...c.logs, JSON.stringify(a.pairing.invites()), JSON.stringify(b.pairing.invites())]
    assert.ok(a.logs.length > 0 && b.logs.length > 0, 'something was logged')
    for (const line of outputs) {
      for (const form of forms) assert.ok(!line.toLowerCase().includes(form.toLowerCase()), `secret in: ${line}`)
    }
    // what the inviter returns to its caller is the only place the invite appears
    assert.ok(encodeInvite(decodeInvite(created.uri)) === created.uri)
  })
})
