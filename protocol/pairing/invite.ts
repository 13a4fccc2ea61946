// The invite: everything a new device needs to join, as a URI short enough for a QR code.
//
//   hive://join/<base32 of payload || checksum>
//
// payload  = CBOR array [ 1, hive id (16 bytes), inviter's Ed25519 public key (32 bytes),
//            invite id (8 bytes), secret (16 bytes), expiry (seconds since the epoch),
//            [ multiaddr bytes, … ] ]
// checksum = the first 4 bytes of SHA-256(payload)
//
// An address is either direct (no /p2p part: the inviter's PeerId is added to dial it) or
// through a member relay of the hive, `<relay address>/p2p/<relay>/p2p-circuit`, which ends
// there (the inviter's PeerId is added after it). The format version stays 1: an older
// hive-node reads such an address and cannot use it (its gate refuses to dial the relay), and
// still dials the direct ones.
//
// Base32 (RFC 4648, no padding) is case-free; the QR code carries it upper-cased so it fits
// the code's compact alphanumeric mode. The checksum catches a mistyped or damaged invite
// before anything touches the network. The secret is 128 random bits and never leaves this
// device except inside the invite; the pairing protocol proves knowledge of it without sending it.

import { createHash, randomBytes } from 'node:crypto'
import { inspect } from 'node:util'
import { publicKeyFromRaw } from '@libp2p/crypto/keys'
import { peerIdFromPublicKey } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { base32Decode, base32Encode } from '../membership/base32.ts'
import { publicKeyOf } from '../membership/entries.ts'
import { InvalidInviteError, InviteDamagedError } from './errors.ts'
import type { HiveId } from '../membership/entries.ts'

export const INVITE_SCHEME = 'hive://join/'
export const INVITE_VERSION = 1
export const SECRET_BYTES = 16
export const MAX_INVITE_ADDRESSES = 6
/** Of those, addresses through a relay (after the direct ones). */
export const MAX_INVITE_RELAYED_ADDRESSES = 2
/** An address's bytes in an invite (an IPv6 address through a relay fits). */
export const MAX_INVITE_ADDRESS_BYTES = 64
const CHECKSUM_BYTES = 4

export interface InviteFields {
  hiveId: HiveId
  inviter: string
  /** 16 hex characters; names the invite on the wire (the secret never goes there). */
  id: string
  secret: Uint8Array
  /** Milliseconds since the epoch, whole seconds. */
  expiresAt: number
  /** Where the inviter listens, without the /p2p part. */
  addresses: string[]
}

/**
 * A decoded invite. The secret is kept in a private field and left out of JSON and of
 * `util.inspect`, so logging an invite by mistake does not leak it.
 */
export class Invite {
  readonly hiveId: HiveId
  readonly inviter: string
  readonly id: string
  readonly expiresAt: number
  readonly addresses: string[]
  readonly #secret: Uint8Array

  constructor (fields: InviteFields) {
    this.hiveId = fields.hiveId
    this.inviter = fields.inviter
    this.id = fields.id
    this.expiresAt = fields.expiresAt
    this.addresses = fields.addresses
    this.#secret = fields.secret
  }

  /** The secret itself: for the pairing proof only. */
  revealSecret (): Uint8Array {
    return this.#secret
  }

  toJSON (): Omit<InviteFields, 'secret'> {
    return { hiveId: this.hiveId, inviter: this.inviter, id: this.id, expiresAt: this.expiresAt, addresses: this.addresses }
  }

  [inspect.custom] (): string {
    return `Invite ${this.id} to hive ${this.hiveId} from ${this.inviter}, expires ${new Date(this.expiresAt).toISOString()}`
  }
}

export function newInviteId (): string {
  return randomBytes(8).toString('hex')
}

export function newSecret (): Uint8Array {
  return new Uint8Array(randomBytes(SECRET_BYTES))
}

const Payload = z.tuple([
  z.number().int(),
  z.instanceof(Uint8Array).refine(b => b.byteLength === 16),
  z.instanceof(Uint8Array).refine(b => b.byteLength === 32),
  z.instanceof(Uint8Array).refine(b => b.byteLength === 8),
  z.instanceof(Uint8Array).refine(b => b.byteLength === SECRET_BYTES),
  z.number().int().nonnegative(),
  z.array(z.instanceof(Uint8Array).refine(b => b.byteLength <= MAX_INVITE_ADDRESS_BYTES)).max(MAX_INVITE_ADDRESSES)
])

function checksum (payload: Uint8Array): Uint8Array {
  return createHash('sha256').update(payload).digest().subarray(0, CHECKSUM_BYTES)
}

/** The invite as a `hive://join/…` URI (lower case). */
export function encodeInvite (invite: Invite | InviteFields): string {
  const secret = invite instanceof Invite ? invite.revealSecret() : invite.secret
  const hive = base32Decode(invite.hiveId)
  if (hive?.byteLength !== 16) throw new InvalidInviteError(`"${invite.hiveId}" is not a hive id`)
  const addrs = inviteAddresses(invite.addresses).map(a => multiaddr(a).bytes)
  const payload = cborEncode([
    INVITE_VERSION,
    hive,
    publicKeyOf(invite.inviter),
    Buffer.from(invite.id, 'hex'),
    secret,
    Math.ceil(invite.expiresAt / 1000),
    addrs
  ])
  const bytes = new Uint8Array(payload.byteLength + CHECKSUM_BYTES)
  bytes.set(payload)
  bytes.set(checksum(payload), payload.byteLength)
  return INVITE_SCHEME + base32Encode(bytes)
}

