// Agents for the home-LAN scenario, built in well under a second from WAT (no 15 s JS build):
// an echo, and a slow echo whose run time grows with its input, so a test picks how long a task
// runs (long enough for a second task to bid meanwhile, or for its host to be killed mid-run).

import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ECHO, ECHO_BODY, agentWat, watAgent } from '../sandbox/fixtures.ts'

/** Spins `perByte` turns of a loop per byte of input, then echoes its input. */
export function slowEchoWat (perByte: number): string {
  return agentWat(`
    (local $i i64)
    (local $n i64)
    (local.set $n (i64.mul (i64.extend_i32_u (local.get $len)) (i64.const ${perByte})))
    (loop $spin
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $spin (i64.lt_u (local.get $i) (local.get $n))))
    ${ECHO_BODY}`)
}

/** Turns per input byte: about 75 ms of one idle core here (measured), more on a loaded machine. */
export const SLOW_PER_BYTE = 2 ** 26

/** An input for the slow echo that keeps it busy for about `seconds` on an idle core. */
export function slowInput (label: string, seconds: number): string {
  const bytes = Math.max(label.length + 1, Math.round(seconds / 0.075))
  return (label + ' ').padEnd(bytes, '.')
}

export interface LanAgents {
  echo: string
  slow: string
}

/** Writes the scenario's agents as .wasm files into `dir`. */
export async function writeAgents (dir: string): Promise<LanAgents> {
  const echo = join(dir, 'echo.wasm')
  const slow = join(dir, 'slow-echo.wasm')
  await writeFile(echo, await watAgent(ECHO, { name: 'lan-echo', limits: { timeoutMs: 30_000, memoryMiB: 1 } }))
  await writeFile(slow, await watAgent(slowEchoWat(SLOW_PER_BYTE), { name: 'lan-slow-echo', limits: { timeoutMs: 120_000, memoryMiB: 1 } }))
  return { echo, slow }
}
