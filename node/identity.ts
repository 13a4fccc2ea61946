// The device identity: one Ed25519 key per data directory, made on first start and kept in
// `identity.key` (mode 0600). The libp2p PeerId derives from it and the ledger signs with the
// same key, so a record's signer is a peer anyone in the hive can name.

import { randomBytes } from 'node:crypto'
import { chmod, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { generateKeyPairFromSeed } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { z } from 'zod'
import { ed25519Sign } from '../ledger/index.ts'
import { IdentityError } from './errors.ts'
import type { Ed25519PrivateKey, PeerId } from '@libp2p/interface'

const IdentityFile = z.object({
  version: z.literal(1),
  type: z.literal('Ed25519'),
  seed: z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'a base64 32-byte seed')
})

export interface Identity {
  readonly peerId: PeerId
  /** The libp2p form of the key, handed to libp2p. */
  readonly privateKey: Ed25519PrivateKey
  /** The 32-byte Ed25519 seed (RFC 8032 private key). */
  readonly seed: Uint8Array
  /** The 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
  /** Signs with the device key (RFC 8032 Ed25519, through node:crypto). */
  sign: (message: Uint8Array) => Promise<Uint8Array>
}

async function fromSeed (seed: Uint8Array): Promise<Identity> {
  const privateKey = await generateKeyPairFromSeed('Ed25519', seed)
  return {
    peerId: peerIdFromPrivateKey(privateKey),
    privateKey,
    seed,
    publicKey: privateKey.publicKey.raw,
    sign: ed25519Sign(seed)
  }
}

/** Loads the identity in `file`, or makes one if the file does not exist. */
export async function loadOrCreateIdentity (file: string): Promise<Identity> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    return createIdentity(file)
  }
  let parsed: z.infer<typeof IdentityFile>
  try {
    parsed = IdentityFile.parse(JSON.parse(text))
  } catch {
    // Never replace a damaged key silently: the device would become another peer.
    throw new IdentityError(`the identity file ${file} is damaged; restore it from a backup, or move it away to give this device a new identity`)
  }
  const mode = (await stat(file)).mode & 0o777
  if (mode !== 0o600) await chmod(file, 0o600)
  return fromSeed(Uint8Array.from(Buffer.from(parsed.seed, 'base64')))
}

async function createIdentity (file: string): Promise<Identity> {
  const seed = new Uint8Array(randomBytes(32))
  const body = JSON.stringify({ version: 1, type: 'Ed25519', seed: Buffer.from(seed).toString('base64') }) + '\n'
  const tmp = `${file}.${process.pid}.tmp`
  const handle = await open(tmp, 'wx', 0o600)
  try {
    await handle.writeFile(body)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    // link-like semantics: do not clobber a key another process wrote meanwhile
    await stat(file)
    await unlink(tmp)
    return await loadOrCreateIdentity(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  await rename(tmp, file)
  return fromSeed(seed)
}
