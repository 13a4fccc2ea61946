// Writes an invite URI by hand, bypassing encodeInvite's own address checks, to test what
// decodeInvite accepts from a peer.

import { createHash } from 'node:crypto'
import { multiaddr } from '@multiformats/multiaddr'
import { encode } from 'cborg'
import { base32Decode, base32Encode, publicKeyOf } from '../../protocol/membership/index.ts'
import { INVITE_SCHEME } from '../../protocol/pairing/index.ts'
import type { Invite } from '../../protocol/pairing/index.ts'

export function cborEncodeForTest (invite: Invite, addresses: string[]): string {
  const payload = encode([1, base32Decode(invite.hiveId), publicKeyOf(invite.inviter), Buffer.from(invite.id, 'hex'), invite.revealSecret(), Math.ceil(invite.expiresAt / 1000), addresses.map(a => multiaddr(a).bytes)])
  const sum = createHash('sha256').update(payload).digest().subarray(0, 4)
  return INVITE_SCHEME + base32Encode(new Uint8Array([...payload, ...sum]))
}
