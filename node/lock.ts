// One node per data directory. The lock file holds the owner's pid so a second start can say
// who holds it, instead of failing later on LevelDB's own lock with a less helpful message.

import { open, readFile, unlink } from 'node:fs/promises'
import { NodeAlreadyRunningError } from './errors.ts'

export interface DataDirLock {
  release: () => Promise<void>
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
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
      await handle.writeFile(`${process.pid}\n`)
      await handle.close()
      return {
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
