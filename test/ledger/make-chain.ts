// Makes a data directory whose node has appended N ledger records (all three format versions), then
// stops the node.
// Run as a script (`node test/ledger/make-chain.ts DIR N`) so tests that must not import project
// code (the README spec test) can still get a real chain to export.

import { pathToFileURL } from 'node:url'
import { startNode } from '../helpers/mesh.ts'
import { content } from './fixtures.ts'

export async function makeChain (dir: string, n: number): Promise<string> {
  const node = await startNode('chain-maker', {}, dir)
  try {
    // odd records say what LLM calls their run made (format version 2), even ones made none (version 1);
    // from the sixth on, each also says what http requests its run made (version 3)
    for (let i = 0; i < n; i++) {
      const llm = i % 2 === 1 ? [{ route: 'local' as const, calls: i, tokensIn: 100 * i, tokensOut: 7 * i }, { route: 'cloud' as const, calls: 1, tokensIn: 0xffffffff, tokensOut: 3 }] : []
      const net = i >= 5 ? { requests: i + 3, origins: [{ origin: 'https://api.example.org', requests: i }, { origin: 'http://127.0.0.1:8080', requests: 2 }] } : undefined
      await node.ledger.append({ ...content(i, { time: Date.now() }), llm, ...(net != null ? { net } : {}) })
    }
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
