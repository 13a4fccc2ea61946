import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { peerIdFromString } from '@libp2p/peer-id'
import { MalformedMessageError, SILENT_LOG, serveProtocol } from '../../../protocol/wire/index.ts'
import { eventPromise } from '../../helpers/wait.ts'
import type { InboundContext, ProtocolHost, ServeOptions } from '../../../protocol/wire/index.ts'
import type { Connection, Stream, StreamHandler, StreamHandlerOptions } from '@libp2p/interface'

const PEER = peerIdFromString('12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA')

/** A host that records what serveProtocol registers, and lets the test open inbound streams. */
function fakeHost (): ProtocolHost & { registered: Map<string, { handler: StreamHandler, options?: StreamHandlerOptions }>, hungUp: string[] } {
  const registered = new Map<string, { handler: StreamHandler, options?: StreamHandlerOptions }>()
  const hungUp: string[] = []
  return {
    registered,
    hungUp,
    handle: async (protocol, handler, options) => { registered.set(protocol, { handler, options }) },
    unhandle: async (protocol) => { registered.delete(protocol) },
    dialProtocol: async () => { throw new Error('not used') },
    hangUp: async (peer) => { hungUp.push(peer.toString()) }
  }
}

/** An inbound stream that never sends anything, and remembers whether it was aborted. */
function fakeStream (): Stream & { aborted?: Error } {
  const stream = {
    status: 'open',
    aborted: undefined as Error | undefined,
    async * [Symbol.asyncIterator] () { await new Promise(() => {}) },
    send: () => true,
    onDrain: async () => {},
    close: async () => { stream.status = 'closed' },
    abort: (err: Error) => { stream.aborted = err; stream.status = 'aborted' }
  }
  return stream as unknown as Stream & { aborted?: Error }
}

const connection = { remotePeer: PEER } as unknown as Connection

async function open (host: ReturnType<typeof fakeHost>, protocol: string): Promise<Stream & { aborted?: Error }> {
  const stream = fakeStream()
  const entry = host.registered.get(protocol)
  assert.ok(entry, `${protocol} is registered`)
  await entry.handler(stream, connection)
  return stream
}

describe('serveProtocol options', () => {
  it('registers on limited connections only when asked, with the stream limits given', async () => {
    const host = fakeHost()
    const options: ServeOptions = { log: SILENT_LOG }
    const plain = await serveProtocol(host, '/hive/plain/1.0.0', async () => {}, options)
    const pairing = await serveProtocol(host, '/hive/pair/1.0.0', async () => {}, { ...options, runOnLimitedConnection: true, maxInboundStreams: 4, maxOutboundStreams: 2 })
    assert.equal(host.registered.get('/hive/plain/1.0.0')?.options?.runOnLimitedConnection, false)
    assert.equal(host.registered.get('/hive/plain/1.0.0')?.options?.maxInboundStreams, 32)
    assert.deepEqual(host.registered.get('/hive/pair/1.0.0')?.options, { runOnLimitedConnection: true, maxInboundStreams: 4, maxOutboundStreams: 2 })
    await plain.stop()
    await pairing.stop()
    assert.equal(host.registered.size, 0)
  })

  it('gives a long-lived exchange no deadline, and a one-shot exchange its timeout', async () => {
    const host = fakeHost()
    const signals: Record<string, AbortSignal> = {}
    const exchange = (name: string) => async (_stream: unknown, context: InboundContext): Promise<void> => {
      signals[name] = context.signal
      await new Promise<void>(resolve => { context.signal.addEventListener('abort', () => { resolve() }, { once: true }) })
    }
    const long = await serveProtocol(host, '/hive/long/1.0.0', exchange('long'), { log: SILENT_LOG, timeoutMs: 50, longLived: true })
    const short = await serveProtocol(host, '/hive/short/1.0.0', exchange('short'), { log: SILENT_LOG, timeoutMs: 50 })
    // the long-lived stream opens first: with the same deadline, it would time out first
    const longDone = open(host, '/hive/long/1.0.0')
    const shortDone = open(host, '/hive/short/1.0.0')
    assert.ok(signals.short != null && signals.long != null)
    await eventPromise(signals.short, 'abort', { message: 'the one-shot exchange timed out' })
    await shortDone
    assert.equal(signals.long.aborted, false, 'a long-lived exchange has no deadline')
    await long.stop()
    assert.equal(signals.long.aborted, true, 'stopping the protocol ends a long-lived exchange')
    await longDone
    await short.stop()
  })

  it('hangs up on a peer for the errors the protocol says are its fault', async () => {
    class BadEntryError extends Error { override name = 'BadEntry' }
    const host = fakeHost()
    const faults: string[] = []
    const onPeerFault = (_peer: unknown, err: Error): void => { faults.push(err.name) }
    await serveProtocol(host, '/hive/default/1.0.0', async () => { throw new BadEntryError('not a wire fault by default') }, { log: SILENT_LOG, onPeerFault })
    await serveProtocol(host, '/hive/entries/1.0.0', async () => { throw new BadEntryError('an entry that does not verify') }, {
      log: SILENT_LOG,
      onPeerFault,
      isPeerFault: err => err instanceof BadEntryError || err instanceof MalformedMessageError
    })
    const first = await open(host, '/hive/default/1.0.0')
    assert.equal(first.aborted?.name, 'BadEntry')
    assert.deepEqual(host.hungUp, [])
    const second = await open(host, '/hive/entries/1.0.0')
    assert.equal(second.aborted?.name, 'BadEntry')
    assert.deepEqual(host.hungUp, [PEER.toString()])
    assert.deepEqual(faults, ['BadEntry'])
  })

  it('refuses a peer the gate does not allow before the handler runs', async () => {
    const host = fakeHost()
    let ran = false
    await serveProtocol(host, '/hive/gated/1.0.0', async () => { ran = true }, { log: SILENT_LOG, gate: { allows: () => false } })
    const stream = await open(host, '/hive/gated/1.0.0')
    assert.equal(stream.aborted?.name, 'PeerNotAllowed')
    assert.equal(ran, false)
  })
})
