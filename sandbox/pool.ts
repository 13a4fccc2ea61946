// The pool of sandbox worker threads. Each run gets a worker to itself for its duration; a
// deadline timer terminates the thread (the only way to stop a wasm loop), and a terminated or
// crashed worker is replaced so the next run finds the pool as it was. Idle workers stay warm:
// they keep the agents they ran loaded, and the pool hands a run to a worker that already holds
// its agent when it can.

import { MessageChannel, Worker } from 'node:worker_threads'
import {
  AbortError, AgentFailedError, AgentTimedOutError, AgentTrappedError, CompileFailedError,
  MemoryLimitExceededError, SandboxNotRunningError
} from './errors.ts'
import { FromWorkerSchema, HostCallSchema } from './worker-protocol.ts'
import { PAGE_BYTES } from './binary.ts'
import type { Permission } from './wit.ts'
import type { HostCall, HostReply, ToWorker } from './worker-protocol.ts'
import type { MessagePort } from 'node:worker_threads'
import type { WasmModule } from './wasm.ts'

export interface PoolInit {
  /** Idle workers kept started and warm. */
  minIdle: number
  /** Start the idle workers at `start()` (else with the first run). */
  prestart: boolean
  /** Workers at most, i.e. runs at once; further runs wait their turn. */
  maxWorkers: number
  /** A worker that has loaded more agents than this is replaced when it goes idle. */
  maxAgentsPerWorker: number
  maxLogLines: number
  maxLogChars: number
}

export interface PoolJob {
  key: string
  name: string
  grants: readonly Permission[]
  capPages: number
  glue: string
  modules: Array<{ name: string, module: WasmModule }>
  input: string
  timeoutMs: number
  /** Answers the agent's host calls; `signal` aborts when the run ends, however it ends. */
  host: (call: HostCall, signal: AbortSignal) => Promise<HostReply>
  signal?: AbortSignal
  onLog: (level: 'debug' | 'info' | 'warn' | 'error', message: string) => void
}

export interface PoolResult {
  output: string
  /** Pages of linear memory the instance had when it finished. */
  pages: number
  /** True when the worker already held the agent's code. */
  warm: boolean
}

export interface PoolStats {
  workers: number
  idle: number
  busy: number
  waiting: number
  replaced: number
}

export interface WorkerPool {
  start: () => Promise<void>
  stop: () => Promise<void>
  run: (job: PoolJob) => Promise<PoolResult>
  stats: () => PoolStats
  /** Resolves when no run is active or waiting and every idle worker has finished preparing. */
  settled: () => Promise<void>
}

interface Active {
  id: number
  job: PoolJob
  warm: boolean
  resolve: (r: PoolResult) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
  onAbort: () => void
  /** Aborted when the run ends: cancels host calls still in flight (a slow model). */
  ended: AbortController
}

interface Slot {
  worker: Worker
  ready: Promise<void>
  port: MessagePort
  cell: Int32Array
  loaded: Set<string>
  busy: boolean
  dead: boolean
  retire: boolean
  /** Between a run's result and the worker's `idle`: it is preparing the next instance. */
  settling: boolean
  /** `key|grants` of the fresh instance the worker holds ready, if any. */
  spare?: string
  active?: Active
}

interface Waiter {
  key: string
  spare: string
  resolve: (slot: Slot) => void
  reject: (err: Error) => void
}

const WORKER_URL = new URL('./worker.ts', import.meta.url)

