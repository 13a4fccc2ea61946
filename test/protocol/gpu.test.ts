import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CapabilityReport, readGpus } from '../../protocol/capabilities/index.ts'

async function card (drm: string, name: string, files: Record<string, string>): Promise<void> {
  await mkdir(join(drm, name, 'device'), { recursive: true })
  for (const [file, text] of Object.entries(files)) await writeFile(join(drm, name, 'device', file), text + '\n')
}

test('GPUs of the three vendors are read from the DRM class and NVIDIA\'s proc files, connectors and other vendors skipped', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'hive-gpu-'))
  t.after(async () => { await rm(root, { recursive: true, force: true }) })
  const drm = join(root, 'drm')
  const nvidia = join(root, 'nvidia')
  await card(drm, 'card0', { vendor: '0x8086', device: '0x46a6' })
  await card(drm, 'card1', { vendor: '0x1002', device: '0x73bf', mem_info_vram_total: '17163091968' })
  await card(drm, 'card2', { vendor: '0x10de', device: '0x2684', uevent: 'DRIVER=nvidia\nPCI_SLOT_NAME=0000:01:00.0' })
  await card(drm, 'card3', { vendor: '0x1af4', device: '0x1050' })
  await mkdir(join(drm, 'card0-HDMI-A-1'), { recursive: true })
  await mkdir(join(nvidia, '0000:01:00.0'), { recursive: true })
  await writeFile(join(nvidia, '0000:01:00.0', 'information'), 'Model: \t\t NVIDIA GeForce RTX 4090\nIRQ: 1\n')
  const gpus = await readGpus(drm, nvidia)
  assert.deepEqual(gpus, [
    { vendor: 'intel', name: 'intel 0x46a6' },
    { vendor: 'amd', name: 'amd 0x73bf', vramBytes: 17163091968 },
    { vendor: 'nvidia', name: 'NVIDIA GeForce RTX 4090' }
  ])
  assert.deepEqual(await readGpus(join(root, 'missing'), nvidia), [])
  const report = { name: 'a', version: '1', cores: 1, load: 0, running: 0, freeMemory: 1, totalMemory: 1, power: { state: 'ac' }, runtimes: [], models: [], overridden: [] }
  assert.equal(CapabilityReport.safeParse({ ...report, gpus }).success, true)
  assert.equal(CapabilityReport.safeParse({ ...report, gpus: Array.from({ length: 9 }, () => gpus[0]) }).success, false, 'the list is bounded')
})
