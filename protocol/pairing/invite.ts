// The invite: everything a new device needs to join, as a URI short enough for a QR code.
//
//   hive://join/<base32 of payload || checksum>
//
// payload  = CBOR array [ 1, hive id (16 bytes), inviter's Ed25519 public key (32 bytes),
//            invite id (8 bytes), secret (16 bytes), expiry (seconds since the epoch),
//            [ multiaddr bytes, … ] ]
// checksum = the first 4 bytes of SHA-256(payload)
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
  z.array(z.instanceof(Uint8Array).refine(b => b.byteLength <= 64)).max(MAX_INVITE_ADDRESSES)
])

function checksum (payload: Uint8Array): Uint8Array {
  return createHash('sha256').update(payload).digest().subarray(0, CHECKSUM_BYTES)
}

/** The invite as a `hive://join/…` URI (lower case). */
export function encodeInvite (invite: Invite | InviteFields): string {
  const secret = invite instanceof Invite ? invite.revealSecret() : invite.secret
  const hive = base32Decode(invite.hiveId)
  if (hive?.byteLength !== 16) throw new InvalidInviteError(`"${invite.hiveId}" is not a hive id`)
  const addrs = invite.addresses.slice(0, MAX_INVITE_ADDRESSES).map(a => stripPeer(multiaddr(a)).bytes)
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
  return new Invite({
    hiveId: base32Encode(hive) as HiveId,
    inviter,
    id: Buffer.from(id).toString('hex'),
    secret: new Uint8Array(secret),
    expiresAt: expires * 1000,
    addresses
  })
}

function stripPeer (ma: ReturnType<typeof multiaddr>): ReturnType<typeof multiaddr> {
  const components = ma.getComponents().filter(c => c.name !== 'p2p')
  return multiaddr(components)
}
