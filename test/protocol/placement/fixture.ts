// A hive of real nodes (each with its sandbox, ledger, contexts, capability gossip and
// placement, as HiveNode wires them), and small real agents built from WAT.

import { ECHO_BODY, agentWat, watAgent } from '../../sandbox/fixtures.ts'
import { SLOW_PER_BYTE, slowEchoWat } from '../../lan/agents.ts'
import { startMesh } from '../../helpers/mesh.ts'
import { waitFor } from '../../helpers/wait.ts'
import type { CapabilityOverrides } from '../../../protocol/capabilities/index.ts'
import type { PlacementInit } from '../../../protocol/placement/index.ts'
import type { HiveNode } from '../../../node/hive-node.ts'
import type { Mesh } from '../../helpers/mesh.ts'

export interface TestHive {
  mesh: Mesh
  nodes: HiveNode[]
  /** Nodes still running. */
  live: () => HiveNode[]
  /** Stops a node at once, as a device that dies or is switched off. */
  kill: (node: HiveNode) => Promise<void>
  stop: () => Promise<void>
}

export async function startHive (size: number, options: { placement?: PlacementInit, overrides?: (index: number) => CapabilityOverrides | undefined } = {}): Promise<TestHive> {
  const mesh = await startMesh(size, {
    label: 'hive',
    init: (i) => ({
      capabilities: { intervalMs: 2_000, expireMs: 7_000, ollamaUrl: null },
      // an auction closes as soon as every live capable member has bid; the window only bounds
      // the wait for one that never does, and must allow for a heavily loaded test machine
      placement: { bidWindowMs: 10_000, leaseMs: 5_000, ...options.placement },
      ...(options.overrides?.(i) != null ? { capabilityOverrides: options.overrides(i) } : {})
    })
  })
  const killed = new Set<HiveNode>()
  const everyone = mesh.nodes.map(n => n.peerId.toString()).sort().join()
  for (const node of mesh.nodes) {
    await waitFor(() => node.capabilities.view().map(e => e.peerId).join() === everyone, { message: `${node.name} sees every member's capabilities`, timeoutMs: 60_000 })
  }
  return {
    mesh,
    nodes: mesh.nodes,
    live: () => mesh.nodes.filter(n => !killed.has(n)),
    kill: async (node) => {
      killed.add(node)
      await node.stop()
    },
    stop: async () => { await mesh.stop() }
  }
}

/** Echoes its input; `name` makes an agent of its own digest. */
export async function echoAgent (name: string): Promise<Uint8Array> {
  return watAgent(agentWat(ECHO_BODY), { name })
}

/** Counts down from `iterations` in a loop, then echoes its input: a run that takes a while. */
export async function spinAgent (name: string, iterations: number): Promise<Uint8Array> {
  return watAgent(agentWat(`
    (local $i i32)
    (local.set $i (i32.const ${iterations}))
    (loop $spin
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $spin (local.get $i)))
    ${ECHO_BODY}`), { name, limits: { timeoutMs: 120_000, memoryMiB: 1 } })
}

/** Spins a fixed number of turns per byte of input, then echoes it: the input sets the run time. */
export async function slowAgent (name: string): Promise<Uint8Array> {
  return watAgent(slowEchoWat(SLOW_PER_BYTE), { name, limits: { timeoutMs: 120_000, memoryMiB: 1 } })
}

export { slowInput } from '../../lan/agents.ts'
