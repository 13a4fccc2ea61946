// The transpile cache: jco's output for a component, on disk, keyed by the component's digest.
//
// Layout: `<dir>/<digest>/` holds the generated `component.js`, the core modules
// (`component.core*.wasm`), a `package.json` marking the JS as ESM, and `entry.json`, which names
// the jco version and the SHA-256 of every file. An entry is written into a temporary directory
// and renamed into place, so readers never see half an entry, and two processes racing on one
// digest both end up reading one complete entry. On every load the files are hashed and compared
// with `entry.json`; an entry that does not match (a flipped byte, a truncated file, another
// jco version) is removed and rebuilt. Within a process, concurrent requests for one digest share
// one transpile, also across cache objects on one directory (the nodes of a virtual hive).

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { z } from 'zod'
import { AbortError, CompileFailedError } from './errors.ts'
import type { AgentDigest } from './agent.ts'

export interface CompiledFiles {
  /** The generated JS (an ES module exporting `instantiate`). */
  glue: string
  /** Core modules by the name the glue asks for them. */
  modules: Array<{ name: string, bytes: Uint8Array }>
}

export type CacheOutcome = 'disk' | 'transpiled' | 'rebuilt'

export interface CacheEvent {
  type: 'transpiled' | 'hit' | 'corrupt'
  digest: AgentDigest
  reason?: string
}

export interface TranspileCacheInit {
  dir: string
  onEvent?: (event: CacheEvent) => void
}

export interface TranspileCacheStats {
  /** Transpiles run by this cache object (first runs and rebuilds). */
  transpiles: number
  /** Loads answered from disk. */
  hits: number
  /** Entries found corrupt and rebuilt. */
  rebuilds: number
}

export interface TranspileCache {
  get: (digest: AgentDigest, component: Uint8Array, options?: { signal?: AbortSignal }) => Promise<{ files: CompiledFiles, outcome: CacheOutcome }>
  stats: () => TranspileCacheStats
}

const EntrySchema = z.strictObject({
  format: z.literal(1),
  digest: z.string().regex(/^[0-9a-f]{64}$/),
  jco: z.string(),
  files: z.record(z.string().regex(/^component(\.core\d*\.wasm|\.js)$/), z.string().regex(/^[0-9a-f]{64}$/))
})

