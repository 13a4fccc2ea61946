// One sandbox worker thread. It holds jco's generated glue and the compiled core modules of the
// agents it has run, instantiates a fresh component instance for every run, and hands the agent
// only the host functions the run's grants name. Context and model calls are synchronous for the
// agent: the worker posts the request to the main thread and blocks on an Atomics cell until the
// answer is there, so the main thread may back the context with an asynchronous, durable store
// and route a model call across the hive. A deadline still holds meanwhile: it ends the thread.
//
// Nothing here is reachable by the agent except the functions in `hostImports`: WebAssembly code
// cannot name JS globals, and the glue only ever calls what it is given. The worker runs with an
// empty environment all the same.

import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { HOST_FUNCTIONS, WIT_PACKAGE } from './wit.ts'
import type { MessagePort } from 'node:worker_threads'
import type { FromWorker, HostCall, HostReply, ToWorker } from './worker-protocol.ts'
import { wasm } from './wasm.ts'
import type { WasmImports, WasmInstance, WasmMemory, WasmModule } from './wasm.ts'

type Instantiate = (
  getCoreModule: (name: string) => WasmModule,
  imports: Record<string, Record<string, (...args: never[]) => unknown>>,
  instantiateCore: (module: WasmModule, imports: WasmImports) => WasmInstance
) => unknown

interface Loaded {
  instantiate: Instantiate
  modules: Map<string, WasmModule>
  capPages: number
}

interface Prepared {
  key: string
  grantsKey: string
  run: (input: string) => unknown
  memories: WasmMemory[]
}

interface Current {
  id: number
  logLines: number
  logDropped: boolean
}

const { syncPort, flag, maxLogLines, maxLogChars } = workerData as {
  syncPort: MessagePort
  flag: SharedArrayBuffer
  maxLogLines: number
  maxLogChars: number
}
const cell = new Int32Array(flag)
const port = parentPort as NonNullable<typeof parentPort>
const loaded = new Map<string, Loaded>()
const loadFailures = new Map<string, string>()
let spare: Prepared | undefined
let current: Current | undefined

const LEVELS = new Set(['debug', 'info', 'warn', 'error'])

function post (msg: FromWorker): void {
  port.postMessage(msg)
}

function hostLog (level: unknown, message: unknown): void {
  const run = current
  if (run === undefined) throw new Error('log called outside a run')
  if (run.logLines >= maxLogLines) {
    if (!run.logDropped) {
      run.logDropped = true
      post({ type: 'log', id: run.id, level: 'warn', message: `further log lines dropped (at most ${maxLogLines} per run)` })
    }
    return
  }
  run.logLines++
  let text = String(message)
  if (text.length > maxLogChars) text = text.slice(0, maxLogChars) + '…'
  post({ type: 'log', id: run.id, level: LEVELS.has(String(level)) ? String(level) as 'info' : 'info', message: text })
}

type Call = HostCall extends infer C ? C extends HostCall ? Omit<C, 'id'> : never : never

function hostCall (body: Call): { tag: 'ok', val: unknown } | { tag: 'err', val: unknown } {
  const run = current
  if (run === undefined) throw new Error(`${body.op} called outside a run`)
  Atomics.store(cell, 0, 0)
  const call = { ...body, id: run.id } as HostCall
  syncPort.postMessage(call)
  // The main thread posts its reply and then flips the cell; a deadline ends the whole thread.
  Atomics.wait(cell, 0, 0)
  const reply = receiveMessageOnPort(syncPort)?.message as HostReply | undefined
  if (reply === undefined) return { tag: 'err', val: 'the host did not answer' }
  if (!reply.ok) return { tag: 'err', val: reply.error }
  return { tag: 'ok', val: reply.value ?? undefined }
}

/** Only the granted functions are present; an ungranted import has nothing to bind to. */
function hostImports (grants: ReadonlySet<string>): Record<string, Record<string, (...args: never[]) => unknown>> {
  const binders: Record<string, Record<string, (...args: never[]) => unknown>> = {
    log: { log: (level: never, message: never) => { hostLog(level, message) } },
    context: {
      get: (key: never) => hostCall({ op: 'get', args: [key] }),
      set: (key: never, value: never) => hostCall({ op: 'set', args: [key, value] }),
      append: (text: never) => hostCall({ op: 'append', args: [text] }),
      conversation: (last: never) => hostCall({ op: 'conversation', last })
    },
    llm: {
      chat: (request: never) => hostCall({ op: 'chat', request }),
      embed: (model: never, texts: never) => hostCall({ op: 'embed', model, texts })
    },
    http: {
      request: (method: never, url: never, headers: never, body: never, options: never) => hostCall({ op: 'request', method, url, headers, body, options })
    },
    kv: {
      get: (key: never) => hostCall({ op: 'kv-get', args: [key] }),
      set: (key: never, value: never) => hostCall({ op: 'kv-set', args: [key, value] }),
      delete: (key: never) => hostCall({ op: 'kv-delete', args: [key] }),
      list: (prefix: never, limit: never) => hostCall({ op: 'kv-list', args: [prefix, limit] })
    }
  }
  const imports: Record<string, Record<string, (...args: never[]) => unknown>> = {}
  for (const [iface, fns] of Object.entries(HOST_FUNCTIONS)) {
    const bound: Record<string, (...args: never[]) => unknown> = {}
    for (const [fn, permission] of Object.entries(fns)) {
      const binder = binders[iface]?.[fn]
      if (grants.has(permission) && binder !== undefined) bound[fn] = binder
    }
    // jco's instantiation mode looks interfaces up without their version.
    if (Object.keys(bound).length > 0) imports[`${WIT_PACKAGE}/${iface}`] = bound
  }
  return imports
}

