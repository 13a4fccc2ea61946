// Beyond one LAN, in network namespaces: two home LANs, each behind a router namespace that
// masquerades (NAT, iptables) onto a "public" segment, and hosts on that segment with an
// address everyone can reach. Every address is the test's own (10.231.80-82.x inside these
// namespaces); nothing is routed to or from the machine's own networks.
//
//   LAN 1 (10.231.81.0/24) ── r1 (NAT) ──┐
//                                        ├── public segment (10.231.80.0/24): hosts placed 'public'
//   LAN 2 (10.231.82.0/24) ── r2 (NAT) ──┘
//
// On the public segment every interface holds a /32 with a route to the segment, as a device on
// the Internet does: no peer there counts as on its own network. A host moves between the LANs
// with `move` (its cable re-plugged into the other LAN's switch, its address and route changed,
// as DHCP would); `forward` opens a port on a router to a host behind it.

import { Lan, LanCommandError, P2P_PORT, ip, run, sweepStale } from './harness.ts'
import type { Host, LanOptions } from './harness.ts'

export type Place = 'public' | 'lan1' | 'lan2'

const SUBNETS: Record<Place, string> = { public: '10.231.80', lan1: '10.231.81', lan2: '10.231.82' }
const HOST_IFACE = 'lan0'
const WAN = 'wan0'

export interface WorldOptions extends Omit<LanOptions, 'subnet'> {
  /** Where each host starts. */
  place: (host: Host) => Place
}

async function sh (ns: string, args: string[]): Promise<void> {
  const result = await run('ip', ['netns', 'exec', ns, ...args], { timeoutMs: 15_000 })
  if (result.code !== 0) throw new LanCommandError(`${args.join(' ')} in ${ns} failed (${result.code ?? result.signal}): ${result.stderr.trim()}`)
}

export class World extends Lan {
  private readonly place: (host: Host) => Place
  private readonly where = new Map<Host, Place>()
  private readonly base: string

  constructor (options: WorldOptions) {
    super({ ...options, subnet: SUBNETS.lan1 })
    this.place = options.place
    this.base = this.bridgeNs.slice(0, -'-br'.length)
  }

  private switchNs (place: Place): string {
    return place === 'public' ? `${this.base}-pub` : place === 'lan1' ? `${this.base}-br1` : `${this.base}-br2`
  }

  private routerNs (place: 'lan1' | 'lan2'): string {
    return place === 'lan1' ? `${this.base}-r1` : `${this.base}-r2`
  }

  /** The router's address on the public segment: where the LAN's devices appear from outside. */
  outsideAddress (place: 'lan1' | 'lan2'): string {
    return `${SUBNETS.public}.${place === 'lan1' ? 2 : 3}`
  }

  placeOf (host: Host): Place {
    const place = this.where.get(host)
    if (place == null) throw new LanCommandError(`${host.name} is not placed`)
    return place
  }

