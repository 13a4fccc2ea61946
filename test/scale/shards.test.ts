// The scale test's sharded hive, small: 4 devices over 2 worker threads form one hive across the
// shards, and a shard that throws in a phase or exits reaches the main thread as ShardFailedError
// with its name and message, failing what was asked of any shard instead of leaving it waiting.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { startShardedHive } from '../../node/simulate/shards.ts'
import { membershipConverges, scaleProfiles, startScaleHive } from './hive-phases.ts'
import type { ScaleRun } from './hive-phases.ts'

describe('a hive of 4 devices over 2 shards', { timeout: 180_000 }, () => {
  let run: ScaleRun

  before(async () => {
    run = await startScaleHive({ devices: 4, shards: 2, deadline: Date.now() + 120_000 })
  })

  after(async () => {
    await run?.hive.stop()
  })

  it('is one hive across the shards: every device lists all 4, two in each shard', async () => {
    assert.deepEqual(run.hive.shards.map(s => s.indices), [[0, 2], [1, 3]])
    const { views } = await membershipConverges(run, Date.now() + 60_000)
    assert.equal(views.length, 4)
    for (const device of views) assert.equal([...device.members].sort().join(), [...run.peers].sort().join(), device.name)
  })

  it('a shard that throws in a phase fails the wait on another shard, with its name and message', async () => {
    const [first, second] = run.hive.shards
    // shard-0 waits for a fifth member that never comes, with a deadline far off
    const waiting = first!.ask('membership', { total: 5, deadline: Date.now() + 120_000 })
    const t0 = Date.now()
    await assert.rejects(second!.ask('no-such-phase'), (err: Error) => {
      assert.equal(err.name, 'ShardFailed')
      assert.match(err.message, /^shard-1: RangeError: no phase no-such-phase/)
      return true
    })
    await assert.rejects(waiting, (err: Error) => {
      assert.equal(err.name, 'ShardFailed')
      assert.match(err.message, /^shard-1: /)
      return true
    })
    assert.ok(Date.now() - t0 < 10_000, 'the wait on shard-0 ended with shard-1\'s failure, not at its deadline')
    // the hive has failed: what is asked next fails at once with the same error
    await assert.rejects(run.hive.all('gossip'), /shard-1: RangeError/)
  })
})

describe('a shard that exits', { timeout: 120_000 }, () => {
  it('fails the hive\'s start with its name and message', async () => {
    // a heap too small to load a node: the worker dies as one out of memory does
    await assert.rejects(startShardedHive({
      profiles: scaleProfiles(2),
      shards: 2,
      worker: new URL('./hive-shard.ts', import.meta.url),
      resourceLimits: { maxOldGenerationSizeMb: 4, maxYoungGenerationSizeMb: 1 }
    }), (err: Error) => {
      assert.equal(err.name, 'ShardFailed')
      assert.match(err.message, /^shard-[01]: (failed: Error: .*out of memory|exited with code \d+)/i)
      return true
    })
  })
})