let jcoVersionMemo: string | undefined
/** The installed jco's version: part of every cache entry, and of the runtime's description. */
export async function jcoVersion (): Promise<string> {
  if (jcoVersionMemo === undefined) {
    const pkg = new URL('../package.json', import.meta.resolve('@bytecodealliance/jco'))
    jcoVersionMemo = (JSON.parse(await readFile(pkg, 'utf8')) as { version: string }).version
  }
  return jcoVersionMemo
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

/** Loads under way in this process, by directory and digest: every cache object on one directory shares them. */
const inflight = new Map<string, Promise<{ files: CompiledFiles, outcome: CacheOutcome }>>()

export function createTranspileCache (init: TranspileCacheInit): TranspileCache {
  const counters: TranspileCacheStats = { transpiles: 0, hits: 0, rebuilds: 0 }

  async function readEntry (digest: AgentDigest): Promise<CompiledFiles | { corrupt: string } | undefined> {
    const dir = join(init.dir, digest)
    let entryText: string
    try {
      entryText = await readFile(join(dir, 'entry.json'), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        // A directory without its entry file is a leftover we may replace.
        try { await readdir(dir); return { corrupt: 'entry.json is missing' } } catch { return undefined }
      }
      throw err
    }
    let entry: z.infer<typeof EntrySchema>
    try {
      entry = EntrySchema.parse(JSON.parse(entryText))
    } catch {
      return { corrupt: 'entry.json is unreadable' }
    }
    if (entry.digest !== digest) return { corrupt: 'entry.json names another digest' }
    if (entry.jco !== await jcoVersion()) return { corrupt: `made by jco ${entry.jco}, this node has ${await jcoVersion()}` }
    let glue: string | undefined
    const modules: CompiledFiles['modules'] = []
    for (const [name, expected] of Object.entries(entry.files)) {
      let bytes: Uint8Array
      try {
        bytes = await readFile(join(dir, name))
      } catch {
        return { corrupt: `${name} is missing` }
      }
      if (sha256(bytes) !== expected) return { corrupt: `${name} does not match its digest` }
      if (name.endsWith('.js')) glue = new TextDecoder().decode(bytes)
      else modules.push({ name, bytes })
    }
    if (glue === undefined) return { corrupt: 'component.js is missing' }
    return { glue, modules }
  }

  async function writeEntry (digest: AgentDigest, files: CompiledFiles): Promise<void> {
    await mkdir(init.dir, { recursive: true })
    const tmp = join(init.dir, `.tmp-${digest.slice(0, 16)}-${randomBytes(6).toString('hex')}`)
    await mkdir(tmp)
    try {
      const all = [{ name: 'component.js', bytes: new TextEncoder().encode(files.glue) }, ...files.modules]
      const digests: Record<string, string> = {}
      for (const f of all) {
        await writeFile(join(tmp, f.name), f.bytes)
        digests[f.name] = sha256(f.bytes)
      }
      await writeFile(join(tmp, 'package.json'), '{ "type": "module" }\n')
      const entry = { format: 1, digest, jco: await jcoVersion(), files: digests }
      await writeFile(join(tmp, 'entry.json'), JSON.stringify(entry, null, 2) + '\n')
      try {
        await rename(tmp, join(init.dir, digest))
      } catch (err) {
        // Another process finished the same entry first; theirs is as good as ours.
        const code = (err as NodeJS.ErrnoException).code
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err
      }
    } finally {
      await rm(tmp, { recursive: true, force: true })
    }
  }

  async function load (digest: AgentDigest, component: Uint8Array, signal?: AbortSignal): Promise<{ files: CompiledFiles, outcome: CacheOutcome }> {
    const found = await readEntry(digest)
    if (found !== undefined && !('corrupt' in found)) {
      counters.hits++
      init.onEvent?.({ type: 'hit', digest })
      return { files: found, outcome: 'disk' }
    }
    let outcome: CacheOutcome = 'transpiled'
    if (found !== undefined) {
      counters.rebuilds++
      outcome = 'rebuilt'
      init.onEvent?.({ type: 'corrupt', digest, reason: found.corrupt })
      await rm(join(init.dir, digest), { recursive: true, force: true })
    }
    const files = await transpileInWorker(component, signal)
    counters.transpiles++
    init.onEvent?.({ type: 'transpiled', digest })
    await writeEntry(digest, files)
    return { files, outcome }
  }

  return {
    async get (digest, component, options = {}) {
      const key = `${init.dir}\0${digest}`
      let p = inflight.get(key)
      if (p === undefined) {
        p = load(digest, component, options.signal).finally(() => inflight.delete(key))
        inflight.set(key, p)
      }
      return await p
    },
    stats: () => ({ ...counters })
  }
}

/** Transpiles in a one-off worker thread so the caller's event loop stays free. */
export async function transpileInWorker (component: Uint8Array, signal?: AbortSignal): Promise<CompiledFiles> {
  if (signal?.aborted === true) throw new AbortError('transpile aborted')
  const worker = new Worker(new URL('./transpile-worker.ts', import.meta.url), {
    workerData: { component },
    env: {},
    execArgv: []
  })
  let rejectRun: (err: Error) => void = () => {}
  const onAbort = (): void => { rejectRun(new AbortError('transpile aborted')) }
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const result = await new Promise<{ ok: boolean, message?: string, files?: Array<{ name: string, bytes: Uint8Array }> }>((resolve, reject) => {
      rejectRun = reject
      worker.once('message', resolve)
      worker.once('error', reject)
      worker.once('exit', code => { reject(new CompileFailedError(`the transpile worker exited (code ${code}) before answering`)) })
    })
    if (!result.ok || result.files === undefined) {
      throw new CompileFailedError(`jco could not transpile the component: ${result.message ?? 'no output'}`)
    }
    const glue = result.files.find(f => f.name === 'component.js')
    if (glue === undefined) throw new CompileFailedError('jco produced no component.js')
    return {
      glue: new TextDecoder().decode(glue.bytes),
      modules: result.files.filter(f => f.name.endsWith('.wasm')).map(f => ({ name: f.name, bytes: new Uint8Array(f.bytes) }))
    }
  } finally {
    signal?.removeEventListener('abort', onAbort)
    await worker.terminate()
  }
}
