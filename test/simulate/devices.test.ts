// Device profiles of a simulated hive: the --devices spec, the JSON file, and the probe through
// which a profile reaches capabilities.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MAX_SIMULATED_DEVICES, parseDeviceFile, parseDeviceSpec, profileProbe } from '../../node/simulate/devices.ts'

describe('simulated devices', () => {
  it('parses 3xlaptop:battery,2xdesktop,1xserver:gpu into six named profiles', () => {
    const devices = parseDeviceSpec('3xlaptop:battery,2xdesktop,1xserver:gpu')
    assert.deepEqual(devices.map(d => d.name), ['laptop-1', 'laptop-2', 'laptop-3', 'desktop-1', 'desktop-2', 'server-1'])
    assert.equal(devices[0]!.power.state, 'battery')
    assert.equal(devices[3]!.power.state, 'ac')
    assert.equal(devices[5]!.gpus.length, 1)
    assert.equal(devices[4]!.gpus.length, 0)
  })

  it('takes options: battery=PCT, cores, mem, load, models', () => {
    const [d] = parseDeviceSpec('laptop:battery=15:cores=2:mem=2048:load=3.5:models=llama+qwen')
    assert.deepEqual(d!.power, { state: 'battery', percent: 15 })
    assert.equal(d!.cores, 2)
    assert.equal(d!.memoryMiB, 2048)
    assert.equal(d!.load, 3.5)
    assert.deepEqual(d!.models, ['llama', 'qwen'])
  })

  it('refuses a wrong spec with a UsageError that says what is accepted', () => {
    for (const [spec, says] of [['', 'empty'], ['3xtoaster', 'kinds are'], ['laptop:turbo', 'options are'], ['laptop:battery=150', 'from 0 to 100'], [`${MAX_SIMULATED_DEVICES + 1}xlaptop`, `at most ${MAX_SIMULATED_DEVICES}`]] as const) {
      assert.throws(() => parseDeviceSpec(spec), (err: Error) => err.name === 'UsageError' && err.message.includes(says), spec)
    }
  })

  it('reads a JSON device file, and refuses duplicate names and malformed entries', () => {
    const devices = parseDeviceFile(JSON.stringify([{ kind: 'laptop', count: 2, battery: 40 }, { kind: 'server', name: 'attic', gpu: true }]), 'devices.json')
    assert.deepEqual(devices.map(d => d.name), ['laptop-1', 'laptop-2', 'attic'])
    assert.deepEqual(devices[1]!.power, { state: 'battery', percent: 40 })
    assert.throws(() => parseDeviceFile('[{"kind":"laptop","name":"a"},{"kind":"desktop","name":"a"}]', 'd.json'), { name: 'UsageError' })
    assert.throws(() => parseDeviceFile('[{"kind":"laptop","cores":-1}]', 'd.json'), { name: 'UsageError' })
    assert.throws(() => parseDeviceFile('not json', 'd.json'), (err: Error) => err.name === 'UsageError' && err.message.includes('d.json is not JSON'))
  })

  it('the probe reads what the profile says', async () => {
    const [d] = parseDeviceSpec('server:gpu:mem=1024')
    const reading = await profileProbe(d!).read()
    assert.equal(reading.cores, 16)
    assert.equal(reading.totalMemory, 1024 * 1024 * 1024)
    assert.ok(reading.freeMemory < reading.totalMemory)
    assert.equal(reading.gpus?.[0]?.vendor, 'nvidia')
  })
})
