// The pairing commands against running nodes: pair (terminal and PNG), join by invite text and
// by PNG, members and peers with names, remove, the CLI's errors, and no secret in logs or
// status output.

import assert from 'node:assert/strict'
import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { main } from '../../node/cli.ts'
import { createLogger } from '../../node/logger.ts'
import { base32Encode } from '../../protocol/membership/index.ts'
import { decodeInvite } from '../../protocol/pairing/index.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'

interface Run { code: number, out: string, err: string }

async function cli (node: HiveNode, ...args: string[]): Promise<Run> {
  return cliWith({}, node, ...args)
}

async function cliWith (io: { tty?: boolean, env?: NodeJS.ProcessEnv }, node: HiveNode, ...args: string[]): Promise<Run> {
  let out = ''
  let err = ''
  const code = await main(['--data', node.dataDir, ...args], { out: (t) => { out += t }, err: (t) => { err += t }, env: io.env ?? {}, ...(io.tty !== undefined ? { tty: io.tty } : {}) })
  return { code, out, err }
}

describe('pairing commands', () => {
  const nodes: HiveNode[] = []
  const dirs: string[] = []
  const logs: string[] = []
  let a: HiveNode
  let b: HiveNode
  let c: HiveNode
  let usedInvite = ''

  before(async () => {
    for (const label of ['laptop', 'desktop', 'server']) {
      const dir = await makeTempDir()
      dirs.push(dir)
      nodes.push(await startNode(label, { logger: createLogger(label, { level: 'debug', sink: (line) => { logs.push(line) } }) }, dir))
    }
    ;[a, b, c] = nodes as [HiveNode, HiveNode, HiveNode]
  })

  after(async () => {
    await Promise.all(nodes.map(async n => { await n.stop() }))
    await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
  })

  it('pair draws a QR code with the invite text; a bad --ttl is a usage error', async () => {
    const shown = await cli(a, 'pair', '--ttl', '5')
    assert.equal(shown.code, 0, shown.err)
    assert.match(shown.out, /[▀▄█]/)
    assert.match(shown.out, /hive-node join hive:\/\/join\/[a-z2-7]+/)
    assert.doesNotMatch(shown.out, /\x1b\[/, 'no colour codes when stdout is not a terminal')
    const onTerminal = await cliWith({ tty: true }, a, 'pair', '--ttl', '5')
    assert.match(onTerminal.out, /\x1b\[/, 'a terminal gets the colour-drawn code')
    const noColour = await cliWith({ tty: true, env: { NO_COLOR: '1' } }, a, 'pair', '--ttl', '5')
    assert.doesNotMatch(noColour.out, /\x1b\[/, 'NO_COLOR is honoured')
    assert.match(noColour.out, /[▀▄█]/)
    const bad = await cli(a, 'pair', '--ttl', 'soon')
    assert.equal(bad.code, 2)
    assert.match(bad.err, /--ttl takes minutes/)
  })

  it('joins by PNG; both list each other, with names, in members and peers', async () => {
    const png = join(dirs[0]!, 'invite.png')
    const paired = await cli(a, 'pair', '--png', png, '--json')
    assert.equal(paired.code, 0, paired.err)
    const invite = JSON.parse(paired.out) as { uri: string, png: string }
    assert.equal(invite.png, png)
    assert.equal((await stat(png)).mode & 0o777, 0o600)

    const joined = await cli(b, 'join', png, '--json')
    assert.equal(joined.code, 0, joined.err)
    assert.equal((JSON.parse(joined.out) as { hiveId: string }).hiveId, a.hive.membership.hiveId)

    for (const node of [a, b]) {
      const members = JSON.parse((await cli(node, 'members', '--json')).out) as { hiveId: string, members: Array<{ peerId: string, name: string }> }
      assert.equal(members.hiveId, a.hive.membership.hiveId)
      assert.deepEqual(members.members.map(m => m.name).sort(), ['desktop', 'laptop'])
    }
    await waitFor(async () => {
      const peers = JSON.parse((await cli(a, 'peers', '--json')).out) as { peers: Array<{ peerId: string, name?: string, member?: boolean }> }
      return peers.peers.some(p => p.peerId === b.peerId.toString() && p.name === 'desktop' && p.member === true)
    }, { message: 'a lists b by name in peers' })
    const human = await cli(a, 'peers')
    assert.match(human.out, /desktop/)
    // hive topics come with the gate's validator in front of them
    const topic = a.hive.topic('test')
    assert.ok(topic.includes(a.hive.membership.hiveId))
    assert.ok(a.libp2p.services.pubsub.topicValidators.has(topic))
  })

  it('joins by invite text through the second device; a damaged invite fails with a clear message', async () => {
    const invite = JSON.parse((await cli(b, 'pair', '--json')).out) as { uri: string }
    const joined = await cli(c, 'join', invite.uri)
    assert.equal(joined.code, 0, joined.err)
    assert.match(joined.out, /joined hive .* through desktop/)
    assert.match(joined.out, /^\S+ +server \(this device\) +desktop$/m, 'who added it, by name')
    const all = nodes.map(n => n.peerId.toString()).sort().join()
    await waitFor(() => nodes.every(n => n.hive.membership.members().map(m => m.peerId).sort().join() === all), { message: 'all three list all three' })

    usedInvite = invite.uri
    const fresh = JSON.parse((await cli(a, 'pair', '--json')).out) as { uri: string }
    const i = fresh.uri.length - 5
    const damaged = fresh.uri.slice(0, i) + (fresh.uri[i] === 'a' ? 'b' : 'a') + fresh.uri.slice(i + 1)
    const broken = await cli(c, 'join', damaged)
    assert.equal(broken.code, 1)
    assert.match(broken.err, /damaged or mistyped/)
  })

  it('remove revokes a member on every node, which cannot rejoin with its old invite; removing a non-member fails', async () => {
    const removed = await cli(a, 'remove', c.peerId.toString())
    assert.equal(removed.code, 0, removed.err)
    assert.match(removed.out, /removed server/)
    await waitFor(() => !b.hive.membership.isMember(c.peerId), { message: 'b learns c was removed' })
    await waitFor(() => ![a, b].some(n => n.libp2p.getConnections().some(conn => conn.remotePeer.equals(c.peerId) && conn.limits == null && conn.status === 'open')), { message: 'c disconnected' })
    // the removed device cannot come back with the invite it used (told so while b holds
    // another live invite, which lets strangers connect to pair at all)
    assert.equal((await cli(b, 'pair', '--json')).code, 0)
    const reused = await cli(c, 'join', usedInvite, '--force')
    assert.equal(reused.code, 1)
    assert.match(reused.err, /already used/)
    const again = await cli(a, 'remove', c.peerId.toString())
    assert.equal(again.code, 1)
    assert.match(again.err, /is not a member/)
  })

  it('never shows an invite secret in logs or status output', async () => {
    const created = JSON.parse((await cli(a, 'pair', '--json')).out) as { uri: string }
    const secret = decodeInvite(created.uri).revealSecret()
    const forms = [Buffer.from(secret).toString('hex'), Buffer.from(secret).toString('base64'), base32Encode(secret), created.uri.slice('hive://join/'.length)]
    const outputs = [
      ...logs,
      (await cli(a, 'status')).out,
      (await cli(a, 'status', '--json')).out,
      (await cli(a, 'members', '--json')).out,
      JSON.stringify(await (await fetch(`${a.apiUrl}/pairing/invites`)).json())
    ]
    assert.ok(logs.some(l => l.includes('invite')), 'invites were logged (by id)')
    for (const text of outputs) {
      for (const form of forms) assert.ok(!text.toLowerCase().includes(form.toLowerCase()), `secret in: ${text.slice(0, 200)}`)
    }
  })
})
