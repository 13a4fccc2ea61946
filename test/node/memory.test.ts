// Memory after a burst of streams, on a real `hive-node start` process: a member opens ten
// thousand streams, one after another, and the node's resident memory comes back near where it
// was before the burst once the burst is over (it grew by tens of MiB during it, and without the
// node's memory trim stayed there on an idle node). The member is a real device paired through
// an invite of the node's own.

import assert from 'node:assert/strict'
import { readFile, rm } from 'node:fs/promises'
import { after, describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { LEDGER_PROTOCOL } from '../../ledger/index.ts'
import { exited, runCli, spawnCli } from '../helpers/cli.ts'
import { makeTempDir } from '../helpers/mesh.ts'
import { startDevice } from '../helpers/pairing-fixture.ts'
import { lineMatching, waitFor } from '../helpers/wait.ts'
import type { Device } from '../helpers/pairing-fixture.ts'

const MiB = 1024 * 1024
const WARM_UP = 1_000
const BURST = 10_000
/** How far above its resident size before the burst the node may settle. */
const SETTLE_BYTES = 24 * MiB

async function rssOf (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024
}

describe('memory after a burst of streams', () => {
  let dir: string | undefined
  let member: Device | undefined
  after(async () => {
    await member?.stop()
    if (dir != null) await rm(dir, { recursive: true, force: true })
  })

  it(`a member's ${BURST} streams leave the node's resident memory within ${SETTLE_BYTES / MiB} MiB of where it was`, async () => {
    dir = await makeTempDir('hive-memory-')
    const child = spawnCli(['--data', dir, 'start', '--name', 'target', '--listen', '/ip4/127.0.0.1/tcp/0', '--api-port', '0', '--no-mdns', '--loopback', '--json'])
    const done = exited(child)
    try {
      const ready = JSON.parse(await lineMatching(child.stdout, l => l.startsWith('{'), { timeoutMs: 60_000, message: 'node ready' })) as { peerId: string, addresses: string[] }
      const invite = await runCli(['--data', dir, 'pair', '--json'])
      assert.equal(invite.code, 0, invite.stderr)
      member = await startDevice('member')
      await member.pairing.join((JSON.parse(invite.stdout) as { uri: string }).uri)
      const target = peerIdFromString(ready.peerId)
      const address = multiaddr(ready.addresses[0]!)
      const open = async (count: number): Promise<void> => {
        for (let i = 0; i < count; i++) {
          const stream = await member!.libp2p.dialProtocol(address, LEDGER_PROTOCOL)
          await stream.close().catch(() => {})
        }
      }
      await open(WARM_UP)
      const start = await rssOf(child.pid!)
      await open(BURST)
      const peak = await rssOf(child.pid!)
      let now = peak
      await waitFor(async () => {
        now = await rssOf(child.pid!)
        return now < start + SETTLE_BYTES
      }, { timeoutMs: 90_000, intervalMs: 500, message: `resident memory back within ${SETTLE_BYTES / MiB} MiB of ${Math.round(start / MiB)} MiB after the burst (now ${Math.round(now / MiB)} MiB)` })
      process.stdout.write(`# rss before ${Math.round(start / MiB)} MiB, after the burst ${Math.round(peak / MiB)} MiB, settled ${Math.round(now / MiB)} MiB\n`)
      // the member is still served
      assert.ok(member.libp2p.getConnections(target).length > 0, 'the member is still connected')
      await open(1)
    } finally {
      child.kill('SIGTERM')
    }
    const result = await done
    assert.equal(result.code, 0, result.stderr)
  })
})
