// A virtual hive of 16 devices on one address (loopback): the hive is formed with the signed
// entries pairing makes, before the nodes start; membership's dialler connects them; and every
// device's capability report reaches every other. gossipsub's penalty for many peers behind one
// IP address graylisted every member once more than 11 shared one, and no report arrived.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { parseDeviceSpec } from '../../node/simulate/devices.ts'
import { startVirtualHive } from '../../node/simulate/virtual-hive.ts'
import { waitFor } from '../helpers/wait.ts'
import type { VirtualHive } from '../../node/simulate/virtual-hive.ts'

const SIZE = 16

describe(`a virtual hive of ${SIZE} devices on one address`, () => {
  let hive: VirtualHive

  before(async () => {
    hive = await startVirtualHive({
      profiles: parseDeviceSpec(`${SIZE - 2}xlaptop,1xdesktop:battery=30,1xserver:gpu`),
      init: () => ({ capabilities: { intervalMs: 2_000, expireMs: 60_000 } })
    })
  })

  after(async () => { await hive?.stop() })

  it('every member lists every member', () => {
    const all = hive.devices.map(d => d.node.peerId.toString()).sort().join()
    for (const { node } of hive.devices) assert.equal(node.hive.membership.members().map(m => m.peerId).sort().join(), all, node.name)
  })

  it('every device hears every other device\'s capabilities, as its profile gives them', async () => {
    const nodes = hive.live()
    await waitFor(() => nodes.every(n => n.capabilities.view().length === SIZE), { timeoutMs: 180_000, intervalMs: 250, message: `every device sees ${SIZE} devices' capabilities` })
    const server = hive.device('server-1').node.peerId.toString()
    const desktop = hive.device('desktop-1').node.peerId.toString()
    for (const node of nodes) {
      const seen = node.capabilities.get(server)?.caps
      assert.equal(seen?.cores, 16, `${node.name} sees the server's 16 cores`)
      assert.equal(seen?.gpus?.length, 1)
      assert.deepEqual(node.capabilities.get(desktop)?.caps.power, { state: 'battery', percent: 30 })
    }
  })
})
