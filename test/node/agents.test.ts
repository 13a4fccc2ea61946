// Agent contexts backed by the node's replicated context store: what an agent reads of the
// conversation is what the store holds, with each entry's role.

import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { createContextStore } from '../../crdt/index.ts'
import { storeBackedContexts } from '../../node/agents.ts'
import { createSandbox } from '../../sandbox/index.ts'
import { tempLevel } from '../crdt/helpers.ts'
import { CONVERSATION_READER, tempDir, watAgent } from '../sandbox/fixtures.ts'
import type { ContextStore } from '../../crdt/index.ts'
import type { Sandbox } from '../../sandbox/index.ts'
import type { TempLevel } from '../crdt/helpers.ts'

describe('store-backed agent contexts', () => {
  let level: TempLevel
  let store: ContextStore
  let dir: Awaited<ReturnType<typeof tempDir>>
  let sandbox: Sandbox

  before(async () => {
    level = await tempLevel('agents')
    store = createContextStore({ nodeName: 'desk' }, { db: level.db.sublevel('crdt') })
    await store.start()
    dir = await tempDir()
    sandbox = createSandbox({ cacheDir: dir.path, warmWorkers: 1 }, { contexts: storeBackedContexts(store) })
    await sandbox.start()
  })

  after(async () => {
    await sandbox.stop()
    await store.stop()
    await dir.remove()
    await level.destroy()
  })

  it("hands the agent the conversation's last entries with their roles", async () => {
    const ctx = await store.open('meeting')
    await ctx.append('first', { role: 'user' })
    await ctx.append('shall we meet on friday?', { role: 'user' })
    await ctx.append('friday suits me', { role: 'agent' })
    const agent = await watAgent(CONVERSATION_READER, { permissions: ['context:read'] })
    // The fixture reads as many entries as its input has characters.
    assert.equal((await sandbox.run(agent, { input: 'xx', contextId: 'meeting' })).output, '2|user:shall we meet on friday?|agent:friday suits me')
    assert.equal((await sandbox.run(agent, { input: 'x'.repeat(5), contextId: 'meeting' })).output, '3|user:first|user:shall we meet on friday?|agent:friday suits me')
  })
})
