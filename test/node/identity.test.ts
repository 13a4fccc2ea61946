import assert from 'node:assert/strict'
import { rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import * as ed from '@noble/ed25519'
import { HiveNode } from '../../node/hive-node.ts'
import { loadOrCreateIdentity } from '../../node/identity.ts'
import { loopbackInit, makeTempDir } from '../helpers/mesh.ts'

describe('identity', () => {
  const dirs: string[] = []
  after(async () => { await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) })) })

  it('keeps the PeerId across restarts and stores the key with mode 0600', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const first = await HiveNode.open(loopbackInit(dir, 'first'))
    await first.start()
    const id = first.peerId.toString()
    await first.stop()

    const second = await HiveNode.open(loopbackInit(dir, 'second'))
    await second.start()
    try {
      assert.equal(second.peerId.toString(), id)
    } finally {
      await second.stop()
    }
    const mode = (await stat(join(dir, 'identity.key'))).mode & 0o777
    assert.equal(mode, 0o600)
  })

  it('derives the PeerId from the key that signs, usable by @noble/ed25519', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const identity = await loadOrCreateIdentity(join(dir, 'identity.key'))
    const message = new TextEncoder().encode('hello hive')
    const signature = await identity.sign(message)
    assert.equal(await ed.verifyAsync(signature, message, identity.peerId.publicKey!.raw), true)
    assert.deepEqual(await ed.getPublicKeyAsync(identity.seed), identity.publicKey)
  })

  it('refuses a damaged key file instead of replacing it', async () => {
    const dir = await makeTempDir()
    dirs.push(dir)
    const file = join(dir, 'identity.key')
    await writeFile(file, '{"version":1,"type":"Ed25519","seed":"nope"}')
    await assert.rejects(loadOrCreateIdentity(file), { name: 'IdentityError', message: /damaged/ })
  })
})
