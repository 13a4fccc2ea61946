// Building JS/TS agents into components, writing a ready-to-build example, and inspecting a
// built agent.
//
// A source is one ES module (JS, or TS whose types are stripped) exporting `run(input)` and
// importing only `hive:agent/*` interfaces; the manifest is a `manifest.json` beside it. The
// build runs componentize-js with every WASI feature off, so the component imports nothing but
// the hive's own interfaces, then checks it against the manifest and embeds the manifest.

import { fork } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { access, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { checkImports, checkWorld, inspectAgentBytes } from './agent.ts'
import { readComponent } from './binary.ts'
import { AbortError, BuildFailedError, TargetExistsError } from './errors.ts'
import { embedManifest, parseManifestJson } from './manifest.ts'
import { HOST_FUNCTIONS, WIT_PACKAGE, WIT_VERSION, WORLD_NAME, heldPermissions, importName, narrowWit } from './wit.ts'
import type { UsedFunctions } from './wit.ts'
import type { AgentDigest, AgentInfo } from './agent.ts'
import type { Manifest } from './manifest.ts'

export type BuildStage = 'prepare' | 'componentize' | 'check' | 'write' | 'done'

export interface BuildProgress {
  stage: BuildStage
  /** 0..1; during componentize an estimate from elapsed time (it reports nothing itself). */
  fraction: number
  elapsedMs: number
  message: string
}

export interface BuildOptions {
  /** The manifest to embed (default: `manifest.json` beside the source). */
  manifestPath?: string
  onProgress?: (progress: BuildProgress) => void
  signal?: AbortSignal
}

export interface BuildResult {
  out: string
  source: string
  digest: AgentDigest
  size: number
  manifest: Manifest
  durationMs: number
}

const SOURCE_NAMES = ['agent.ts', 'agent.js', 'index.ts', 'index.js']
/** What componentize usually takes here; only shapes the progress estimate. */
const EXPECTED_COMPONENTIZE_MS = 15_000

async function exists (path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}

/** Finds the source module and manifest for SRC (a file, or a directory holding agent.ts/js). */
async function resolveSource (src: string, manifestPath?: string): Promise<{ source: string, manifestFile: string }> {
  const abs = resolve(src)
  let st
  try {
    st = await stat(abs)
  } catch {
    throw new BuildFailedError(`no such file or directory: ${src}`)
  }
  let source = abs
  if (st.isDirectory()) {
    const found = await Promise.all(SOURCE_NAMES.map(async n => await exists(join(abs, n)) ? join(abs, n) : undefined))
    const first = found.find(f => f !== undefined)
    if (first === undefined) throw new BuildFailedError(`${src} holds none of ${SOURCE_NAMES.join(', ')}; name the source file, or create an agent with \`hive-node agent new DIR\``)
    source = first
  } else if (!/\.(m?js|c?js|m?ts|c?ts)$/.test(abs)) {
    throw new BuildFailedError(`${src} is not a .js or .ts file`)
  }
  const manifestFile = manifestPath !== undefined ? resolve(manifestPath) : join(dirname(source), 'manifest.json')
  if (!await exists(manifestFile)) {
    throw new BuildFailedError(`no manifest at ${manifestFile}; write one (\`hive-node agent new DIR\` makes an example) or pass --manifest FILE`)
  }
  return { source, manifestFile }
}

/** Builds the agent at `src` into a component with its manifest embedded, written to `out`. */
export async function buildAgent (src: string, out: string, options: BuildOptions = {}): Promise<BuildResult> {
  const started = performance.now()
  const elapsed = (): number => performance.now() - started
  const progress = (stage: BuildStage, fraction: number, message: string): void => {
    options.onProgress?.({ stage, fraction, elapsedMs: elapsed(), message })
  }
  if (options.signal?.aborted === true) throw new AbortError('the build was aborted')
  progress('prepare', 0, 'reading source and manifest')
  const { source, manifestFile } = await resolveSource(src, options.manifestPath)
  const manifest = parseManifestJson(await readFile(manifestFile, 'utf8'), manifestFile)
  const used = checkSourceImports(await readFile(source, 'utf8'), source, manifest)

  const raw = await componentizeInChild(source, narrowWit(heldPermissions(manifest.permissions), used), options.signal, fraction => {
    progress('componentize', 0.05 + 0.85 * fraction, 'compiling the JS engine and the agent into a component')
  })

  progress('check', 0.92, 'checking the component against its manifest')
  let component: Uint8Array
  try {
    checkWorld(readComponent(raw))
    component = embedManifest(raw, manifest)
    const info = inspectAgentBytes(component)
    checkImports(info.imports, new Set(heldPermissions(manifest.permissions)), manifest)
  } catch (err) {
    throw new BuildFailedError(`${source} built, but ${(err as Error).message}`)
  }

  progress('write', 0.97, `writing ${out}`)
  const target = resolve(out)
  await mkdir(dirname(target), { recursive: true })
  const tmp = `${target}.tmp-${randomBytes(4).toString('hex')}`
  try {
    await writeFile(tmp, component)
    await rename(tmp, target)
  } finally {
    await rm(tmp, { force: true })
  }
  const info = inspectAgentBytes(component)
  progress('done', 1, `built ${basename(target)}`)
  return { out: target, source, digest: info.digest, size: component.byteLength, manifest, durationMs: elapsed() }
}

/**
 * Reads the source's import statements and refuses, before the long build, what cannot work:
 * imports of anything but hive:agent interfaces (there is no bundler; an agent is one module),
 * and host functions the manifest does not grant. Componentize would refuse them too, but only
 * after tens of seconds and with a message about '<internal>'. Returns the host functions the
 * source imports, so the build can narrow the world to them.
 */
export function checkSourceImports (text: string, source: string, manifest: Manifest): UsedFunctions {
  const granted = new Set(heldPermissions(manifest.permissions))
  const used = new Map<string, Set<string> | 'all'>()
  const statement = /\bimport\s*(?:([\w$*{}\s,]+?)\s*from\s*)?['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]/g
  for (const m of text.matchAll(statement)) {
    const specifier = m[2] ?? m[3] ?? ''
    const line = text.slice(0, m.index).split('\n').length
    const where = `${basename(source)}:${line}`
    if (!specifier.startsWith(`${WIT_PACKAGE}/`)) {
      throw new BuildFailedError(`${where} imports "${specifier}"; an agent is one module and may import only ${Object.keys(HOST_FUNCTIONS).map(importName).join(' and ')} (put helper code in the same file)`)
    }
    const [iface = '', version] = specifier.slice(WIT_PACKAGE.length + 1).split('@')
    const table = HOST_FUNCTIONS[iface]
    if (table === undefined || version !== WIT_VERSION) {
      throw new BuildFailedError(`${where} imports "${specifier}", which this hive does not offer; use ${Object.keys(HOST_FUNCTIONS).map(importName).join(' or ')}`)
    }
    const named = /\{([^}]*)\}/.exec(m[1] ?? '')?.[1]
    const names = named?.split(',').map(n => n.trim().split(/\s+as\s+/)[0]?.trim() ?? '').filter(n => n !== '' && n !== 'type') ?? []
    // A namespace or dynamic import may reach any function of the interface.
    const have = used.get(iface)
    if (named === undefined || have === 'all') used.set(iface, 'all')
    else used.set(iface, new Set([...(have ?? []), ...names]))
    for (const name of names) {
      const need = table[name]
      if (need === undefined) throw new BuildFailedError(`${where} imports "${name}" from "${specifier}", which has only ${Object.keys(table).join(', ')}`)
      if (!granted.has(need)) {
        throw new BuildFailedError(`${where} imports "${name}" from "${specifier}", which needs permission "${need}"; add it to "permissions" in the manifest`)
      }
    }
  }
  return used
}

async function componentizeInChild (source: string, witSource: string, signal: AbortSignal | undefined, onTick: (fraction: number) => void): Promise<Uint8Array> {
  const output = join(tmpdir(), `hive-agent-${randomBytes(6).toString('hex')}.wasm`)
  const child = fork(fileURLToPath(new URL('./build-child.ts', import.meta.url)), [], {
    execArgv: ['--disable-warning=ExperimentalWarning'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc']
  })
  let stderr = ''
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000) })
  child.stdout?.resume()
  let tickStart = 0
  const ticker = setInterval(() => {
    if (tickStart === 0) return
    // An estimate that approaches but never reaches the end, whatever the real duration.
    const t = (performance.now() - tickStart) / EXPECTED_COMPONENTIZE_MS
    onTick(1 - Math.exp(-1.5 * t))
  }, 200)
  try {
    await new Promise<void>((resolvePromise, reject) => {
      const onAbort = (): void => { child.kill('SIGKILL'); reject(new AbortError('the build was aborted')) }
      signal?.addEventListener('abort', onAbort, { once: true })
      const done = (err?: Error): void => {
        signal?.removeEventListener('abort', onAbort)
        if (err !== undefined) reject(err)
        else resolvePromise()
      }
      child.on('message', (msg: { type: string, stage?: string, message?: string }) => {
        if (msg.type === 'stage' && msg.stage === 'componentize') { tickStart = performance.now(); onTick(0) }
        if (msg.type === 'done') done()
        if (msg.type === 'error') done(new BuildFailedError(`could not build ${source}: ${msg.message ?? 'unknown error'}`))
      })
      child.on('error', err => { done(new BuildFailedError(`could not start the build: ${err.message}`)) })
      child.on('exit', (code, sig) => {
        if (code === 0) { done(); return }
        done(new BuildFailedError(`the build process ended (${sig ?? `code ${code}`}) without a result${stderr !== '' ? `: ${stderr.trim()}` : ''}`))
      })
      child.send({ source, output, witSource, worldName: WORLD_NAME })
    })
    return await readFile(output)
  } finally {
    clearInterval(ticker)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await rm(output, { force: true })
  }
}

