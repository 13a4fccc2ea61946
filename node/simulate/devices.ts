// Device profiles of a simulated hive: what each virtual device says it is (cores, memory,
// power, GPUs, models, load), from a short spec (`3xlaptop:battery,2xdesktop,1xserver:gpu`) or
// a JSON file. A profile reaches the node through capabilities' probe seam, so everything past
// the reading (gossip, bids, placement) is the code every real device runs.

import { z } from 'zod'
import { UsageError } from '../cli-context.ts'
import type { DeviceProbe, DeviceReading, Gpu, Power } from '../../protocol/index.ts'

export const DEVICE_KINDS = ['laptop', 'desktop', 'server', 'phone'] as const
export type DeviceKind = typeof DEVICE_KINDS[number]

/** The most devices one simulated hive holds (one process holds them all). */
export const MAX_SIMULATED_DEVICES = 64

const MiB = 1024 * 1024

export interface DeviceProfile {
  /** Unique in the hive: `laptop-1`, or what the JSON file names. */
  name: string
  kind: DeviceKind
  cores: number
  memoryMiB: number
  /** Share of memory in use, 0–1. */
  memoryUsed: number
  power: Power
  /** One-minute load average the device reports. */
  load: number
  gpus: Gpu[]
  models: string[]
}

/** What a kind of device is unless the spec says otherwise. */
const PRESETS: Record<DeviceKind, Omit<DeviceProfile, 'name' | 'kind'>> = {
  laptop: { cores: 4, memoryMiB: 8 * 1024, memoryUsed: 0.5, power: { state: 'ac' }, load: 0.5, gpus: [], models: [] },
  desktop: { cores: 8, memoryMiB: 16 * 1024, memoryUsed: 0.4, power: { state: 'ac' }, load: 0.5, gpus: [], models: [] },
  server: { cores: 16, memoryMiB: 64 * 1024, memoryUsed: 0.3, power: { state: 'ac' }, load: 1, gpus: [], models: [] },
  phone: { cores: 8, memoryMiB: 6 * 1024, memoryUsed: 0.6, power: { state: 'battery', percent: 60 }, load: 1, gpus: [], models: [] }
}

const DEFAULT_GPU: Gpu = { vendor: 'nvidia', name: 'nvidia simulated', vramBytes: 24 * 1024 * MiB }

const Name = z.string().regex(/^[a-z0-9][a-z0-9._-]{0,31}$/i, 'a device name: letters, digits, . _ - (at most 32)')
const ProfileFile = z.array(z.strictObject({
  name: Name.optional(),
  kind: z.enum(DEVICE_KINDS),
  count: z.number().int().min(1).max(MAX_SIMULATED_DEVICES).optional(),
  cores: z.number().int().min(1).max(4096).optional(),
  memoryMiB: z.number().int().min(64).max(1 << 24).optional(),
  memoryUsed: z.number().min(0).max(1).optional(),
  power: z.enum(['ac', 'battery', 'unknown']).optional(),
  battery: z.number().min(0).max(100).optional(),
  load: z.number().min(0).max(1024).optional(),
  gpu: z.boolean().optional(),
  models: z.array(z.string().min(1).max(128)).max(16).optional()
})).min(1)

/**
 * Parses `--devices`: comma-separated groups `[N x]KIND[:OPTION]…` where OPTION is `battery`,
 * `battery=PCT`, `gpu`, `cores=N`, `mem=MIB`, `load=X` or `models=a+b`.
 */
export function parseDeviceSpec (spec: string): DeviceProfile[] {
  const groups = spec.split(',').map(s => s.trim()).filter(s => s !== '')
  if (groups.length === 0) throw new UsageError('--devices is empty: give groups such as 3xlaptop:battery,2xdesktop,1xserver:gpu')
  const out: DeviceProfile[] = []
  for (const group of groups) {
    const match = /^(?:(\d+)\s*x\s*)?([a-z]+)((?::[^:]+)*)$/i.exec(group)
    if (match == null) throw new UsageError(`--devices: "${group}" is not [N x]KIND[:OPTION]…, e.g. 3xlaptop:battery`)
    const count = Number(match[1] ?? '1')
    const kind = match[2]!.toLowerCase()
    if (!isKind(kind)) throw new UsageError(`--devices: "${kind}" is not a kind of device; kinds are ${DEVICE_KINDS.join(', ')}`)
    if (!Number.isInteger(count) || count < 1) throw new UsageError(`--devices: "${group}" asks for ${count} devices; give at least 1`)
    const base: Omit<DeviceProfile, 'name'> = { kind, ...structuredClone(PRESETS[kind]) }
    for (const option of (match[3] ?? '').split(':').filter(o => o !== '')) applyOption(base, option, group)
    for (let i = 0; i < count; i++) out.push({ ...structuredClone(base), name: '' })
  }
  return named(out)
}