export function createWorkerPool (init: PoolInit): WorkerPool {
  const slots = new Set<Slot>()
  const waiters: Waiter[] = []
  let running = false
  let nextId = 1
  let replaced = 0
  let settledWaiters: Array<() => void> = []

  function checkSettled (): void {
    if (settledWaiters.length === 0 || waiters.length > 0) return
    if ([...slots].some(s => s.busy || s.settling)) return
    const resolve = settledWaiters
    settledWaiters = []
    for (const r of resolve) r()
  }

  function spawn (): Slot {
    const { port1, port2 } = new MessageChannel()
    const flag = new SharedArrayBuffer(4)
    const worker = new Worker(WORKER_URL, {
      workerData: { syncPort: port2, flag, maxLogLines: init.maxLogLines, maxLogChars: init.maxLogChars },
      transferList: [port2],
      env: {},
      execArgv: [],
      // No JS heap limit: measured here, a worker heap limit near the size of its wasm memory
      // makes every memory.grow trigger garbage collection (128 MiB took 13 s to grow into,
      // against 10 ms without) and leaves terminate() waiting on it. The wasm cap bounds what
      // the agent can allocate; the glue's strings come from that memory or from capped input.
      resourceLimits: { stackSizeMb: 4 }
    })
    let readyResolve!: () => void
    let readyReject!: (err: Error) => void
    const ready = new Promise<void>((resolve, reject) => { readyResolve = resolve; readyReject = reject })
    ready.catch(() => {})
    const slot: Slot = { worker, ready, port: port1, cell: new Int32Array(flag), loaded: new Set(), busy: false, dead: false, retire: false, settling: false }
    worker.on('message', raw => {
      const msg = FromWorkerSchema.safeParse(raw)
      if (!msg.success) {
        kill(slot, new AgentTrappedError('the sandbox worker sent a malformed message; the run was stopped'))
        return
      }
      const m = msg.data
      if (m.type === 'ready') {
        // Idle workers must not keep the process alive; a running job holds its deadline timer.
        if (!slot.dead) {
          worker.unref()
          port1.unref()
        }
        readyResolve()
        return
      }
      if (m.type === 'idle') {
        slot.settling = false
        if (!slot.dead) worker.unref()
        slot.spare = m.spare ?? undefined
        checkSettled()
        return
      }
      const active = slot.active
      if (active === undefined || m.id !== active.id) return
      if (m.type === 'log') { active.job.onLog(m.level, m.message); return }
      if (m.ok) {
        finish(slot, { output: m.output, pages: m.pages, warm: active.warm })
        return
      }
      const mib = active.job.capPages * PAGE_BYTES / 2 ** 20
      switch (m.kind) {
        case 'agent': finish(slot, new AgentFailedError(m.message)); break
        case 'trap': finish(slot, new AgentTrappedError(`agent ${active.job.name} trapped: ${m.message}`)); break
        case 'memory':
          // Let the worker go rather than keep a thread that just held a full memory.
          slot.retire = true
          finish(slot, new MemoryLimitExceededError(`agent ${active.job.name} reached its memory cap of ${mib} MiB and was stopped (${m.message}); raise limits.memoryMiB in its manifest if it needs more`, m.pages * PAGE_BYTES))
          break
        case 'internal': finish(slot, new CompileFailedError(m.message)); break
      }
    })
    worker.on('error', err => {
      readyReject(err)
      const code = (err as NodeJS.ErrnoException).code
      const name = slot.active?.job.name ?? 'agent'
      kill(slot, code === 'ERR_WORKER_OUT_OF_MEMORY'
        ? new MemoryLimitExceededError(`agent ${name} exhausted the sandbox worker's JS heap and was stopped`)
        : new AgentTrappedError(`the sandbox worker failed while running agent ${name}: ${err.message}`))
    })
    worker.on('exit', code => {
      readyReject(new Error(`sandbox worker exited with code ${code} before it was ready`))
      kill(slot, new AgentTrappedError(`the sandbox worker exited (code ${code}) while running agent ${slot.active?.job.name ?? ''}`))
    })
    port1.on('message', raw => { void hostCall(slot, raw) })
    slots.add(slot)
    return slot
  }

  async function hostCall (slot: Slot, raw: unknown): Promise<void> {
    const active = slot.active
    const call = HostCallSchema.safeParse(raw)
    let reply: HostReply
    if (!call.success || active === undefined || call.data.id !== active.id) {
      reply = { ok: false, error: 'no such run' }
    } else {
      try {
        reply = await active.job.host(call.data, active.ended.signal)
      } catch (err) {
        reply = { ok: false, error: `the host call failed: ${err instanceof Error ? err.message : String(err)}` }
      }
    }
    // A run stopped meanwhile has no thread left to answer.
    if (slot.dead || slot.active !== active) return
    slot.port.postMessage(reply)
    Atomics.store(slot.cell, 0, 1)
    Atomics.notify(slot.cell, 0)
  }

  function idleSlots (): Slot[] {
    return [...slots].filter(s => !s.busy && !s.dead)
  }

  function topUp (): void {
    while (running && idleSlots().length < init.minIdle && slots.size < init.maxWorkers) spawn()
  }

  /** Gives waiting runs a worker: one that already holds their agent when possible. */
  function dispatch (): void {
    while (waiters.length > 0) {
      const idle = idleSlots()
      let slot: Slot | undefined
      const w = waiters[0] as Waiter
      slot = idle.find(s => s.spare === w.spare) ?? idle.find(s => s.loaded.has(w.key)) ?? idle[0]
      if (slot === undefined && slots.size < init.maxWorkers) slot = spawn()
      if (slot === undefined) return
      waiters.shift()
      slot.busy = true
      w.resolve(slot)
    }
  }

  function release (slot: Slot): void {
    slot.busy = false
    if (slot.retire || slot.loaded.size > init.maxAgentsPerWorker) {
      retireSlot(slot)
    } else if (waiters.length === 0 && idleSlots().length > init.minIdle) {
      retireSlot(slot)
    }
    dispatch()
    topUp()
  }

  function retireSlot (slot: Slot): void {
    slot.dead = true
    slots.delete(slot)
    replaced++
    void slot.worker.terminate()
    slot.port.close()
  }

  function finish (slot: Slot, outcome: PoolResult | Error): void {
    const active = slot.active
    if (active === undefined) return
    slot.active = undefined
    slot.spare = undefined
    slot.settling = !slot.dead
    // Whoever waits for `settled` must not see the process exit under them.
    if (slot.settling) slot.worker.ref()
    clearTimeout(active.timer)
    active.ended.abort(outcome instanceof Error ? outcome : undefined)
    active.job.signal?.removeEventListener('abort', active.onAbort)
    if (outcome instanceof Error) active.reject(outcome)
    else active.resolve(outcome)
    if (!slot.dead) release(slot)
  }

  /** Ends a worker at once (deadline, abort, crash) and fails its run with `err`. */
  function kill (slot: Slot, err: Error): void {
    if (slot.dead) return
    slot.dead = true
    slots.delete(slot)
    replaced++
    void slot.worker.terminate()
    slot.port.close()
    finish(slot, err)
    dispatch()
    topUp()
    checkSettled()
  }

  async function acquire (key: string, spare: string, signal?: AbortSignal): Promise<Slot> {
    return await new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = { key, spare, resolve, reject }
      const onAbort = (): void => {
        const i = waiters.indexOf(waiter)
        if (i >= 0) waiters.splice(i, 1)
        reject(new AbortError('the run was aborted while waiting for a worker'))
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      waiter.resolve = slot => { signal?.removeEventListener('abort', onAbort); resolve(slot) }
      waiter.reject = err => { signal?.removeEventListener('abort', onAbort); reject(err) }
      waiters.push(waiter)
      dispatch()
    })
  }

  return {
    async start () {
      if (running) return
      running = true
      if (!init.prestart) return
      topUp()
      await Promise.all([...slots].map(async s => { await s.ready }))
    },

    async stop () {
      running = false
      for (const r of settledWaiters.splice(0)) r()
      for (const w of waiters.splice(0)) w.reject(new SandboxNotRunningError('the sandbox stopped before the run could start'))
      const all = [...slots]
      for (const slot of all) {
        slot.dead = true
        slots.delete(slot)
        finish(slot, new SandboxNotRunningError('the sandbox stopped while the agent was running'))
        slot.port.close()
      }
      // Referenced again, so the process waits for the threads to end rather than exit over them.
      await Promise.all(all.map(async s => { s.worker.ref(); await s.worker.terminate() }))
    },

    async run (job) {
      if (!running) throw new SandboxNotRunningError('the sandbox is not started')
      if (job.signal?.aborted === true) throw new AbortError('the run was aborted')
      const slot = await acquire(job.key, `${job.key}|${job.grants.join(',')}`, job.signal)
      try {
        await slot.ready
      } catch (err) {
        kill(slot, err as Error)
        throw new AgentTrappedError(`a sandbox worker failed to start: ${(err as Error).message}`)
      }
      return await new Promise<PoolResult>((resolve, reject) => {
        if (slot.dead) { reject(new SandboxNotRunningError('the sandbox stopped before the run could start')); return }
        const id = nextId++
        const warm = slot.loaded.has(job.key)
        if (!warm) {
          const load: ToWorker = { type: 'load', key: job.key, glue: job.glue, modules: job.modules, capPages: job.capPages }
          slot.worker.postMessage(load)
          slot.loaded.add(job.key)
        }
        const onAbort = (): void => { kill(slot, new AbortError(`the run of agent ${job.name} was aborted`)) }
        const timer = setTimeout(() => {
          kill(slot, new AgentTimedOutError(`agent ${job.name} ran past its deadline of ${job.timeoutMs} ms and was stopped; raise limits.timeoutMs in its manifest if it needs longer`))
        }, job.timeoutMs)
        slot.active = { id, job, warm, resolve, reject, timer, onAbort, ended: new AbortController() }
        job.signal?.addEventListener('abort', onAbort, { once: true })
        // aborted while the worker was starting: the listener came too late to hear it
        if (job.signal?.aborted === true) { onAbort(); return }
        const run: ToWorker = { type: 'run', id, key: job.key, input: job.input, grants: [...job.grants] }
        slot.worker.postMessage(run)
      })
    },

    stats () {
      const all = [...slots]
      return {
        workers: all.length,
        idle: all.filter(s => !s.busy).length,
        busy: all.filter(s => s.busy).length,
        waiting: waiters.length,
        replaced
      }
    },

    async settled () {
      await new Promise<void>(resolve => {
        settledWaiters.push(resolve)
        checkSettled()
      })
    }
  }
}
