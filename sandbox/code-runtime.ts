// Code tasks: JavaScript source run through one prebuilt interpreter component.
//
// The interpreter is an ordinary agent (`sandbox/runtimes/js-code/`: its `run` evaluates the
// source it is given, console output as its output) built by the reproducible build, so every
// device that builds it gets the same bytes and digest. It is built once, on first use, and kept
// in a cache directory as `js-code-<key>.wasm`, where the key hashes everything the bytes depend
// on: the interpreter's source and manifest, the hive:agent WIT, the componentize-js version and
// the build's own code. A changed input is a new key, so a stale file is never used; several
// nodes (or test processes) may share one directory, since any two builds of a key are the same
// bytes and each is written by rename.

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { inspectAgentBytes } from './agent.ts'
import { buildAgent } from './build.ts'
import { WIT_SOURCE } from './wit.ts'
import type { AgentDigest } from './agent.ts'

/** What a code task may be: the bound on its source is stated here once. */
export const CODE_LIMITS = {
  /** Longest source a code task may carry, in characters. */
  maxCodeChars: 256 * 1024
} as const

/** The task types the API takes, and the runtimes each may name (`auto` picks for you). */
export const TASK_RUNTIMES = {
  agent: ['auto', 'wasm-component'],
  'code-execution': ['auto', 'js-code']
} as const
export type TaskType = keyof typeof TASK_RUNTIMES
export const TASK_TYPES = Object.keys(TASK_RUNTIMES) as TaskType[]

const SOURCE_DIR = new URL('./runtimes/js-code/', import.meta.url)
/** The files of the build itself: a change to any of them may change the bytes. */
const BUILD_FILES = ['build.ts', 'build-child.ts', 'snapshot.ts', 'wizer-shim.ts', 'manifest.ts']

export type CodeRuntimeState = 'not built' | 'building' | 'ready' | 'failed'

export interface CodeRuntime {
  /** The interpreter component: from memory, the cache, or built now (once, however many ask). */
  component: (options?: { signal?: AbortSignal }) => Promise<Uint8Array>
  /** Where the interpreter is cached, once the key is known. */
  path: () => Promise<string>
  state: () => CodeRuntimeState
  /** The interpreter's digest, once it is held. */
  digest: () => AgentDigest | undefined
  /** The last build's failure, if it failed. */
  error: () => string | undefined
}

/** The cache key: a hash of every input of the interpreter's bytes. */
export async function codeRuntimeKey (): Promise<string> {
  const h = createHash('sha256').update('hive-code-runtime/1')
  const add = (label: string, text: string): void => { h.update(`${label}:${Buffer.byteLength(text)}:`).update(text) }
  add('agent.js', await readFile(new URL('agent.js', SOURCE_DIR), 'utf8'))
  add('manifest.json', await readFile(new URL('manifest.json', SOURCE_DIR), 'utf8'))
  add('wit', WIT_SOURCE)
  const componentize = new URL('../package.json', import.meta.resolve('@bytecodealliance/componentize-js'))
  add('componentize-js', (JSON.parse(await readFile(componentize, 'utf8')) as { version: string }).version)
  for (const f of BUILD_FILES) add(f, await readFile(new URL(f, import.meta.url), 'utf8'))
  return h.digest('hex').slice(0, 16)
}

export function createCodeRuntime (init: { cacheDir: string }): CodeRuntime {
  let bytes: Uint8Array | undefined
  let digest: AgentDigest | undefined
  let pending: Promise<Uint8Array> | undefined
  let state: CodeRuntimeState = 'not built'
  let failure: string | undefined
  let file: Promise<string> | undefined

  const path = async (): Promise<string> => {
    file ??= codeRuntimeKey().then(key => join(init.cacheDir, `js-code-${key}.wasm`))
    return await file
  }

  /** A cached file is used only if it is a js-code agent the checks can read. */
  async function fromCache (target: string): Promise<Uint8Array | undefined> {
    let have: Uint8Array
    try {
      have = new Uint8Array(await readFile(target))
    } catch {
      return undefined
    }
    try {
      if (inspectAgentBytes(have).manifest.name === 'js-code') return have
    } catch {}
    await rm(target, { force: true })
    return undefined
  }

  async function obtain (signal?: AbortSignal): Promise<Uint8Array> {
    const target = await path()
    const cached = await fromCache(target)
    if (cached !== undefined) return cached
    state = 'building'
    await mkdir(init.cacheDir, { recursive: true })
    const tmp = `${target}.${randomBytes(4).toString('hex')}.tmp`
    try {
      await buildAgent(fileURLToPath(SOURCE_DIR), tmp, signal !== undefined ? { signal } : {})
      await rename(tmp, target)
    } finally {
      await rm(tmp, { force: true })
    }
    return new Uint8Array(await readFile(target))
  }

  return {
    async component (options = {}) {
      if (bytes !== undefined) return bytes
      pending ??= obtain(options.signal).then(b => {
        bytes = b
        digest = inspectAgentBytes(b).digest
        state = 'ready'
        failure = undefined
        return b
      }, (err: unknown) => {
        state = 'failed'
        failure = (err as Error).message
        throw err
      }).finally(() => { pending = undefined })
      return await pending
    },
    path,
    state: () => state,
    digest: () => digest,
    error: () => failure
  }
}