/** Parses a JSON device file: an array of `{ kind, count?, name?, cores?, memoryMiB?, power?, battery?, load?, gpu?, models? }`. */
export function parseDeviceFile (text: string, path: string): DeviceProfile[] {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new UsageError(`${path} is not JSON (${(err as Error).message}); give an array of devices such as [{ "kind": "laptop", "count": 2, "power": "battery" }]`)
  }
  const parsed = ProfileFile.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new UsageError(`${path}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? 'is not a device list'}; each device is { "kind": ${DEVICE_KINDS.map(k => `"${k}"`).join('|')}, "count"?, "name"?, "cores"?, "memoryMiB"?, "power"?, "battery"?, "load"?, "gpu"?, "models"? }`)
  }
  const out: DeviceProfile[] = []
  for (const d of parsed.data) {
    const base: DeviceProfile = { name: d.name ?? '', kind: d.kind, ...structuredClone(PRESETS[d.kind]) }
    if (d.cores != null) base.cores = d.cores
    if (d.memoryMiB != null) base.memoryMiB = d.memoryMiB
    if (d.memoryUsed != null) base.memoryUsed = d.memoryUsed
    if (d.power != null) base.power = { state: d.power }
    if (d.battery != null) base.power = { state: d.power ?? 'battery', percent: d.battery }
    if (d.load != null) base.load = d.load
    if (d.gpu === true) base.gpus = [DEFAULT_GPU]
    if (d.models != null) base.models = [...d.models]
    const count = d.count ?? 1
    if (count > 1 && d.name != null) throw new UsageError(`${path}: device "${d.name}" has count ${count}; a named device is one device (drop "name" or "count")`)
    for (let i = 0; i < count; i++) out.push(structuredClone(base))
  }
  return named(out)
}

function isKind (kind: string): kind is DeviceKind {
  return (DEVICE_KINDS as readonly string[]).includes(kind)
}

function applyOption (profile: Omit<DeviceProfile, 'name'>, option: string, group: string): void {
  const [key = '', value] = option.split('=', 2)
  const number = (min: number, max: number): number => {
    const n = Number(value)
    if (value == null || !Number.isFinite(n) || n < min || n > max) throw new UsageError(`--devices: "${option}" in "${group}" needs a number from ${min} to ${max}`)
    return n
  }
  switch (key.toLowerCase()) {
    case 'battery': profile.power = value == null ? { state: 'battery', percent: 80 } : { state: 'battery', percent: number(0, 100) }; break
    case 'ac': profile.power = { state: 'ac' }; break
    case 'gpu': profile.gpus = [DEFAULT_GPU]; break
    case 'cores': profile.cores = Math.round(number(1, 4096)); break
    case 'mem': profile.memoryMiB = Math.round(number(64, 1 << 24)); break
    case 'load': profile.load = number(0, 1024); break
    case 'models': profile.models = (value ?? '').split('+').filter(m => m !== '').slice(0, 16); break
    default: throw new UsageError(`--devices: unknown option "${option}" in "${group}"; options are battery[=PCT], ac, gpu, cores=N, mem=MIB, load=X, models=a+b`)
  }
}

/** Gives every unnamed device `KIND-N` (numbered per kind from 1) and refuses duplicate names. */
function named (profiles: DeviceProfile[]): DeviceProfile[] {
  if (profiles.length > MAX_SIMULATED_DEVICES) throw new UsageError(`a simulated hive holds at most ${MAX_SIMULATED_DEVICES} devices (${profiles.length} asked for)`)
  const counts = new Map<string, number>()
  const seen = new Set<string>()
  for (const p of profiles) {
    if (p.name === '') {
      const n = (counts.get(p.kind) ?? 0) + 1
      counts.set(p.kind, n)
      p.name = `${p.kind}-${n}`
    }
    if (seen.has(p.name)) throw new UsageError(`two devices are named "${p.name}"; give each a name of its own`)
    seen.add(p.name)
  }
  return profiles
}

/** What a device with this profile reads about itself: the seam through which capabilities sees it. */
export function profileProbe (profile: DeviceProfile): DeviceProbe {
  const total = profile.memoryMiB * MiB
  return {
    read: async (): Promise<DeviceReading> => ({
      cores: profile.cores,
      load: profile.load,
      freeMemory: Math.round(total * (1 - profile.memoryUsed)),
      totalMemory: total,
      power: { ...profile.power },
      models: [...profile.models],
      gpus: profile.gpus.map(g => ({ ...g }))
    })
  }
}
