// Start N real hive nodes in one process on loopback, each with its own temp data directory
// and a labelled logger, and tear them all down afterwards.

import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HiveNode } from '../../node/hive-node.ts'
import { createLogger } from '../../node/logger.ts'
import { DHT_KEEP_ALIVE_TAG } from '../../protocol/index.ts'
import { joinHive } from './hive.ts'
import { waitFor } from './wait.ts'
import type { HiveNodeInit } from '../../node/hive-node.ts'
import type { LogLevel } from '../../node/logger.ts'

export interface MeshOptions {
  /** How the nodes are connected once started. Default 'full'. */
  connect?: 'full' | 'star' | 'none'
  /** Extra init for every node (or per index). */
  init?: Partial<HiveNodeInit> | ((index: number) => Partial<HiveNodeInit>)
  label?: string
}

export interface Mesh {
  nodes: HiveNode[]
  dirs: string[]
  /** Stops every node and removes their data directories. */
  stop: () => Promise<void>
}

const TEST_LOG_LEVEL = (process.env.HIVE_TEST_LOG as LogLevel | undefined) ?? 'error'

export async function makeTempDir (prefix = 'hive-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix))
}

/** Options that make a node suitable for an in-process loopback test. */
export function loopbackInit (dataDir: string, label: string): HiveNodeInit {
  return {
    dataDir,
    listen: ['/ip4/127.0.0.1/tcp/0'],
    apiPort: 0,
    mdns: false,
    name: label,
    addressScope: 'loopback',
    // every in-process node dials from 127.0.0.1: lift the per-host inbound rate limit
    inboundConnectionThreshold: 10_000,
    logger: createLogger(label, { level: TEST_LOG_LEVEL })
  }
}

export async function startNode (label: string, extra: Partial<HiveNodeInit> = {}, dataDir?: string): Promise<HiveNode> {
  const dir = dataDir ?? await makeTempDir()
  const node = await HiveNode.open({ ...loopbackInit(dir, label), ...extra })
  await node.start()
  return node
}

export async function connect (a: HiveNode, b: HiveNode): Promise<void> {
  if (a.libp2p.getConnections(b.peerId).length > 0) return
  await a.libp2p.dial(b.libp2p.getMultiaddrs())
  await waitFor(() => b.libp2p.getConnections(a.peerId).length > 0, { message: `${b.name} sees ${a.name}` })
}

export async function startMesh (count: number, options: MeshOptions = {}): Promise<Mesh> {
  const nodes: HiveNode[] = []
  const dirs: string[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map(async node => { await node.stop() }))
    await Promise.all(dirs.map(async dir => { await rm(dir, { recursive: true, force: true }) }))
  }
  try {
    for (let i = 0; i < count; i++) {
      const dir = await makeTempDir()
      dirs.push(dir)
      const extra = typeof options.init === 'function' ? options.init(i) : options.init ?? {}
      nodes.push(await startNode(`${options.label ?? 'node'}-${i}`, extra, dir))
    }
    await joinHive(nodes)
    const mode = options.connect ?? 'full'
    for (let i = 0; i < nodes.length; i++) {
      for (let j = i + 1; j < nodes.length; j++) {
        const a = nodes[i]
        const b = nodes[j]
        if (a == null || b == null) continue
        if (mode === 'full' || (mode === 'star' && i === 0)) await connect(b, a)
      }
    }
  } catch (err) {
    await stop()
    throw err
  }
  return { nodes, dirs, stop }
}

/** The values `node` holds for `key` in its own DHT store, as hex. */
export async function dhtHeldBy (node: HiveNode, key: Uint8Array): Promise<string[]> {
  const out: string[] = []
  for await (const event of node.libp2p.services.dht.get(key, { signal: AbortSignal.timeout(30_000) })) {
    if (event.name === 'VALUE' && event.from.equals(node.peerId)) out.push(Buffer.from(event.value).toString('hex'))
  }
  return out
}

/**
 * Neither node keeps kad-dht's keep-alive tag on the other. libp2p redials a keep-alive peer as
 * soon as it disconnects, so a test that hangs up to leave two members linked through a relay
 * only would otherwise see a direct link come back, on a loaded machine after its own checks.
 */
export async function dropKeepAlive (a: HiveNode, b: HiveNode): Promise<void> {
  await Promise.all([
    a.libp2p.peerStore.merge(b.peerId, { tags: { [DHT_KEEP_ALIVE_TAG]: undefined } }),
    b.libp2p.peerStore.merge(a.peerId, { tags: { [DHT_KEEP_ALIVE_TAG]: undefined } })
  ])
}