  override async create (): Promise<void> {
    await this.prepare()
    // the three switches
    for (const place of ['public', 'lan1', 'lan2'] as const) {
      const ns = this.switchNs(place)
      this.namespaces.push(ns)
      await ip(['netns', 'add', ns])
      await ip(['-n', ns, 'link', 'add', 'sw', 'type', 'bridge', 'mcast_snooping', '0', 'stp_state', '0'])
      await ip(['-n', ns, 'link', 'set', 'sw', 'up'])
    }
    // the routers: one leg on their LAN, one on the public segment, masquerading out of it
    for (const place of ['lan1', 'lan2'] as const) {
      const ns = this.routerNs(place)
      this.namespaces.push(ns)
      await ip(['netns', 'add', ns])
      await this.cable(ns, this.switchNs(place), `${place === 'lan1' ? 'r1' : 'r2'}l`, HOST_IFACE)
      await this.cable(ns, this.switchNs('public'), `${place === 'lan1' ? 'r1' : 'r2'}w`, WAN)
      await ip(['-n', ns, 'link', 'set', 'lo', 'up'])
      await ip(['-n', ns, 'addr', 'add', `${SUBNETS[place]}.1/24`, 'dev', HOST_IFACE])
      await ip(['-n', ns, 'addr', 'add', `${this.outsideAddress(place)}/32`, 'dev', WAN])
      await ip(['-n', ns, 'route', 'add', `${SUBNETS.public}.0/24`, 'dev', WAN])
      await sh(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'])
      await sh(ns, ['iptables', '-t', 'nat', '-A', 'POSTROUTING', '-o', WAN, '-j', 'MASQUERADE'])
    }
    for (const host of this.hosts) {
      this.namespaces.push(host.ns)
      await ip(['netns', 'add', host.ns])
      await ip(['-n', host.ns, 'link', 'set', 'lo', 'up'])
      const place = this.place(host)
      await this.cable(host.ns, this.switchNs(place), host.port, HOST_IFACE)
      await this.address(host, place)
    }
  }

  /** Connects namespace `ns` (interface `iface`) to a switch (its port named `port`). */
  private async cable (ns: string, sw: string, port: string, iface: string): Promise<void> {
    await ip(['-n', sw, 'link', 'add', port, 'type', 'veth', 'peer', 'name', iface, 'netns', ns])
    await ip(['-n', sw, 'link', 'set', port, 'master', 'sw'])
    await ip(['-n', sw, 'link', 'set', port, 'up'])
    await ip(['-n', ns, 'link', 'set', iface, 'multicast', 'on', 'up'])
  }

  /** Gives a host its address and routes on `place`, as DHCP would. */
  private async address (host: Host, place: Place): Promise<void> {
    await ip(['-n', host.ns, 'addr', 'flush', 'dev', HOST_IFACE])
    await ip(['-n', host.ns, 'route', 'flush', 'dev', HOST_IFACE]).catch(() => '')
    host.address = `${SUBNETS[place]}.${10 + host.index}`
    if (place === 'public') {
      await ip(['-n', host.ns, 'addr', 'add', `${host.address}/32`, 'dev', HOST_IFACE])
      await ip(['-n', host.ns, 'route', 'add', `${SUBNETS.public}.0/24`, 'dev', HOST_IFACE])
    } else {
      await ip(['-n', host.ns, 'addr', 'add', `${host.address}/24`, 'dev', HOST_IFACE])
      await ip(['-n', host.ns, 'route', 'add', 'default', 'via', `${SUBNETS[place]}.1`])
    }
    await ip(['-n', host.ns, 'route', 'add', '224.0.0.0/4', 'dev', HOST_IFACE])
    this.where.set(host, place)
  }

  /** Unplugs the host's cable from its LAN's switch, plugs it into the other's, and readdresses it. */
  async move (host: Host, to: 'lan1' | 'lan2'): Promise<void> {
    const from = this.placeOf(host)
    if (from === to) return
    if (from === 'public') throw new LanCommandError('a public host stays where it is')
    await ip(['-n', this.switchNs(from), 'link', 'set', host.port, 'netns', this.switchNs(to)])
    await ip(['-n', this.switchNs(to), 'link', 'set', host.port, 'master', 'sw'])
    await ip(['-n', this.switchNs(to), 'link', 'set', host.port, 'up'])
    await this.address(host, to)
  }

  /** Forwards the hive's port on a LAN's router to a host behind it (a port forward set up by its owner). */
  async forward (place: 'lan1' | 'lan2', host: Host): Promise<void> {
    await sh(this.routerNs(place), ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-i', WAN, '-p', 'tcp', '--dport', String(P2P_PORT), '-j', 'DNAT', '--to-destination', `${host.address}:${P2P_PORT}`])
  }
}

/** Sweeps what killed runs left, then builds the world. */
export async function createWorld (options: WorldOptions): Promise<World> {
  sweepStale()
  const world = new World(options)
  try {
    await world.create()
  } catch (err) {
    await world.destroy()
    throw err
  }
  return world
}
