// A hive of real nodes with capability gossip and placement wired the way the node wires them,
// an executor that runs real WebAssembly, and a ledger that collects what each node records.

import { registerPlacementRecords } from '../../protocol/placement/index.ts'
import { createCapabilities } from '../../protocol/capabilities/index.ts'
import { createPlacement } from '../../protocol/placement/index.ts'
import { startMesh } from '../helpers/mesh.ts'
import { waitFor } from '../helpers/wait.ts'
import type { Capabilities, CapabilityOverrides } from '../../protocol/capabilities/index.ts'
import type { ExecutionOutcome, ExecutionRecord, Executor, Placement, PlacementInit } from '../../protocol/placement/index.ts'
import type { HiveNode } from '../../node/hive-node.ts'
import type { Mesh } from '../helpers/mesh.ts'

const encoder = new TextEncoder()

function leb (n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

/**
 * A core WebAssembly module exporting `run(i32) -> i32` that squares its argument, with a custom
 * section naming it so that each label gives an agent with its own digest.
 */
export function squareAgent (label: string): Uint8Array {
  const name = encoder.encode('hive-test-agent')
  const payload = encoder.encode(label)
  const custom = [...leb(name.length), ...name, ...payload]
  return Uint8Array.from([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    0x01, 0x06, 0x01, 0x60, 0x01, 0x7f, 0x01, 0x7f, // type: (i32) -> i32
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x07, 0x07, 0x01, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00, // export "run"
    0x0a, 0x09, 0x01, 0x07, 0x00, 0x20, 0x00, 0x20, 0x00, 0x6c, 0x0b, // local.get 0; local.get 0; i32.mul
    0x00, ...leb(custom.length), ...custom
  ])
}

/** Held runs: the first run of an input carrying `"hold": "<tag>"` waits until released or aborted. */
export class Hold {
  private readonly startedBy = new Map<string, PromiseWithResolvers<string>>()
  private readonly releases = new Map<string, PromiseWithResolvers<void>>()

  private entry<T> (map: Map<string, PromiseWithResolvers<T>>, tag: string): PromiseWithResolvers<T> {
    let e = map.get(tag)
    if (e == null) {
      e = Promise.withResolvers<T>()
      e.promise.catch(() => {})
      map.set(tag, e)
    }
    return e
  }

  /** Resolves with the PeerId of the node whose run of `tag` is being held. */
  async started (tag: string): Promise<string> {
    return this.entry(this.startedBy, tag).promise
  }

  release (tag: string): void {
    this.entry(this.releases, tag).resolve()
  }

  releaseAll (): void {
    for (const e of this.releases.values()) e.resolve()
  }

  /** Whether this run is the one to hold (the first of its tag); marks the tag taken. */
  take (tag: string, self: string): Promise<void> | undefined {
    const started = this.entry(this.startedBy, tag)
    if (this.taken.has(tag)) return undefined
    this.taken.add(tag)
    started.resolve(self)
    return this.entry(this.releases, tag).promise
  }

  private readonly taken = new Set<string>()
}

export interface RunLog {
  executor: string
  task: string
  input: string
}

/**
 * Runs a core module's `run` on the number in the input (`{"n": 7}` → `"49"`). An input with
 * `"hold": "<tag>"` is held on its first run anywhere until the run is aborted or the hold is
 * released, so a test can stop the node that runs it.
 */
export function wasmExecutor (self: string, runs: RunLog[], hold: Hold): Executor {
  const compiled = new Map<string, WebAssembly.Module>()
  return {
    async run (agent, input, { taskId, signal }): Promise<ExecutionOutcome> {
      runs.push({ executor: self, task: taskId, input })
      let parsed: { n?: unknown, hold?: unknown }
      try {
        parsed = JSON.parse(input) as { n?: unknown, hold?: unknown }
      } catch {
        return { ok: false, error: 'input is not JSON' }
      }
      const key = Buffer.from(agent).toString('base64')
      let module = compiled.get(key)
      if (module == null) {
        module = await WebAssembly.compile(new Uint8Array(agent))
        compiled.set(key, module)
      }
      const instance = await WebAssembly.instantiate(module)
      const run = instance.exports.run as (n: number) => number
      const output = String(run(Number(parsed.n ?? 0)))
      const held = typeof parsed.hold === 'string' ? hold.take(parsed.hold, self) : undefined
      if (held != null) {
        const aborted = Promise.withResolvers<void>()
        signal.addEventListener('abort', () => { aborted.resolve() }, { once: true })
        await Promise.race([aborted.promise, held])
        if (signal.aborted) return { ok: false, error: 'aborted' }
      }
      return { ok: true, output }
    }
  }
}

export interface Member {
  node: HiveNode
  capabilities: Capabilities
  placement: Placement
  records: Array<ExecutionRecord & { executor: string, seq: number }>
  stopped: boolean
}

export interface TestHive {
  mesh: Mesh
  members: Member[]
  /** Every execution any member started, in order. */
  runs: RunLog[]
  hold: Hold
  /** Every ledger record any member appended. */
  ledger: () => Array<ExecutionRecord & { executor: string, seq: number }>
  /** Stops a member's node at once (its network goes as in a crash), then its services. */
  kill: (member: Member) => Promise<void>
  stop: () => Promise<void>
}

export interface HiveOptions {
  /** Nodes with placement. */
  size: number
  /** Extra member nodes that gossip capabilities (with these overrides) but run no placement. */
  silent?: CapabilityOverrides[]
  /** Extra connected nodes that are not members of the hive. */
  outsiders?: number
  placement?: PlacementInit
  overrides?: (index: number) => CapabilityOverrides | undefined
}

export async function startHive (options: HiveOptions): Promise<TestHive> {
  const silent = options.silent ?? []
  const total = options.size + silent.length + (options.outsiders ?? 0)
  const mesh = await startMesh(total, { label: 'hive' })
  const memberCount = options.size + silent.length
  const memberIds = new Set(mesh.nodes.slice(0, memberCount).map(n => n.peerId.toString()))
  const isMember = (peerId: string): boolean => memberIds.has(peerId)
  const runs: RunLog[] = []
  const hold = new Hold()
  const members: Member[] = []
  const extraCaps: Capabilities[] = []
  for (const [i, node] of mesh.nodes.entries()) {
    registerPlacementRecords(node.records)
    // membership installs this hook in the node; here the hive is the first `memberCount` nodes
    if (i < memberCount) node.records.isMember = isMember
  }
  for (const [i, node] of mesh.nodes.slice(0, memberCount).entries()) {
    const self = node.peerId.toString()
    const isPlacer = i < options.size
    const capabilities = createCapabilities({
      name: node.name,
      version: '0.1.0',
      intervalMs: 2_000,
      expireMs: 7_000,
      ollamaUrl: null,
      runtimes: () => isPlacer ? ['wasm-component'] : [],
      ...(isPlacer ? (options.overrides?.(i) != null ? { overrides: options.overrides(i) } : {}) : { overrides: silent[i - options.size] })
    }, { self, pubsub: node.libp2p.services.pubsub, isMember, log: node.log })
    if (!isPlacer) {
      extraCaps.push(capabilities)
      continue
    }
    const member: Member = { node, capabilities, placement: undefined as never, records: [], stopped: false }
    member.placement = createPlacement({
      // an auction closes as soon as every live capable member has bid; the window only bounds
      // the wait for one that never does, and must allow for a heavily loaded test machine
      bidWindowMs: 10_000,
      leaseMs: 5_000,
      ...options.placement
    }, {
      host: node.libp2p,
      pubsub: node.libp2p.services.pubsub,
      dht: node.libp2p.services.dht,
      records: node.records,
      signer: node.signer,
      capabilities,
      executor: wasmExecutor(self, runs, hold),
      ledger: {
        async append (record) {
          const seq = member.records.length
          member.records.push({ ...record, executor: self, seq })
          return { seq }
        }
      },
      gate: node.gate,
      isMember,
      log: node.log
    })
    members.push(member)
  }
  for (const c of [...members.map(m => m.capabilities), ...extraCaps]) await c.start()
  for (const m of members) await m.placement.start()
  const everyone = [...memberIds].sort().join()
  for (const c of [...members.map(m => m.capabilities), ...extraCaps]) {
    await waitFor(() => c.view().map(e => e.peerId).join() === everyone, { message: 'every member in every capability view', timeoutMs: 30_000 })
  }

  const stopMember = async (m: Member): Promise<void> => {
    if (m.stopped) return
    m.stopped = true
    await m.placement.stop()
    await m.capabilities.stop()
  }
  return {
    mesh,
    members,
    runs,
    hold,
    ledger: () => members.flatMap(m => m.records),
    kill: async (m) => {
      await m.node.stop()
      await stopMember(m)
    },
    stop: async () => {
      hold.releaseAll()
      for (const m of members) await stopMember(m)
      for (const c of extraCaps) await c.stop()
      await mesh.stop()
    }
  }
}
