// The invite codec and its QR forms, without any network.

import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { inspect } from 'node:util'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { PNG } from 'pngjs'
import { base32Encode } from '../../../protocol/membership/index.ts'
import { Invite, MAX_INVITE_RELAYED_ADDRESSES, decodeInvite, decodeQrPng, encodeInvite, inviteAddresses, inviteQrPng, inviteQrTerminal } from '../../../protocol/pairing/index.ts'
import { cborEncodeForTest } from '../../helpers/raw-invite.ts'
import type { HiveId } from '../../../protocol/membership/index.ts'

async function sample (): Promise<Invite> {
  const inviter = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
  return new Invite({
    hiveId: base32Encode(randomBytes(16)) as HiveId,
    inviter,
    id: randomBytes(8).toString('hex'),
    secret: new Uint8Array(randomBytes(16)),
    expiresAt: 1_900_000_000_000,
    addresses: ['/ip4/192.168.1.20/tcp/4190', '/ip4/127.0.0.1/tcp/4190']
  })
}

function assertSame (actual: Invite, expected: Invite): void {
  assert.deepEqual(actual.toJSON(), expected.toJSON())
  assert.deepEqual(actual.revealSecret(), expected.revealSecret())
}

describe('invite codec', () => {
  it('round-trips every field through the URI, in any case and with stray white space', async () => {
    const invite = await sample()
    const uri = encodeInvite(invite)
    assert.match(uri, /^hive:\/\/join\/[a-z2-7]+$/)
    assert.ok(uri.length < 260, `a URI of ${uri.length} characters is too long for a comfortable QR code`)
    assertSame(decodeInvite(uri), invite)
    assertSame(decodeInvite(uri.toUpperCase()), invite)
    assertSame(decodeInvite(`  ${uri.slice(0, 40)}\n  ${uri.slice(40)}\n`), invite)
  })

  it('carries addresses through a relay after the direct ones, at most 2, in a URI a QR code still holds', async () => {
    const invite = await sample()
    const relay = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const relay2 = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    const through = `/ip4/203.0.113.7/tcp/4190/p2p/${relay}/p2p-circuit`
    const withRelay = new Invite({ ...invite.toJSON(), secret: invite.revealSecret(), addresses: [through, ...invite.addresses, `/ip6/2001:db8::1/tcp/4190/p2p/${relay2}/p2p-circuit/p2p/${invite.inviter}`] })
    const decoded = decodeInvite(encodeInvite(withRelay))
    assert.deepEqual(decoded.addresses, [...invite.addresses, through, `/ip6/2001:db8::1/tcp/4190/p2p/${relay2}/p2p-circuit`], 'direct first; the inviter\'s own PeerId is taken off')
    assert.ok(encodeInvite(withRelay).length < 400, 'short enough for a QR code')
    // only the relay's PeerId may appear, right before /p2p-circuit; anything else is left out
    const kept = inviteAddresses([`/ip4/10.0.0.1/tcp/1/p2p/${relay}/p2p-circuit/ip4/10.0.0.2/tcp/2`, `/ip4/10.0.0.1/tcp/1/p2p-circuit`, ...Array.from({ length: 4 }, (_, i) => `/ip4/10.0.0.${i}/tcp/1/p2p/${relay}/p2p-circuit`)])
    assert.equal(kept.length, MAX_INVITE_RELAYED_ADDRESSES)
  })

  it('refuses an invite whose address names a PeerId anywhere but a relay\'s, with its own error', async () => {
    const invite = await sample()
    const relay = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
    for (const bad of [`/ip4/10.0.0.1/tcp/1/p2p/${relay}`, `/ip4/10.0.0.1/tcp/1/p2p-circuit`, `/ip4/10.0.0.1/tcp/1/p2p/${relay}/p2p-circuit/ip4/10.0.0.2`]) {
      const uri = cborEncodeForTest(invite, [bad])
      assert.throws(() => decodeInvite(uri), { name: 'InvalidInvite' }, bad)
    }
  })

  it('catches any single changed character with the checksum, before any network use', async () => {
    const invite = await sample()
    const uri = encodeInvite(invite)
    const start = 'hive://join/'.length
    for (let i = start; i < uri.length; i++) {
      const original = uri[i] as string
      const replacement = original === 'a' ? 'b' : 'a'
      const damaged = uri.slice(0, i) + replacement + uri.slice(i + 1)
      assert.throws(() => decodeInvite(damaged), { name: 'InviteDamaged' }, `a change at position ${i} went unnoticed`)
    }
    assert.throws(() => decodeInvite(uri.slice(0, -3)), { name: 'InviteDamaged' })
    assert.throws(() => decodeInvite(uri + 'a'), { name: 'InviteDamaged' })
    assert.throws(() => decodeInvite(uri.slice(0, 20) + '1' + uri.slice(21)), { name: 'InviteDamaged' })
  })

  it('refuses text that is not an invite with its own error', () => {
    assert.throws(() => decodeInvite('https://example.org/join/abc'), { name: 'InvalidInvite' })
    assert.throws(() => decodeInvite(''), { name: 'InvalidInvite' })
  })

  it('keeps the secret out of JSON and inspect output', async () => {
    const invite = await sample()
    const secretHex = Buffer.from(invite.revealSecret()).toString('hex')
    const secretB32 = base32Encode(invite.revealSecret())
    for (const text of [JSON.stringify(invite), inspect(invite, { showHidden: true, depth: 5 }), String(invite)]) {
      assert.ok(!text.includes(secretHex) && !text.includes(secretB32), `secret visible in: ${text}`)
    }
  })
})

describe('invite QR codes', () => {
  it('a PNG written for an invite reads back as the same invite', async () => {
    const invite = await sample()
    const png = await inviteQrPng(encodeInvite(invite))
    assertSame(decodeInvite(await decodeQrPng(png)), invite)
  })

  it('draws a terminal QR code', async () => {
    const text = await inviteQrTerminal(encodeInvite(await sample()))
    assert.ok(text.split('\n').length > 10)
    assert.match(text, /[▀▄█]/)
  })

  it('refuses a file that is not a PNG, and a PNG without a QR code, each with its own error', async () => {
    await assert.rejects(decodeQrPng(new TextEncoder().encode('hive://join/abc')), { name: 'InvalidInvite' })
    const blank = new PNG({ width: 64, height: 64 })
    blank.data.fill(255)
    await assert.rejects(decodeQrPng(PNG.sync.write(blank)), { name: 'QrNotFound' })
  })
})
