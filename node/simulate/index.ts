// Simulate: a virtual hive of real nodes in one process, device profiles through capabilities'
// probe, a seeded workload of tasks and faults, and the report of what became of each task.
// The composition of it for `hive-node simulate`; the parts are exported for tests and benches.

import { builtinAgent } from './agents.ts'
import { runSchedule } from './runner.ts'
import { startVirtualHive } from './virtual-hive.ts'
import type { LogLevel } from '../logger.ts'
import type { DeviceProfile } from './devices.ts'
import type { SimulationReport } from './runner.ts'
import type { ScheduledEvent, Workload } from './workload.ts'

export { parseDeviceFile, parseDeviceSpec, profileProbe } from './devices.ts'
export { parseWorkload, schedule, seededRandom } from './workload.ts'
export { formatReport, runSchedule } from './runner.ts'
export { formHive, startVirtualHive } from './virtual-hive.ts'
export type { DeviceProfile } from './devices.ts'
export type { SimulationReport, TaskOutcome } from './runner.ts'
export type { ScheduledEvent, Workload } from './workload.ts'
export type { VirtualHive } from './virtual-hive.ts'

/** How long the hive has to converge (every device's report on every device) before the clock starts. */
const CONVERGE_MS = 120_000

export async function simulate (init: { profiles: DeviceProfile[], workload: Workload, events: ScheduledEvent[], seed: number, logLevel?: LogLevel, signal?: AbortSignal }): Promise<SimulationReport> {
  const agents = { work: await builtinAgent('work'), fail: await builtinAgent('fail') }
  const hive = await startVirtualHive({
    profiles: init.profiles,
    logLevel: init.logLevel ?? 'silent',
    // a simulated device reports every second, so a killed one leaves the view within a few
    init: () => ({ capabilities: { intervalMs: 1_000, expireMs: 4_000 } })
  })
  try {
    const nodes = hive.live()
    const deadline = Date.now() + CONVERGE_MS
    // wait on the hive's own event: each report that arrives re-checks
    await new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (nodes.every(n => n.capabilities.view().length === nodes.length)) { done(); resolve() } else if (Date.now() > deadline) { done(); reject(new Error(`the virtual hive did not converge within ${CONVERGE_MS / 1000} s: not every device heard every other`)) }
      }
      const timer = setInterval(check, 1_000)
      const done = (): void => { clearInterval(timer); for (const n of nodes) n.capabilities.removeEventListener('change', check) }
      for (const n of nodes) n.capabilities.addEventListener('change', check)
      check()
    })
    return await runSchedule(hive, init.workload, init.events, { seed: init.seed, agents, ...(init.signal != null ? { signal: init.signal } : {}) })
  } finally {
    await hive.stop()
  }
}
