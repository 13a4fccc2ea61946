// formHive makes a hive with the entries pairing makes. In a hive formed one by one, a device
// knows only the members added before it, and the earlier of those refuse it until they learn
// of it: as a joiner remembers where its inviter listens, so must each device here, or the
// earliest ones are left with no member that would take their call.

import assert from 'node:assert/strict'
import { rm } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { HiveNode } from '../../node/hive-node.ts'
import { formHive } from '../../node/simulate/virtual-hive.ts'
import { loopbackInit, makeTempDir } from '../helpers/mesh.ts'

describe('formHive', () => {
  it('one by one: each device knows the members added before it, and where its inviter listens', async (t) => {
    const nodes: HiveNode[] = []
    const dirs: string[] = []
    t.after(async () => {
      // opened, never stopped: started here so that stop releases the store and the lock
      for (const node of nodes) {
        await node.start().catch(() => {})
        await node.stop()
      }
      await Promise.all(dirs.map(async d => { await rm(d, { recursive: true, force: true }) }))
    })
    for (let i = 0; i < 3; i++) {
      const dir = await makeTempDir()
      dirs.push(dir)
      nodes.push(await HiveNode.open(loopbackInit(dir, `form-${i}`)))
    }
    const addrs = nodes.map((_, i) => [`/ip4/127.0.0.1/tcp/${40_000 + i}`])
    await formHive(nodes, addrs, 'one-by-one')
    const [first, second, third] = nodes.map(n => n.hive.membership)
    assert.equal(second!.members().length, 2)
    assert.equal(third!.members().length, 3)
    assert.equal(first!.members().length, 3)
    for (const m of [second!, third!]) assert.deepEqual(m.addressesOf(nodes[0]!.peerId.toString()), addrs[0])
  })
})
