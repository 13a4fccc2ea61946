// Worker-thread entry for bulk audits: checks slices of a chain with Node's built-in Ed25519 so
// long chains verify on every core. Receives { id, input: SliceInput }, answers { id, result }.

import { parentPort } from 'node:worker_threads'
import { checkSlice } from './check.ts'
import type { SliceInput } from './check.ts'

const port = parentPort
if (port == null) throw new Error('verify-worker.ts runs as a worker thread only')

port.on('message', (message: { id: number, input: SliceInput }) => {
  try {
    port.postMessage({ id: message.id, result: checkSlice(message.input) })
  } catch (err) {
    port.postMessage({ id: message.id, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) })
  }
})
