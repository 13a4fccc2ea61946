// Files only this user may read (the API token, cloud keys): written to a temporary file with
// mode 0600, synced, then renamed over the old one, so a crash leaves the old file or the new
// one, never a half-written or world-readable one.

import { open, rename } from 'node:fs/promises'

export async function writePrivateFile (file: string, body: string): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`
  const handle = await open(tmp, 'w', 0o600)
  try {
    await handle.writeFile(body)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(tmp, file)
}
