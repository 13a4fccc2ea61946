import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createCapabilities, decodeCapabilityMessage } from '../../../protocol/capabilities/index.ts'
import type { CapabilitiesPubSub, DeviceProbe } from '../../../protocol/capabilities/index.ts'

const probe: DeviceProbe = { read: async () => ({ cores: 4, load: 0, freeMemory: 2 ** 30, totalMemory: 2 ** 31, power: { state: 'ac' }, models: [] }) }

function fakePubSub (published: Uint8Array[]): CapabilitiesPubSub {
  return {
    subscribe: () => {},
    unsubscribe: () => {},
    publish: async (_topic, data) => { published.push(data) },
    addEventListener: () => {},
    removeEventListener: () => {}
  }
}

/** A pubsub that keeps what is published and tells when the next message goes out. */
function watchedPubSub (): { published: Uint8Array[], pubsub: CapabilitiesPubSub, sent: { reset: () => void, next: () => Promise<void> } } {
  const published: Uint8Array[] = []
  let out = Promise.withResolvers<void>()
  const pubsub = fakePubSub(published)
  const publish = pubsub.publish
  pubsub.publish = async (topic, data) => { await publish(topic, data); out.resolve() }
  return { published, pubsub, sent: { reset: () => { out = Promise.withResolvers<void>() }, next: async () => { await out.promise } } }
}

describe('capabilities: the running count', () => {
  it('is read from init.running at every report, in place of setRunning', async () => {
    let running = 0
    const caps = createCapabilities({ name: 'n', version: '0', probe, running: () => running }, { self: 'self', pubsub: fakePubSub([]) })
    assert.equal((await caps.local()).running, 0)
    running = 2
    assert.equal((await caps.local()).running, 2)
  })

  it('refresh() publishes a changed count without waiting for the next round', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] })
    const { published, pubsub, sent } = watchedPubSub()
    let running = 0
    const caps = createCapabilities({ name: 'n', version: '0', probe, running: () => running, intervalMs: 60_000, changeDelayMs: 50 }, { self: 'self', pubsub })
    await caps.start()
    assert.equal(published.length, 1, 'the first report goes out at start')
    sent.reset()
    running = 1
    caps.refresh()
    // the change delay coalesces a burst; the round (60 s) is far away
    t.mock.timers.tick(1_000)
    await sent.next()
    assert.equal(published.length, 2, 'the changed count went out')
    await caps.stop()
  })

  it('sends a burst of changes as one report, no sooner than changeIntervalMs after the last', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] })
    const { published, pubsub, sent } = watchedPubSub()
    let running = 0
    const caps = createCapabilities({ name: 'n', version: '0', probe, running: () => running, intervalMs: 60_000, changeDelayMs: 50, changeIntervalMs: 500 }, { self: 'self', pubsub })
    await caps.start()
    assert.equal(published.length, 1)
    sent.reset()
    for (const count of [1, 2, 3, 2]) {
      running = count
      caps.refresh()
      t.mock.timers.tick(60)
    }
    // 240 ms after the first report: the change delay has passed, the interval has not
    await caps.local()
    assert.equal(published.length, 1, 'nothing sent within the interval')
    t.mock.timers.tick(300)
    await sent.next()
    assert.equal(published.length, 2, 'one report for the burst')
    assert.equal(decodeCapabilityMessage(published[1]!).caps.running, 2, 'it carries the latest count')
    await caps.stop()
  })

  it('without init.running, setRunning still sets the count', async () => {
    const caps = createCapabilities({ name: 'n', version: '0', probe }, { self: 'self', pubsub: fakePubSub([]) })
    caps.setRunning(3)
    assert.equal((await caps.local()).running, 3)
  })
})