async function prepare (key: string, grants: string[]): Promise<Prepared> {
  const agent = loaded.get(key)
  if (agent === undefined) throw new Error(`agent ${key} is not loaded in this worker`)
  const memories: WasmMemory[] = []
  const exports = await agent.instantiate(
    name => {
      const m = agent.modules.get(name)
      if (m === undefined) throw new Error(`no core module named ${name}`)
      return m
    },
    hostImports(new Set(grants)),
    (module, imports) => {
      const instance = new wasm.Instance(module, imports)
      for (const v of Object.values(instance.exports)) if (v instanceof wasm.Memory) memories.push(v)
      return instance
    }
  ) as { run?: (input: string) => unknown }
  if (typeof exports.run !== 'function') throw new Error('the component has no run export')
  return { key, grantsKey: grants.join(','), run: exports.run, memories }
}

function pagesOf (memories: WasmMemory[]): number {
  return memories.reduce((n, m) => n + m.buffer.byteLength / 65536, 0)
}

function failure (id: number, err: unknown, prepared: Prepared | undefined, capPages: number): FromWorker {
  const pages = pagesOf(prepared?.memories ?? [])
  // A grow refused at the cap shows up as whatever the agent does next: usually a trap
  // (`unreachable` in an allocator's out-of-memory path), or for a JS agent an "out of memory"
  // error. Memory at the cap names the real cause.
  const atCap = prepared !== undefined && pages >= capPages - Math.max(1, Math.floor(capPages / 16))
  if (err !== null && typeof err === 'object' && Object.hasOwn(err, 'payload') && err.constructor.name === 'ComponentError') {
    const message = String((err as { payload: unknown }).payload)
    return { type: 'done', id, ok: false, kind: atCap && /out of memory/i.test(message) ? 'memory' : 'agent', message, pages }
  }
  const message = err instanceof Error ? err.message : String(err)
  return { type: 'done', id, ok: false, kind: atCap ? 'memory' : 'trap', message, pages }
}

async function load (msg: Extract<ToWorker, { type: 'load' }>): Promise<void> {
  if (loaded.has(msg.key)) return
  const url = 'data:text/javascript;base64,' + Buffer.from(msg.glue).toString('base64')
  let mod: { instantiate?: Instantiate }
  try {
    mod = await import(url) as { instantiate?: Instantiate }
    if (typeof mod.instantiate !== 'function') throw new Error('the generated code exports no instantiate function')
  } catch (err) {
    loadFailures.set(msg.key, err instanceof Error ? err.message : String(err))
    return
  }
  loaded.set(msg.key, {
    instantiate: mod.instantiate as Instantiate,
    modules: new Map(msg.modules.map(m => [m.name, m.module])),
    capPages: msg.capPages
  })
}

async function run (msg: Extract<ToWorker, { type: 'run' }>): Promise<void> {
  const agent = loaded.get(msg.key)
  if (agent === undefined) {
    post({ type: 'done', id: msg.id, ok: false, kind: 'internal', message: `the agent's generated code did not load: ${loadFailures.get(msg.key) ?? 'never sent to this worker'}`, pages: 0 })
    return
  }
  const grantsKey = msg.grants.join(',')
  let prepared: Prepared | undefined
  current = { id: msg.id, logLines: 0, logDropped: false }
  let reply: FromWorker
  try {
    if (spare !== undefined && spare.key === msg.key && spare.grantsKey === grantsKey) prepared = spare
    spare = undefined
    prepared ??= await prepare(msg.key, msg.grants)
    const output = prepared.run(msg.input)
    if (typeof output !== 'string') throw new TypeError('run returned a non-string')
    reply = { type: 'done', id: msg.id, ok: true, output, pages: pagesOf(prepared.memories) }
  } catch (err) {
    reply = failure(msg.id, err, prepared, agent.capPages)
  } finally {
    current = undefined
  }
  post(reply)
  // Instantiate the next run's instance now, while idle: a warm run then only calls `run`.
  // Each run still gets an instance nobody has used before.
  if (reply.type === 'done' && (reply.ok || reply.kind === 'agent')) {
    try {
      spare = await prepare(msg.key, msg.grants)
    } catch {
      spare = undefined
    }
  }
  post({ type: 'idle', spare: spare !== undefined ? `${spare.key}|${spare.grantsKey}` : null })
}

let queue: Promise<void> = Promise.resolve()
port.on('message', (msg: ToWorker) => {
  queue = queue.then(async () => {
    try {
      if (msg.type === 'load') await load(msg)
      else if (msg.type === 'run') await run(msg)
    } catch (err) {
      const id = msg.type === 'run' ? msg.id : -1
      post({ type: 'done', id, ok: false, kind: 'internal', message: err instanceof Error ? err.message : String(err), pages: 0 })
      if (msg.type === 'run') post({ type: 'idle', spare: null })
    }
  })
})
post({ type: 'ready' })
