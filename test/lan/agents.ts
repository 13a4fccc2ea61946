// Agents for the home-LAN scenario, built in well under a second from WAT (no 15 s JS build):
// an echo, and a slow echo that spins long enough for its host to be killed mid-run.

import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ECHO, ECHO_BODY, agentWat, watAgent } from '../sandbox/fixtures.ts'

/** Spins `iterations` times, then echoes its input. */
export function slowEchoWat (iterations: number): string {
  return agentWat(`
    (local $i i32)
    (loop $spin
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $spin (i32.lt_u (local.get $i) (i32.const ${iterations}))))
    ${ECHO_BODY}`)
}

export interface LanAgents {
  echo: string
  slow: string
}

/** Writes the scenario's agents as .wasm files into `dir`. */
export async function writeAgents (dir: string, options: { slowIterations?: number } = {}): Promise<LanAgents> {
  const echo = join(dir, 'echo.wasm')
  const slow = join(dir, 'slow-echo.wasm')
  await writeFile(echo, await watAgent(ECHO, { name: 'lan-echo', limits: { timeoutMs: 30_000, memoryMiB: 1 } }))
  // about 2^31 turns of a loop: seconds of work on any host, so a kill lands mid-run
  await writeFile(slow, await watAgent(slowEchoWat(options.slowIterations ?? 0x7fffffff), { name: 'lan-slow-echo', limits: { timeoutMs: 120_000, memoryMiB: 1 } }))
  return { echo, slow }
}
