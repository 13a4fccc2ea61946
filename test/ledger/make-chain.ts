// Makes a data directory whose node has appended N ledger records, then stops the node.
// Run as a script (`node test/ledger/make-chain.ts DIR N`) so tests that must not import project
// code (the README spec test) can still get a real chain to export.

import { pathToFileURL } from 'node:url'
import { startNode } from '../helpers/mesh.ts'
import { content } from './fixtures.ts'

export async function makeChain (dir: string, n: number): Promise<string> {
  const node = await startNode('chain-maker', {}, dir)
  try {
    for (let i = 0; i < n; i++) await node.ledger.append(content(i, { time: Date.now() }))
    return node.peerId.toString()
  } finally {
    await node.stop()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [dir, count] = process.argv.slice(2)
  if (dir == null || count == null) {
    process.stderr.write('usage: node test/ledger/make-chain.ts DIR N\n')
    process.exit(2)
  }
  process.stdout.write(await makeChain(dir, Number(count)) + '\n')
}