const EXAMPLE_AGENT = `// A hive agent: \`run\` gets the task's input and returns its output.
// Build it with \`hive-node agent build . -o agent.wasm\`, run it with
// \`hive-node run agent.wasm --input "some words"\`.
//
// It may import only hive:agent interfaces, and only those its manifest.json permits:
// log needs "log", context.get/conversation "context:read", context.set/append
// "context:write", llm.chat/embed "llm" (and "llm:cloud" to let the hive use a cloud model).
// There is no filesystem, network, environment or clock; Date and Math.random are fixed.

import { log } from 'hive:agent/log@0.1.0'
import { append, get, set } from 'hive:agent/context@0.1.0'

export function run (input: string): string {
  const words = input.split(/\\s+/).filter(w => w !== '').length
  const runs = Number(get('runs') ?? '0') + 1
  set('runs', String(runs))
  append(input)
  log('info', \`run \${runs}: \${words} words\`)
  if (words === 0) throw new Error('give me some words')
  return \`\${words} words (run \${runs} in this context)\`
}
`

const EXAMPLES_DIR = new URL('./agents/', import.meta.url)

/** The example agents shipped with hive-node (`sandbox/agents/`), by name. */
export async function agentExamples (): Promise<string[]> {
  return (await readdir(EXAMPLES_DIR, { withFileTypes: true })).filter(e => e.isDirectory()).map(e => e.name).sort()
}

