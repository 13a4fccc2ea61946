// Beyond one LAN: host1 has an address everyone can reach (the "public" segment) and relays for
// its hive (`--relay`); host2, host3 and host4 are on LAN 1, behind a NAT. host4 is paired there,
// goes to sleep, wakes up on LAN 2 (behind another NAT) and must rejoin the hive with no address
// typed: through the relay first, directly once LAN 2's router forwards the hive's port to it.
// See README "Beyond one LAN".
//
// HIVE_LAN_VERBOSE=1 streams every node's output.

import assert from 'node:assert/strict'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe } from 'node:test'
import { waitFor } from '../helpers/wait.ts'
import { lanUnavailable } from './harness.ts'
import { scenario } from './steps.ts'
import { writeAgents } from './agents.ts'
import { createWorld } from './world.ts'
import type { LanAgents } from './agents.ts'
import type { Host } from './harness.ts'
import type { World } from './world.ts'

const VERBOSE = process.env.HIVE_LAN_VERBOSE != null && process.env.HIVE_LAN_VERBOSE !== ''
const WAIT_MS = 120_000
const unavailable = await lanUnavailable()

interface PeerEntry { peerId: string, name?: string, addresses: string[], via?: string, relay?: { peerId: string, name?: string } }
interface ReachJson { relay: boolean, reservedOn: string[], members: Array<{ peerId: string, via?: string, problem?: string }> }
interface RunJson { output: string, executor: string }
interface ListingJson { records: Array<{ seq: number, hash: string }> }
interface AuditReport { chains: Array<{ signer: string, ok: boolean, end: number }> }

