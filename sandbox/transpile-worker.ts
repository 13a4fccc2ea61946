// Runs jco's transpile in a worker thread: it takes a second or more for a JS agent, and the
// node's event loop must keep answering meanwhile.

import { parentPort, workerData } from 'node:worker_threads'
import { transpile } from '@bytecodealliance/jco'

const { component } = workerData as { component: Uint8Array }
try {
  const out = await transpile(component, {
    name: 'component',
    // The host supplies every import and every compiled core module: nothing is resolved by the
    // generated code itself, and no WASI shim is ever wired in.
    instantiation: 'async',
    noTypescript: true,
    quiet: true
  })
  const files = Object.entries(out.files)
    .filter(([name]) => name.endsWith('.js') || name.endsWith('.wasm'))
    .map(([name, bytes]) => ({ name, bytes }))
  parentPort?.postMessage({ ok: true, files }, files.map(f => f.bytes.buffer as ArrayBuffer))
} catch (err) {
  parentPort?.postMessage({ ok: false, message: err instanceof Error ? err.message : String(err) })
}