/**
 * Writes a ready-to-build agent into `dir`: the word counter below, or with `example` a copy of
 * one of the shipped examples (its source and manifest, the manifest's name unless `name` is
 * given), so a person can build one from any directory. Types for the host interfaces go beside.
 */
export async function newAgent (dir: string, options: { name?: string, example?: string } = {}): Promise<{ dir: string, files: string[] }> {
  const target = resolve(dir)
  const clean = (n: string): string => n.toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '').slice(0, 64) || 'agent'
  const types = await readFile(new URL('./wit/hive-agent.d.ts', import.meta.url), 'utf8')
  let files: Array<[string, string]>
  if (options.example !== undefined) {
    const examples = await agentExamples()
    if (!examples.includes(options.example)) throw new TypeError(`there is no example agent "${options.example}"; the examples are ${examples.join(', ')}`)
    const from = new URL(`${options.example}/`, EXAMPLES_DIR)
    const sources = (await readdir(from)).filter(f => f === 'agent.ts' || f === 'agent.js')
    const manifest = JSON.parse(await readFile(new URL('manifest.json', from), 'utf8')) as { name: string }
    if (options.name !== undefined) manifest.name = clean(options.name)
    files = [
      ...await Promise.all(sources.map(async (f): Promise<[string, string]> => [f, await readFile(new URL(f, from), 'utf8')])),
      ['manifest.json', JSON.stringify(manifest, null, 2) + '\n'],
      ['hive-agent.d.ts', types]
    ]
  } else {
    const manifest = {
      name: clean(options.name ?? basename(target)),
      version: '0.1.0',
      description: 'Counts the words of its input and how often it ran in this context.',
      permissions: ['log', 'context:read', 'context:write'],
      limits: { timeoutMs: 5000, memoryMiB: 64 }
    }
    files = [
      ['agent.ts', EXAMPLE_AGENT],
      ['manifest.json', JSON.stringify(manifest, null, 2) + '\n'],
      ['hive-agent.d.ts', types]
    ]
  }
  await mkdir(target, { recursive: true })
  for (const [f] of files) {
    if (await exists(join(target, f))) throw new TargetExistsError(`${join(target, f)} already exists; choose an empty directory`)
  }
  for (const [f, text] of files) await writeFile(join(target, f), text, { flag: 'wx' })
  return { dir: target, files: files.map(([f]) => join(target, f)) }
}

/** Manifest, digest and imports of a built agent file. */
export async function inspectAgent (file: string): Promise<AgentInfo> {
  const { summary: _summary, ...info } = inspectAgentBytes(await readFile(file))
  return info
}
