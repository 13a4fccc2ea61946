// Sandbox benchmark: how long until an agent has run, for a tiny WAT-built component (~1 KB)
// and a JS agent built by the real build (~12 MB, the SpiderMonkey engine inside).
//   first run     a fresh sandbox and an empty cache: inspect, transpile (jco, in a worker),
//                 compile, load into a worker, instantiate, run
//   cached cold   a fresh sandbox on a populated cache: read and verify the entry, compile,
//                 load into a worker, instantiate, run
//   warm          the same agent again on the same sandbox: the worker holds its code and a fresh
//                 instance prepared after the previous run, so a run is one message each way
//                 plus the agent's own work
// A code task's warm start: the interpreter component (sandbox/code-runtime.ts) running the
// source `console.log("hello")`, against the JS echo agent's warm start in the same run: the
// price of evaluating source at run time over code compiled into the snapshot.
// Baselines, measured in the same run: the floor, bare `WebAssembly.instantiate` of the same
// core modules (already compiled, stub imports, no component glue, no worker); the component
// instantiated and run in-process through jco's glue (no worker); and an empty message round
// trip to a worker thread (the cost of isolating runs in a thread at all).
//
// `npm run bench -- sandbox`, or `node test/bench/sandbox.bench.ts` for this one alone.

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { buildAgent } from '../../sandbox/build.ts'
import { createCodeRuntime, createSandbox, embedManifest } from '../../sandbox/index.ts'
import { TEST_RUNTIMES_DIR } from '../helpers/code-runtime.ts'
import { createTranspileCache } from '../../sandbox/cache.ts'
import { agentDigest } from '../../sandbox/agent.ts'
import { wasm } from '../../sandbox/wasm.ts'
import { ECHO, watComponent } from '../sandbox/fixtures.ts'
import { median, printTable } from './table.ts'
import type { BenchResult, BenchRow } from './table.ts'
import type { WasmImports, WasmModule } from '../../sandbox/wasm.ts'

const TINY_WARM = 2000
const JS_WARM = 100
const FLOOR_SAMPLES = { tiny: 5000, js: 50 }

async function time (fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now()
  await fn()
  return performance.now() - t
}

