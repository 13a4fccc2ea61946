// Builds one JS/TS agent into a component, in a child process of its own: componentize runs a
// blocking tool for many seconds and peaks near a gigabyte, which the caller should neither wait
// on synchronously nor keep afterwards. Talks to the parent over IPC: stage messages, then the
// component written to the path it was given, or an error.

import { createHash } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createRequire, stripTypeScriptTypes } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { SNAPSHOT_EPOCH_NS } from './snapshot.ts'

interface Request { source: string, output: string, witSource: string, worldName: string }

type Componentize = (opts: Record<string, unknown>) => Promise<{ component: Uint8Array }>
interface ComponentizeModule { componentize: Componentize }

function send (msg: unknown): void {
  process.send?.(msg)
}

const COMPONENTIZE = fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js'))

async function componentizeVersion (): Promise<string> {
  return (JSON.parse(await readFile(join(COMPONENTIZE, '..', '..', 'package.json'), 'utf8')) as { version: string }).version
}

/**
 * After the snapshot, componentize-js's splicer replaces the WASI clocks and random imports the
 * build turned off with stubs that answer constants it reads once, at build time, from the
 * preview2 shim it runs on: the wall clock, the monotonic clock and random bytes. Those become
 * the agent's Date and Math.random seed. Here they are the build's fixed epoch and bytes from
 * the seed, set on the shim's objects before the splicer is loaded (it takes the functions once,
 * at load).
 */
async function fixSplicerInputs (seed: string): Promise<void> {
  const fromComponentize = createRequire(COMPONENTIZE)
  const load = async <T>(name: string): Promise<T> => await import(pathToFileURL(fromComponentize.resolve(name)).href) as T
  const clocks = await load<{ wallClock: { now: () => { seconds: bigint, nanoseconds: number } }, monotonicClock: { now: () => bigint } }>('@bytecodealliance/preview2-shim/clocks')
  const { random } = await load<{ random: { getRandomBytes: (len: bigint | number) => Uint8Array } }>('@bytecodealliance/preview2-shim/random')
  let monotonic = 0n
  clocks.monotonicClock.now = () => { monotonic += 1000n; return monotonic }
  clocks.wallClock.now = () => ({ seconds: SNAPSHOT_EPOCH_NS / 1_000_000_000n, nanoseconds: 0 })
  let block = 0
  random.getRandomBytes = (len) => {
    const out = new Uint8Array(Number(len))
    for (let at = 0; at < out.byteLength; at += 32) {
      out.set(createHash('sha256').update(`hive-agent-build-random/1:${seed}:${block++}`).digest().subarray(0, out.byteLength - at), at)
    }
    return out
  }
}

async function loadComponentize (): Promise<ComponentizeModule> {
  return await import(pathToFileURL(COMPONENTIZE).href) as unknown as ComponentizeModule
}

/**
 * The seed the snapshot's random numbers come from: a hash of everything the component is made
 * of (the toolchain's version, the world, the entry module and the agent's code), so the same
 * inputs give the same bytes and different agents different seeds.
 */
function snapshotSeed (parts: { toolchain: string, witSource: string, worldName: string, entry: string, agent: string }): string {
  const h = createHash('sha256').update('hive-agent-build-seed/1')
  for (const part of [parts.toolchain, parts.witSource, parts.worldName, parts.entry, parts.agent]) {
    h.update(String(Buffer.byteLength(part))).update(':').update(part)
  }
  return h.digest('hex').slice(0, 16)
}

/** A launcher componentize runs as its wizer: the shim under this Node, with the seed. */
async function wizerLauncher (dir: string, seed: string): Promise<string> {
  const quote = (s: string): string => `'${s.replaceAll("'", "'\\''")}'`
  const shim = fileURLToPath(new URL('./wizer-shim.ts', import.meta.url))
  const path = join(dir, 'wizer')
  await writeFile(path, `#!/bin/sh\nexec ${quote(process.execPath)} --disable-warning=ExperimentalWarning ${quote(shim)} ${seed} "$@"\n`)
  await chmod(path, 0o755)
  return path
}

// The agent's `run` may throw anything or return a non-string; a componentized function turns
// those into traps. This entry module turns them into the `err` side of the result instead.
const ENTRY = `import * as agent from './agent.js'

function describe (e) {
  if (typeof e === 'string') return e
  if (e instanceof Error) return e.name === 'Error' ? e.message : e.name + ': ' + e.message
  if (e !== null && typeof e === 'object' && 'payload' in e) return String(e.payload)
  return String(e)
}

function check (out) {
  if (typeof out !== 'string') throw 'run must return a string; it returned ' + (out === null ? 'null' : typeof out)
  return out
}

export function run (input) {
  if (typeof agent.run !== 'function') throw 'the agent module does not export a run function'
  let out
  try {
    out = agent.run(input)
  } catch (e) {
    throw describe(e)
  }
  if (out !== null && typeof out === 'object' && typeof out.then === 'function') {
    return out.then(check, e => { throw describe(e) })
  }
  return check(out)
}
`

async function build (req: Request): Promise<Uint8Array> {
  const dir = await mkdtemp(join(tmpdir(), 'hive-agent-build-'))
  try {
    send({ type: 'stage', stage: 'prepare' })
    const text = await readFile(req.source, 'utf8')
    let js = text
    if (/\.(c|m)?ts$/.test(req.source)) {
      try {
        js = stripTypeScriptTypes(text, { mode: 'transform', sourceUrl: req.source })
      } catch (err) {
        throw new Error(`could not strip the TypeScript types of ${req.source}: ${(err as Error).message}`)
      }
    }
    // the sources alone in their directory: the engine sees it as `/`
    const sources = join(dir, 'src')
    await mkdir(sources)
    await writeFile(join(sources, 'agent.js'), js)
    await writeFile(join(sources, 'entry.js'), ENTRY)
    const seed = snapshotSeed({ toolchain: `componentize-js ${await componentizeVersion()}`, witSource: req.witSource, worldName: req.worldName, entry: ENTRY, agent: js })
    await fixSplicerInputs(seed)
    const { componentize } = await loadComponentize()
    send({ type: 'stage', stage: 'componentize' })
    // componentize maps the working directory instead when it holds the source
    process.chdir(sources)
    const { component } = await componentize({
      sourcePath: join(sources, 'entry.js'),
      witWorld: req.witSource,
      worldName: req.worldName,
      wizerBin: await wizerLauncher(dir, seed),
      // No WASI at all: the component imports only the hive's own interfaces.
      disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event']
    })
    return component
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

process.once('message', (req: Request) => {
  build(req).then(async component => {
    await writeFile(req.output, component)
    send({ type: 'done' })
  }, (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err)
    // Also on stderr, in case the parent sees this process end before the message.
    console.error(message)
    process.exitCode = 1
    send({ type: 'error', message })
  }).finally(() => { process.disconnect?.() })
})