describe('beyond one LAN: a hive across two NATs and a member that relays', { skip: unavailable != null ? `beyond-LAN test skipped: ${unavailable}` : false }, () => {
  let world: World | undefined
  let agents: LanAgents | undefined
  const hosts = (): Host[] => world?.hosts ?? []
  const step = scenario((label, err) => {
    process.stderr.write(`\n${label} failed: ${(err as Error).message}\nlast output of each host:\n`)
    for (const host of hosts()) process.stderr.write(`${world?.tail(host, 25) ?? ''}\n`)
  })
  const h = (i: number): Host => world!.host(i)
  const peersOf = async (host: Host): Promise<PeerEntry[]> => (await world!.apiGet<{ peers: PeerEntry[] }>(host, '/peers')).peers
  const reachOf = async (host: Host): Promise<ReachJson> => world!.apiGet<ReachJson>(host, '/reach')
  const until = async <T>(what: string, check: () => Promise<T>, timeoutMs = WAIT_MS): Promise<NonNullable<T>> =>
    waitFor(check, { timeoutMs, intervalMs: 1_000, message: what })
  /** `host` is connected to `other` the way `via` says (and, for a relayed link, through host1). */
  const linked = async (host: Host, other: Host, via: string): Promise<PeerEntry> => {
    const peer = (await peersOf(host)).find(p => p.peerId === other.peerId)
    if (peer?.via !== via) throw new Error(`${host.name} reaches ${other.name} ${peer?.via ?? 'not at all'}, not ${via}`)
    if (via === 'relayed' && peer.relay?.peerId !== h(1).peerId) throw new Error(`${host.name} reaches ${other.name} through ${peer.relay?.peerId ?? '?'}, not host1`)
    return peer
  }
  const edit = async (host: Host, args: string[]): Promise<void> => {
    const result = await world!.cli(host, args)
    if (result.code !== 0) throw new Error(`${host.name}: "hive-node ${args.join(' ')}" exited ${result.code ?? result.signal}: ${result.stderr.trim()}`)
  }

  before(async () => {
    world = await createWorld({
      hosts: 4,
      place: (host) => host.index === 1 ? 'public' : 'lan1',
      startArgs: (host) => host.index === 1 ? ['--relay'] : [],
      onLine: VERBOSE ? (l) => { process.stderr.write(`[${l.host} ${l.stream}] ${l.text}\n`) } : undefined
    })
    const dir = join(world.root, 'agents')
    await mkdir(dir)
    const [, built] = await Promise.all([world.startAll(), writeAgents(dir)])
    agents = built
  }, { timeout: 120_000 })

  after(async () => {
    if (world == null) return
    await world.destroy()
    assert.deepEqual(world.existingNamespaces(), [], 'every namespace of the world is gone')
  }, { timeout: 60_000 })

  step('a', 'host2 joins host1 (the relay) across the NAT; host3 and host4 join host2 on LAN 1', { timeoutMs: 240_000 }, async () => {
    const w = world!
    const viaRelay = await w.cliJson<{ uri: string, hiveId: string }>(h(1), ['pair'])
    await w.cliJson(h(2), ['join', viaRelay.uri])
    for (const joiner of [h(3), h(4)]) {
      const invite = await w.cliJson<{ uri: string }>(h(2), ['pair'])
      await w.cliJson(joiner, ['join', invite.uri])
    }
    await until('every host lists all four members', async () => {
      for (const host of hosts()) {
        const hive = await w.apiGet<{ hiveId: string, members: Array<{ peerId: string }> }>(host, '/hive')
        if (hive.hiveId !== viaRelay.hiveId || hive.members.length !== 4) throw new Error(`${host.name} lists ${hive.members.length} members of ${hive.hiveId}`)
      }
      return true
    })
    // the LAN's hosts reach each other on the LAN, and the relay directly across the NAT
    await until('LAN 1 hosts are linked on the LAN, and to host1 directly', async () => {
      for (const host of [h(2), h(3), h(4)]) {
        for (const other of [h(2), h(3), h(4)]) if (other !== host) await linked(host, other, 'lan')
        await linked(host, h(1), 'direct')
      }
      return true
    })
    await until('each LAN 1 host holds a reservation on host1', async () => {
      for (const host of [h(2), h(3), h(4)]) {
        const reach = await reachOf(host)
        if (!reach.reservedOn.includes(h(1).peerId!)) throw new Error(`${host.name} holds no reservation on host1`)
      }
      return true
    })
  })

  step('b', 'host4 sleeps, wakes up on LAN 2 and rejoins through the relay with no address typed', { timeoutMs: 300_000 }, async (t) => {
    const w = world!
    await w.kill(h(4))
    await w.move(h(4), 'lan2')
    await edit(h(2), ['context', 'append', 'trip', 'written while host4 was away'])
    const started = Date.now()
    await w.start(h(4))
    // nothing typed: host4 dials what it remembers; the relay answers, the others through it
    await until('host4 is linked to host1 directly and to host2 and host3 through host1', async () => {
      await linked(h(4), h(1), 'direct')
      await linked(h(4), h(2), 'relayed')
      await linked(h(4), h(3), 'relayed')
      await linked(h(2), h(4), 'relayed')
      return true
    })
    t.diagnostic(`rejoined through the relay ${((Date.now() - started) / 1000).toFixed(1)} s after waking`)
    // what `peers` prints says so
    const table = await w.cli(h(4), ['peers'])
    assert.match(table.stdout, /host2\s+\S+\s+relay host1/, `host4's peers shows host2 through the relay:\n${table.stdout}`)
    await until('host4 gets the context written while it was away', async () => {
      const ctx = await w.apiGet<{ conversation: Array<{ text: string }> }>(h(4), '/contexts/trip').catch(() => undefined)
      if (ctx?.conversation.some(e => e.text === 'written while host4 was away') !== true) throw new Error('host4 does not hold it yet')
      return true
    })
  })

  step('c', 'through the relay host4 runs placed tasks, its chain replicates, and verify is clean everywhere', { timeoutMs: 300_000 }, async () => {
    const w = world!
    const pinned = await w.cliJson<RunJson>(h(2), ['run', agents!.echo, '--input', 'to host4 through the relay', '--on', 'host4'], { timeoutMs: 150_000 })
    assert.equal(pinned.output, 'to host4 through the relay')
    assert.equal(pinned.executor, h(4).peerId)
    const fromHost4 = await w.cliJson<RunJson>(h(4), ['run', agents!.echo, '--input', 'from host4'], { timeoutMs: 150_000 })
    assert.equal(fromHost4.output, 'from host4')
    const own = (await w.apiGet<ListingJson>(h(4), '/ledger/records')).records
    assert.ok(own.length > 0, 'host4 has records of its own')
    await until('every host holds host4\'s chain', async () => {
      for (const holder of [h(1), h(2), h(3)]) {
        const copy = (await w.apiGet<ListingJson>(holder, `/ledger/records?peer=${h(4).peerId!}`)).records
        if (copy.map(r => r.hash).join() !== own.map(r => r.hash).join()) throw new Error(`${holder.name} holds ${copy.length} of ${own.length} of host4's records`)
      }
      return true
    })
    for (const host of hosts()) {
      const result = await w.cli(host, ['verify', '--json'])
      assert.equal(result.code, 0, `verify on ${host.name}: ${result.stderr} ${result.stdout.slice(0, 1000)}`)
      const report = JSON.parse(result.stdout) as AuditReport
      assert.deepEqual(report.chains.filter(c => !c.ok), [], `${host.name}'s audit is clean`)
    }
    // the doctor says why host2 reaches host4 only through the relay, and what to do
    const doctor = await w.cli(h(2), ['doctor'])
    assert.equal(doctor.code, 0, doctor.stderr)
    assert.match(doctor.stdout, /host4: connected through a relay \(host1\)/)
    assert.match(doctor.stdout, /forward its port/)
  })

  step('d', 'once LAN 2\'s router forwards the hive\'s port to host4, the relayed links become direct', { timeoutMs: 240_000 }, async (t) => {
    const w = world!
    await w.forward('lan2', h(4))
    const started = Date.now()
    await until('host2 and host3 reach host4 directly', async () => {
      await linked(h(2), h(4), 'direct')
      await linked(h(3), h(4), 'direct')
      return true
    })
    t.diagnostic(`upgraded ${((Date.now() - started) / 1000).toFixed(1)} s after the forward`)
    const peer = (await w.cliJson<{ peers: PeerEntry[] }>(h(2), ['peers'])).peers.find(p => p.peerId === h(4).peerId)
    assert.equal(peer?.via, 'direct', '"hive-node peers" on host2 shows host4 as direct')
    assert.ok(peer.addresses.some(a => a.includes(`/ip4/${w.outsideAddress('lan2')}/tcp/`)), `host2 reaches host4 at LAN 2's outside address: ${peer.addresses.join(' ')}`)
    const run = await w.cliJson<RunJson>(h(3), ['run', agents!.echo, '--input', 'direct now', '--on', 'host4'], { timeoutMs: 150_000 })
    assert.equal(run.executor, h(4).peerId)
  })
})