/** The form a QR code carries: upper case, for the code's alphanumeric mode. */
export function inviteQrText (uri: string): string {
  return uri.toUpperCase()
}

/**
 * Parses an invite URI (any case, surrounding or embedded white space ignored). Throws
 * InvalidInviteError for text that is not an invite, InviteDamagedError when the checksum
 * does not match.
 */
export function decodeInvite (text: string): Invite {
  const compact = text.replace(/\s+/g, '').toLowerCase()
  if (!compact.startsWith(INVITE_SCHEME)) {
    throw new InvalidInviteError(`not a hive invite: it should start with ${INVITE_SCHEME} (copy the whole line that "hive-node pair" shows)`)
  }
  const bytes = base32Decode(compact.slice(INVITE_SCHEME.length))
  const damaged = (): InviteDamagedError => new InviteDamagedError('the invite is damaged or mistyped (its checksum does not match): copy it again, or scan the QR code')
  if (bytes == null || bytes.byteLength <= CHECKSUM_BYTES) throw damaged()
  const payload = bytes.subarray(0, bytes.byteLength - CHECKSUM_BYTES)
  if (Buffer.compare(checksum(payload), bytes.subarray(bytes.byteLength - CHECKSUM_BYTES)) !== 0) throw damaged()
  let raw: unknown
  try {
    raw = cborDecode(payload, { useMaps: false })
  } catch {
    throw new InvalidInviteError('the invite\'s content cannot be read; it may come from an incompatible version of hive-node')
  }
  if (Array.isArray(raw) && typeof raw[0] === 'number' && raw[0] !== INVITE_VERSION) {
    throw new InvalidInviteError(`the invite has format version ${raw[0]}; this hive-node reads version ${INVITE_VERSION}: update it`)
  }
  const parsed = Payload.safeParse(raw)
  if (!parsed.success) throw new InvalidInviteError('the invite\'s content is not valid; it may come from an incompatible version of hive-node')
  const [, hive, key, id, secret, expires, addrs] = parsed.data
  let inviter: string
  const addresses: string[] = []
  try {
    inviter = peerIdFromPublicKey(publicKeyFromRaw(key)).toString()
    for (const a of addrs) addresses.push(multiaddr(a).toString())
  } catch {
    throw new InvalidInviteError('the invite names an inviter or address that cannot be read')
  }
  if (addresses.some(a => inviteAddressForm(a) === 'invalid') || addresses.filter(a => inviteAddressForm(a) === 'relayed').length > MAX_INVITE_RELAYED_ADDRESSES) {
    throw new InvalidInviteError('the invite names an address that is neither the inviter\'s own nor one through a relay; it may come from an incompatible version of hive-node')
  }
  return new Invite({
    hiveId: base32Encode(hive) as HiveId,
    inviter,
    id: Buffer.from(id).toString('hex'),
    secret: new Uint8Array(secret),
    expiresAt: expires * 1000,
    addresses
  })
}

/**
 * Whether an invite address is direct (no PeerId in it), through a relay (ends with
 * `/p2p/<relay>/p2p-circuit`, no other PeerId, one relay), or neither.
 */
export function inviteAddressForm (address: string): 'direct' | 'relayed' | 'invalid' {
  let parts
  try {
    parts = multiaddr(address).getComponents()
  } catch {
    return 'invalid'
  }
  const peers = parts.filter(c => c.name === 'p2p').length
  const circuits = parts.filter(c => c.name === 'p2p-circuit').length
  if (peers === 0 && circuits === 0) return parts.length > 0 ? 'direct' : 'invalid'
  const n = parts.length
  if (peers === 1 && circuits === 1 && n >= 3 && parts[n - 1]!.name === 'p2p-circuit' && parts[n - 2]!.name === 'p2p') return 'relayed'
  return 'invalid'
}

/**
 * The addresses an invite carries: the inviter's own PeerId taken off the end of each, direct
 * ones first, then at most MAX_INVITE_RELAYED_ADDRESSES through relays, MAX_INVITE_ADDRESSES in
 * all; any other form, or one too long, is left out.
 */
export function inviteAddresses (addresses: string[]): string[] {
  const direct: string[] = []
  const relayed: string[] = []
  for (const address of addresses) {
    let ma
    try {
      ma = multiaddr(address)
    } catch {
      continue
    }
    const parts = ma.getComponents()
    // the inviter's own PeerId at the end: the joiner adds it back
    if (parts.length > 1 && parts[parts.length - 1]!.name === 'p2p' && parts[parts.length - 2]!.name !== 'p2p') parts.pop()
    const text = multiaddr(parts.length > 0 && parts.every(c => c.name !== 'p2p-circuit') ? parts.filter(c => c.name !== 'p2p') : parts).toString()
    const form = inviteAddressForm(text)
    if (form === 'invalid' || multiaddr(text).bytes.byteLength > MAX_INVITE_ADDRESS_BYTES) continue
    const list = form === 'direct' ? direct : relayed
    if (!list.includes(text)) list.push(text)
  }
  const kept = relayed.slice(0, MAX_INVITE_RELAYED_ADDRESSES)
  return [...direct.slice(0, MAX_INVITE_ADDRESSES - kept.length), ...kept]
}
