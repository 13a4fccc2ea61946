// Memory per stream: what a member makes a node hold by opening streams is given back when
// the streams end. A member opens thousands of short streams on a hive protocol; the memory
// still reachable after a garbage collection returns to what it was after a warm-up burst,
// within a bound far below what each stream would leave if anything per stream were kept.

import assert from 'node:assert/strict'
import { queryObjects, setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { after, before, describe, it } from 'node:test'
import { LEDGER_PROTOCOL } from '../../ledger/index.ts'
import { startMesh } from '../helpers/mesh.ts'
import type { Mesh } from '../helpers/mesh.ts'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Bytes still reachable after full collections. */
function retained (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

const WARM_UP = 3_000
const BURST = 5_000
/** Allowed growth over the whole burst: 600 bytes a stream. Keeping each stream's state until its timeout (its timer, signals and handler closure: about 1.3 kB a stream, measured) exceeds it. */
const BOUND_BYTES = 600 * BURST

describe('memory per stream', () => {
  let mesh: Mesh

  before(async () => { mesh = await startMesh(2, { label: 'streams' }) })
  after(async () => { await mesh.stop() })

  it(`${BURST} streams opened by a member leave at most ${BOUND_BYTES / 1e6} MB behind on the node`, async () => {
    const [node, member] = mesh.nodes as [NonNullable<Mesh['nodes'][0]>, NonNullable<Mesh['nodes'][0]>]
    const burst = async (count: number): Promise<void> => {
      for (let i = 0; i < count; i++) {
        const stream = await member.libp2p.dialProtocol(node.peerId, LEDGER_PROTOCOL)
        await stream.close().catch(() => {})
      }
    }
    await burst(WARM_UP)
    // live abort signals: each exchange has one, and it must not outlive the exchange
    const timers = (): number => { gc(); return queryObjects(AbortSignal, { format: 'count' }) }
    const timersStart = timers()
    const start = retained()
    const rssStart = process.memoryUsage().rss
    await burst(BURST)
    const end = retained()
    const timersEnd = timers()
    const rssEnd = process.memoryUsage().rss
    process.stdout.write(`# abort signals ${timersStart} -> ${timersEnd}, retained heap ${(start / 1e6).toFixed(1)} -> ${(end / 1e6).toFixed(1)} MB, rss ${(rssStart / 1e6).toFixed(1)} -> ${(rssEnd / 1e6).toFixed(1)} MB\n`)
    // nothing per stream outlives the stream: no signal (nor the timer behind it) waiting for a timeout
    assert.ok(timersEnd - timersStart < BURST / 50, `${timersEnd - timersStart} more abort signals alive after ${BURST} streams ended`)
    assert.ok(end - start < BOUND_BYTES, `the burst left ${((end - start) / 1e6).toFixed(2)} MB reachable (bound ${BOUND_BYTES / 1e6} MB)`)
    assert.ok(member.libp2p.getConnections(node.peerId).length > 0, 'the member is still connected')
  })
})
