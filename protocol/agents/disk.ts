// Agent bytes by digest on disk: the components this device published, fetched by name or ran,
// kept across restarts so it can run them and serve them to the hive when their publisher is gone.
// One file per component, named by its digest; written to a temporary file, synced, then renamed
// into place, so a file under a digest's name is whole. Read back, a file is checked against its
// name: a damaged one is removed and reported missing (a member sends it again).

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { isAgentDigest, agentDigest } from './store.ts'
import type { AgentDigest } from './store.ts'

export interface DiskAgentStore<D extends string = AgentDigest> {
  has: (digest: D) => Promise<boolean>
  /** The bytes, checked against their digest; undefined when absent or damaged (then removed). */
  read: (digest: D) => Promise<Uint8Array | undefined>
  /** Keeps the bytes under their digest (computed here), durably, and returns it. */
  write: (bytes: Uint8Array) => Promise<D>
  list: () => Promise<Array<{ digest: D, size: number }>>
}

export function createDiskAgentStore<D extends string = AgentDigest> (init: { dir: string, onDamaged?: (digest: string) => void }): DiskAgentStore<D> {
  const { dir } = init
  const path = (digest: string): string => join(dir, digest)
  let made: Promise<unknown> | undefined
  const ensureDir = async (): Promise<void> => { made ??= mkdir(dir, { recursive: true, mode: 0o700 }); await made }

  return {
    async has (digest) {
      if (!isAgentDigest(digest)) return false
      return stat(path(digest)).then(s => s.isFile(), () => false)
    },
    async read (digest) {
      if (!isAgentDigest(digest)) return undefined
      let bytes: Buffer
      try {
        bytes = await readFile(path(digest))
      } catch {
        return undefined
      }
      if (createHash('sha256').update(bytes).digest('hex') !== digest) {
        await rm(path(digest), { force: true }).catch(() => {})
        init.onDamaged?.(digest)
        return undefined
      }
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    },
    async write (bytes) {
      await ensureDir()
      const digest = agentDigest(bytes) as string as D
      if (await stat(path(digest)).then(s => s.size === bytes.byteLength, () => false)) return digest
      const tmp = join(dir, `.${digest}.${randomBytes(6).toString('hex')}.tmp`)
      const file = await open(tmp, 'w', 0o600)
      try {
        await file.writeFile(bytes)
        await file.sync()
      } finally {
        await file.close()
      }
      await rename(tmp, path(digest))
      return digest
    },
    async list () {
      const names = await readdir(dir).catch(() => [] as string[])
      const out: Array<{ digest: D, size: number }> = []
      for (const name of names) {
        if (!isAgentDigest(name)) continue
        const s = await stat(path(name)).catch(() => undefined)
        if (s?.isFile() === true) out.push({ digest: name as string as D, size: s.size })
      }
      return out
    }
  }
}
