// Reading a data directory while no node runs on it: the CLI's answer when the API does not
// answer. It takes the data directory's lock for the time it reads, so a start cannot begin
// meanwhile, and opens the database without creating anything.

import { access } from 'node:fs/promises'
import { dataPaths } from './config.ts'
import { NodeAlreadyRunningError, NodeNotRunningError } from './errors.ts'
import { acquireLock } from './lock.ts'
import type { Level } from 'level'

/** The data directory holds nothing to read: no node ever ran with it. */
export class NothingStoredError extends Error {
  override name = 'NothingStored'
}

/** Runs `fn` against the stopped node's database, holding the data directory's lock meanwhile. */
export async function withStoppedNode<T> (dataDir: string, what: string, fn: (db: Level<string, Uint8Array>) => Promise<T>): Promise<T> {
  const paths = dataPaths(dataDir)
  try {
    await access(paths.db)
  } catch {
    throw new NothingStoredError(`no ${what} in ${dataDir}: no node has run with this data directory (start one with "hive-node start --data ${dataDir}")`)
  }
  let lock
  try {
    lock = await acquireLock(paths.lock, dataDir)
  } catch (err) {
    if (err instanceof NodeAlreadyRunningError) {
      throw new NodeNotRunningError(dataDir, `a node (pid ${err.pid}) holds the data directory but its API does not answer; wait for it to finish starting or stopping and try again`)
    }
    throw err
  }
  // the database code loads only when there is no running node to ask
  const { Level } = await import('level')
  const db = new Level<string, Uint8Array>(paths.db, { keyEncoding: 'utf8', valueEncoding: 'view', createIfMissing: false })
  try {
    await db.open()
    return await fn(db)
  } finally {
    await db.close().catch(() => {})
    await lock.release()
  }
}

/**
 * Device names of the hive's members, from the member list stored in a stopped node's database:
 * what a command shows in place of PeerIds when no node can tell it. Names help the reader only,
 * so a member list that cannot be read gives none.
 */
export async function storedMemberNames (db: Level<string, Uint8Array>): Promise<Map<string, string>> {
  const { MEMBERSHIP_SUBLEVEL, readStoredHive } = await import('../protocol/index.ts')
  const names = new Map<string, string>()
  const hive = await readStoredHive(db.sublevel<string, Uint8Array>(MEMBERSHIP_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' })).catch(() => undefined)
  for (const m of hive?.members.values() ?? []) if (m.name != null) names.set(m.peerId, m.name)
  return names
}
