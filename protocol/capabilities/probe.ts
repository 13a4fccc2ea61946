// Reading the device: cores, load, memory, power and local LLM models. Each reader fails soft
// (a device that cannot tell says "unknown" or "none"), because capability gossip must keep
// going on any machine.

import { readFile, readdir } from 'node:fs/promises'
import { availableParallelism, freemem, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { httpGet } from '../wire/http-get.ts'
import { readGpus } from './gpu.ts'
import type { Gpu, Power } from './schema.ts'

/** What the probe reads from the device; the service adds name, version and running tasks. */
export interface DeviceReading {
  cores: number
  load: number
  freeMemory: number
  totalMemory: number
  power: Power
  models: string[]
  gpus?: Gpu[]
}

export const DEFAULT_POWER_SUPPLY_DIR = '/sys/class/power_supply'
export const DEFAULT_OLLAMA_URL = 'http://127.0.0.1:11434'

async function readText (path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch {
    return undefined
  }
}

/**
 * Power state from Linux's power-supply class. A readable class directory with no system battery
 * means the device runs on mains (a desktop, a server, a VM). Elsewhere the state is unknown.
 */
export async function readPower (dir = DEFAULT_POWER_SUPPLY_DIR): Promise<Power> {
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch {
    return { state: 'unknown' }
  }
  let mainsKnown = false
  let mainsOnline = false
  const batteries: Array<{ status?: string, capacity?: number }> = []
  for (const entry of entries) {
    const base = join(dir, entry)
    const type = await readText(join(base, 'type'))
    if (type === 'Battery') {
      // a wireless mouse's battery says nothing about this device's power
      if (await readText(join(base, 'scope')) === 'Device') continue
      const capacity = Number(await readText(join(base, 'capacity')))
      batteries.push({
        status: await readText(join(base, 'status')),
        ...(Number.isFinite(capacity) && capacity >= 0 && capacity <= 100 ? { capacity } : {})
      })
    } else if (type === 'Mains' || type === 'USB' || type === 'USB_C' || type === 'USB_PD') {
      const online = await readText(join(base, 'online'))
      if (online != null) {
        mainsKnown = true
        if (online === '1') mainsOnline = true
      }
    }
  }
  if (batteries.length === 0) return { state: 'ac' }
  const capacities = batteries.map(b => b.capacity).filter((c): c is number => c != null)
  const percent = capacities.length > 0 ? Math.round(capacities.reduce((a, b) => a + b, 0) / capacities.length) : undefined
  const withPercent = (state: Power['state']): Power => percent != null ? { state, percent } : { state }
  if (mainsOnline) return withPercent('ac')
  if (batteries.some(b => b.status === 'Discharging')) return withPercent('battery')
  if (batteries.some(b => b.status === 'Charging' || b.status === 'Full' || b.status === 'Not charging')) return withPercent('ac')
  if (mainsKnown) return withPercent('battery')
  return withPercent('unknown')
}

const OllamaTags = z.object({
  models: z.array(z.object({ name: z.string().min(1).max(128) }).loose()).max(1024)
}).loose()

/** Ollama's answer is read up to this; a longer one is not Ollama's. */
const MAX_OLLAMA_ANSWER_BYTES = 1024 * 1024

/**
 * Model names from Ollama's local HTTP API (`GET /api/tags`), or none when nothing answers in
 * time or the answer is not what Ollama sends.
 */
export async function readOllamaModels (baseUrl = DEFAULT_OLLAMA_URL, options: { timeoutMs?: number, signal?: AbortSignal } = {}): Promise<string[]> {
  const signals = [AbortSignal.timeout(options.timeoutMs ?? 500)]
  if (options.signal != null) signals.push(options.signal)
  try {
    const answer = await httpGet(new URL('/api/tags', baseUrl), { signal: AbortSignal.any(signals), maxBytes: MAX_OLLAMA_ANSWER_BYTES })
    if (answer.status < 200 || answer.status >= 300 || answer.text == null) return []
    const parsed = OllamaTags.safeParse(JSON.parse(answer.text))
    if (!parsed.success) return []
    return [...new Set(parsed.data.models.map(m => m.name))].sort().slice(0, 64)
  } catch {
    return []
  }
}

/** The system's own figures in a reading. */
export type SystemFigures = Pick<DeviceReading, 'cores' | 'load' | 'freeMemory' | 'totalMemory'>

function osFigures (): SystemFigures {
  return { cores: availableParallelism(), load: Math.round((loadavg()[0] ?? 0) * 100) / 100, freeMemory: freemem(), totalMemory: totalmem() }
}

export interface DeviceProbeInit {
  powerSupplyDir?: string
  /** Ollama's base URL; null to never ask. */
  ollamaUrl?: string | null
  ollamaTimeoutMs?: number
  /** How long a list of models is reused before asking Ollama again. Default 30 s. */
  ollamaRefreshMs?: number
  /**
   * How long a power reading is reused. Default 2 s: a burst of task changes republishes the
   * report several times a second, and the power supply does not change that fast.
   */
  powerRefreshMs?: number
  /**
   * How long the system's own figures (cores, load average, free and total memory) are reused.
   * Default 100 ms: every member reads them for every bid, several times a second in a burst,
   * and the kernel's load average moves every 5 s.
   */
  systemRefreshMs?: number
  /** Reads the system's own figures; default: the operating system's (a test hands its own). */
  readSystem?: () => SystemFigures
  /** Models held by this node's own engine, listed after Ollama's. */
  localModels?: (options: { signal?: AbortSignal }) => Promise<string[]>
  drmDir?: string
  nvidiaDir?: string
}

export interface DeviceProbe {
  read: (options?: { signal?: AbortSignal }) => Promise<DeviceReading>
}

/** The probe of the device this process runs on. */
export function createDeviceProbe (init: DeviceProbeInit = {}): DeviceProbe {
  const refreshMs = init.ollamaRefreshMs ?? 30_000
  let models: string[] = []
  let modelsAt = -Infinity
  let asking: Promise<string[]> | undefined
  // GPUs do not come and go while a node runs: read them once
  const gpuList = readGpus(init.drmDir, init.nvidiaDir)

  const systemRefreshMs = init.systemRefreshMs ?? 100
  const readSystem = init.readSystem ?? osFigures
  let systemRead: { at: number, reading: SystemFigures } | undefined
  function currentSystem (): SystemFigures {
    const now = performance.now()
    if (systemRead == null || now - systemRead.at >= systemRefreshMs) systemRead = { at: now, reading: readSystem() }
    return systemRead.reading
  }

  const powerRefreshMs = init.powerRefreshMs ?? 2_000
  let powerRead: { at: number, reading: Promise<Power> } | undefined
  async function currentPower (): Promise<Power> {
    if (powerRead == null || Date.now() - powerRead.at >= powerRefreshMs) powerRead = { at: Date.now(), reading: readPower(init.powerSupplyDir) }
    return powerRead.reading
  }

  async function currentModels (signal?: AbortSignal): Promise<string[]> {
    if (init.ollamaUrl === null) return []
    if (Date.now() - modelsAt < refreshMs) return models
    asking ??= readOllamaModels(init.ollamaUrl ?? DEFAULT_OLLAMA_URL, { timeoutMs: init.ollamaTimeoutMs, signal }).then((found) => {
      models = found
      modelsAt = Date.now()
      return found
    }).finally(() => { asking = undefined })
    return asking
  }

  return {
    async read (options = {}) {
      const [power, found, own, gpus] = await Promise.all([
        currentPower(),
        currentModels(options.signal),
        init.localModels != null ? init.localModels(options).catch(() => []) : Promise.resolve([]),
        gpuList
      ])
      return {
        ...currentSystem(),
        power,
        models: [...new Set([...found, ...own])].slice(0, 64),
        gpus
      }
    }
  }
}
