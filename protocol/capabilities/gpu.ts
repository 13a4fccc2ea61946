// GPUs as the operating system shows them, without a vendor tool: the DRM class lists every
// card with its PCI vendor (NVIDIA 0x10de, AMD 0x1002, Intel 0x8086); AMD's driver tells its
// VRAM in mem_info_vram_total; NVIDIA's driver names its cards in /proc/driver/nvidia/gpus.
// Fails soft: a device that shows nothing has no GPUs to report.

import { readFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Gpu } from './schema.ts'

export const DEFAULT_DRM_DIR = '/sys/class/drm'
export const DEFAULT_NVIDIA_DIR = '/proc/driver/nvidia/gpus'
export const MAX_GPUS = 8

const VENDORS: Record<string, Gpu['vendor']> = { '0x10de': 'nvidia', '0x1002': 'amd', '0x8086': 'intel' }

async function readText (path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch {
    return undefined
  }
}

async function nvidiaNames (dir: string): Promise<Map<string, string>> {
  const names = new Map<string, string>()
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch {
    return names
  }
  for (const bus of entries.slice(0, 32)) {
    const info = await readText(join(dir, bus, 'information'))
    const model = info?.split('\n').find(l => l.startsWith('Model:'))?.slice('Model:'.length).trim()
    if (model != null && model !== '') names.set(bus.toLowerCase(), model.slice(0, 128))
  }
  return names
}

/** The GPUs of this device, one per DRM card (connectors such as card0-HDMI-A-1 are skipped). */
export async function readGpus (drmDir = DEFAULT_DRM_DIR, nvidiaDir = DEFAULT_NVIDIA_DIR): Promise<Gpu[]> {
  let entries: string[]
  try {
    entries = await readdir(drmDir)
  } catch {
    return []
  }
  const nvidia = await nvidiaNames(nvidiaDir)
  const gpus: Gpu[] = []
  for (const card of entries.filter(e => /^card\d+$/.test(e)).sort()) {
    const device = join(drmDir, card, 'device')
    const vendor = VENDORS[(await readText(join(device, 'vendor')))?.toLowerCase() ?? '']
    if (vendor == null) continue
    const gpu: Gpu = { vendor, name: `${vendor} ${(await readText(join(device, 'device'))) ?? 'gpu'}` }
    if (vendor === 'amd') {
      const vram = Number(await readText(join(device, 'mem_info_vram_total')))
      if (Number.isSafeInteger(vram) && vram > 0) gpu.vramBytes = vram
    }
    if (vendor === 'nvidia') {
      const slot = (await readText(join(device, 'uevent')))?.split('\n').find(l => l.startsWith('PCI_SLOT_NAME='))?.slice('PCI_SLOT_NAME='.length).toLowerCase()
      const name = slot != null ? nvidia.get(slot) : [...nvidia.values()][0]
      if (name != null) gpu.name = name
    }
    gpus.push(gpu)
    if (gpus.length >= MAX_GPUS) break
  }
  return gpus
}