async function withDir<T> (fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'hive-bench-sandbox-'))
  try {
    return await fn(dir)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** Stub imports for a core module: enough to instantiate it without the component glue. */
function stubImports (module: WasmModule): WasmImports {
  const W = globalThis as unknown as { WebAssembly: { Module: { imports: (m: WasmModule) => Array<{ module: string, name: string, kind: string }> }, Table: new (d: object) => unknown } }
  const imports: WasmImports = {}
  for (const imp of W.WebAssembly.Module.imports(module)) {
    const ns = imports[imp.module] ??= {}
    ns[imp.name] = imp.kind === 'table' ? new W.WebAssembly.Table({ initial: 64, element: 'anyfunc' }) : () => {}
  }
  return imports
}

async function measure (label: string, component: Uint8Array, warmRuns: number, floorSamples: number): Promise<BenchRow[]> {
  return await withDir(async dir => {
    const input = 'hello'
    // ---- first run: new sandbox, empty cache ----
    const firsts: number[] = []
    for (let i = 0; i < 3; i++) {
      const s = createSandbox({ cacheDir: join(dir, `first-${i}`) })
      await s.start()
      firsts.push(await time(async () => await s.run(component.slice(), { input })))
      await s.stop()
    }
    // ---- cached cold: new sandbox, populated cache ----
    const cacheDir = join(dir, 'first-0')
    const colds: number[] = []
    for (let i = 0; i < 5; i++) {
      const s = createSandbox({ cacheDir })
      await s.start()
      colds.push(await time(async () => await s.run(component.slice(), { input })))
      if (s.stats().transpiles !== 0) throw new Error('cached cold start transpiled')
      await s.stop()
    }
    // ---- warm: same sandbox, same agent ----
    const s = createSandbox({ cacheDir })
    await s.start()
    const agent = await s.load(component)
    for (let i = 0; i < 20; i++) await s.run(agent, { input })
    // Each timed run starts on an idle worker that has prepared its instance, as a run arriving
    // at a quiet node does; back to back, the preparation would be timed as well.
    const warms: number[] = []
    for (let i = 0; i < warmRuns; i++) {
      await s.settled()
      warms.push(await time(async () => await s.run(agent, { input })))
    }
    await s.stop()

    // ---- baselines ----
    const { files } = await createTranspileCache({ dir: join(dir, 'baseline') }).get(agentDigest(component), component)
    const modules = await Promise.all(files.modules.map(async m => ({ name: m.name, module: await wasm.compile(m.bytes) })))
    const floors: number[] = []
    for (let i = 0; i < floorSamples; i++) {
      const t = performance.now()
      for (const m of modules) new wasm.Instance(m.module, stubImports(m.module))
      floors.push(performance.now() - t)
    }
    const glueUrl = 'data:text/javascript;base64,' + Buffer.from(files.glue).toString('base64')
    const glue = await import(glueUrl) as { instantiate: (get: (n: string) => WasmModule, imports: object, core: (m: WasmModule, i: WasmImports) => unknown) => { run: (s: string) => string } }
    const byName = new Map(modules.map(m => [m.name, m.module]))
    const inProcess: number[] = []
    for (let i = 0; i < Math.min(warmRuns, 500); i++) {
      const t = performance.now()
      const exports = glue.instantiate(n => byName.get(n) as WasmModule, {}, (m, imps) => new wasm.Instance(m, imps))
      exports.run(input)
      inProcess.push(performance.now() - t)
    }
    const floor = median(floors)
    const warm = median(warms)
    return [
      { metric: `${label}: first run (transpile)`, value: median(firsts), unit: 'ms', baseline: { label: 'floor', value: floor }, note: 'median of 3, each a fresh cache' },
      { metric: `${label}: cached cold start`, value: median(colds), unit: 'ms', baseline: { label: 'floor', value: floor }, note: 'median of 5, each a fresh sandbox' },
      { metric: `${label}: warm start (run to result)`, value: warm, unit: 'ms', baseline: { label: 'floor', value: floor }, note: `median of ${warmRuns}; goal ≤ 2× floor${label.startsWith('tiny') ? ' and < 1 ms' : ''}` },
      { metric: `${label}: in-process jco instantiate + run`, value: median(inProcess), unit: 'ms', baseline: { label: 'floor', value: floor }, note: 'reference: no worker, no isolation' },
      { metric: `${label}: floor, bare instantiate of its core modules`, value: floor, unit: 'ms', note: `${modules.length} core module(s), ${(component.byteLength / 1024).toFixed(0)} KiB component` }
    ]
  })
}

/** Warm runs of one agent with one input, each on an idle worker holding a prepared instance. */
async function warmRuns (component: Uint8Array, input: string, runs: number): Promise<number> {
  return await withDir(async dir => {
    const s = createSandbox({ cacheDir: dir })
    await s.start()
    try {
      const agent = await s.load(component)
      for (let i = 0; i < 20; i++) await s.run(agent, { input })
      const samples: number[] = []
      for (let i = 0; i < runs; i++) {
        await s.settled()
        samples.push(await time(async () => await s.run(agent, { input })))
      }
      return median(samples)
    } finally {
      await s.stop()
    }
  })
}

async function workerRoundTrip (): Promise<number> {
  const worker = new Worker("require('node:worker_threads').parentPort.on('message', m => require('node:worker_threads').parentPort.postMessage(m))", { eval: true })
  try {
    const once = async (): Promise<void> => { await new Promise(resolve => { worker.once('message', resolve); worker.postMessage('x') }) }
    for (let i = 0; i < 200; i++) await once()
    const samples: number[] = []
    for (let i = 0; i < 2000; i++) samples.push(await time(once))
    return median(samples)
  } finally {
    await worker.terminate()
  }
}

export async function run (): Promise<BenchResult> {
  const tiny = embedManifest(await watComponent(ECHO), { name: 'tiny-echo', version: '0.1.0', limits: { timeoutMs: 5000, memoryMiB: 1 } })
  const js = await withDir(async dir => {
    const out = join(dir, 'echo.wasm')
    await buildAgent(new URL('../../sandbox/agents/echo', import.meta.url).pathname, out)
    return await readFile(out)
  })
  // the interpreter as code tasks use it: the test cache, keyed on its inputs (built if absent)
  const interpreter = await createCodeRuntime({ cacheDir: TEST_RUNTIMES_DIR }).component()
  const jsWarm = await warmRuns(js, 'hello', JS_WARM)
  const codeWarm = await warmRuns(interpreter, 'console.log("hello")', JS_WARM)
  const rows = [
    ...await measure('tiny WAT echo', tiny, TINY_WARM, FLOOR_SAMPLES.tiny),
    ...await measure('JS echo', js, JS_WARM, FLOOR_SAMPLES.js),
    { metric: 'JS echo agent: warm start (same pass as the code task)', value: jsWarm, unit: 'ms', note: `median of ${JS_WARM}` },
    { metric: 'code task console.log("hello"): warm start', value: codeWarm, unit: 'ms', baseline: { label: 'JS echo agent warm', value: jsWarm }, note: `median of ${JS_WARM}; the interpreter component, ${(interpreter.byteLength / 2 ** 20).toFixed(1)} MiB` },
    { metric: 'worker thread message round trip', value: await workerRoundTrip(), unit: 'ms', note: 'empty message there and back: the price of a thread per run' }
  ]
  return { title: 'sandbox: time until an agent has run (echo, input "hello")', rows }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printTable(await run())
}
