// Makes nodes one hive: each joins the first node's hive through a fresh invite, as a user
// would with "hive-node pair" and "hive-node join". Nodes outside a common hive refuse each
// other, so tests that need a mesh pair it first.

import { waitFor } from './wait.ts'
import type { HiveNode } from '../../node/hive-node.ts'

export async function joinHive (nodes: HiveNode[]): Promise<void> {
  const [first, ...rest] = nodes
  if (first == null) return
  for (const node of rest) {
    if (node.hive.membership.hiveId === first.hive.membership.hiveId) continue
    await node.hive.pairing.join(first.hive.pairing.createInvite().uri)
  }
  const all = nodes.map(n => n.peerId.toString()).sort().join()
  await waitFor(() => nodes.every(n => n.hive.membership.members().map(m => m.peerId).sort().join() === all), { message: 'every node lists every member' })
}
