// CPU time of another process, for benchmarks that run several: on a shared machine the wall
// clock moves with everyone's load, the CPU a task costs much less so.

import { readFileSync } from 'node:fs'

/** Linux reports a process's times in /proc in units of USER_HZ, 100 a second on every architecture. */
const USER_HZ = 100

/**
 * The user plus system CPU time a process has used so far, in ms (10 ms resolution), or NaN where
 * /proc is not there to read it (not Linux) or the process is gone.
 */
export function processCpuMs (pid: number | undefined): number {
  if (pid == null) return NaN
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name, in parentheses, may hold spaces: count fields after its closing one
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / USER_HZ
  } catch {
    return NaN
  }
}
