// One node per data directory. The lock file holds the owner's pid so a second start can say
// who holds it, instead of failing later on LevelDB's own lock with a less helpful message.

import { open, readFile, rename, unlink } from 'node:fs/promises'
import { NodeAlreadyRunningError } from './errors.ts'

/** What the owner of the lock is doing, written on the lock file's second line. */
export type NodeLifecycle = 'starting' | 'running' | 'stopping'

export interface DataDirLock {
  /** Notes the node's state in the lock file, so `status` can tell while the API is down. */
  setState: (state: NodeLifecycle) => Promise<void>
  release: () => Promise<void>
}

export function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** The owner's pid and state, when a live process holds the lock. */
export async function readLock (file: string): Promise<{ pid: number, state: NodeLifecycle } | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch {
    return undefined
  }
  const [pidLine, stateLine] = text.split('\n')
  const pid = Number.parseInt(pidLine?.trim() ?? '', 10)
  if (!Number.isInteger(pid) || pid <= 0 || !isAlive(pid)) return undefined
  const state = stateLine?.trim()
  return { pid, state: state === 'running' || state === 'stopping' ? state : 'starting' }
}

/** Reads the pid in a lock file, or undefined when there is none or it is unreadable. */
export async function readLockPid (file: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(file, 'utf8')).trim(), 10)
    return Number.isInteger(pid) && pid > 0 ? pid : undefined
  } catch {
    return undefined
  }
}

export async function acquireLock (file: string, dataDir: string): Promise<DataDirLock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600)
      await handle.writeFile(`${process.pid}\nstarting\n`)
      await handle.close()
      return {
        setState: async (state) => {
          // replaced whole (write, then rename), so a reader sees the old line or the new one
          const tmp = `${file}.${process.pid}.tmp`
          const h = await open(tmp, 'w', 0o600)
          try {
            await h.writeFile(`${process.pid}\n${state}\n`)
          } finally {
            await h.close()
          }
          await rename(tmp, file)
        },
        release: async () => {
          if (await readLockPid(file) === process.pid) await unlink(file).catch(() => {})
        }
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    const pid = await readLockPid(file)
    if (pid != null && pid !== process.pid && isAlive(pid)) {
      throw new NodeAlreadyRunningError(pid, dataDir)
    }
    if (pid === process.pid) throw new NodeAlreadyRunningError(pid, dataDir)
    // A stale lock from a node that died without cleaning up.
    await unlink(file).catch(() => {})
  }
  throw new NodeAlreadyRunningError(await readLockPid(file) ?? 0, dataDir)
}
