// A device that meets a non-member (a bootstrap address, mDNS) says so once in its log, and
// status and peers tell the owner how many devices nearby are not in the hive.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { multiaddr } from '@multiformats/multiaddr'
import { after, before, describe, it } from 'node:test'
import { main } from '../../node/cli.ts'
import { createLogger } from '../../node/logger.ts'
import { makeTempDir, startNode } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'

async function cli (node: HiveNode, ...args: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const code = await main(['--data', node.dataDir, ...args], { out: (t) => { out += t }, err: (t) => { err += t }, env: {} })
  return { code, out, err }
}

describe('devices nearby that are not in the hive', () => {
  const dirs: string[] = []
  const nodes: HiveNode[] = []
  const logs: string[] = []
  let home: HiveNode
  let stranger: HiveNode

  before(async () => {
    for (const label of ['home', 'stranger']) {
      const dir = await makeTempDir()
      dirs.push(dir)
      nodes.push(await startNode(label, { logger: createLogger(label, { level: 'info', sink: (line) => { logs.push(line) } }) }, dir))
    }
    ;[home, stranger] = nodes as [HiveNode, HiveNode]
  })

  after(async () => {
    await Promise.all(nodes.map(async n => { await n.stop() }))
    await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
  })

  it('before meeting anyone, status says nothing about strangers', async () => {
    const status = await cli(home, 'status')
    assert.equal(status.code, 0, status.err)
    assert.doesNotMatch(status.out, /not in this hive/)
  })

  it('a refused bootstrap dial is logged once and counted in status and peers', async () => {
    // Dial by address alone, as --bootstrap does: the stranger's key is learnt in the handshake.
    const address = multiaddr(stranger.libp2p.getMultiaddrs()[0]!.toString().replace(/\/p2p\/.*$/, ''))
    for (let i = 0; i < 2; i++) await assert.rejects(home.libp2p.dial(address))
    await waitFor(() => home.hive.strangersNearby() === 1, { message: 'home counts the stranger' })
    const said = logs.filter(l => l.includes('is not in this hive') && l.includes('[home'))
    assert.equal(said.length, 1, `logged once, not per dial: ${said.join(' | ')}`)
    assert.match(said[0]!, /pair it with "hive-node pair"/)

    const status = await cli(home, 'status')
    assert.match(status.out, /1 device nearby is not in this hive: pair it with "hive-node pair"/)
    const json = JSON.parse((await cli(home, 'status', '--json')).out) as { strangersNearby: number }
    assert.equal(json.strangersNearby, 1)
    const peers = await cli(home, 'peers')
    assert.match(peers.out, /1 device nearby is not in this hive/)
    assert.equal((JSON.parse((await cli(home, 'peers', '--json')).out) as { strangersNearby: number }).strangersNearby, 1)
  })
})
