// Builds one JS/TS agent into a component, in a child process of its own: componentize runs a
// blocking tool for many seconds and peaks near a gigabyte, which the caller should neither wait
// on synchronously nor keep afterwards. Talks to the parent over IPC: stage messages, then the
// component written to the path it was given, or an error.

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { stripTypeScriptTypes } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

interface Request { source: string, output: string, witSource: string, worldName: string }

type Componentize = (opts: Record<string, unknown>) => Promise<{ component: Uint8Array }>

function send (msg: unknown): void {
  process.send?.(msg)
}

async function loadComponentize (): Promise<Componentize> {
  return (await import('@bytecodealliance/componentize-js') as unknown as { componentize: Componentize }).componentize
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
    await writeFile(join(dir, 'agent.js'), js)
    await writeFile(join(dir, 'entry.js'), ENTRY)
    const componentize = await loadComponentize()
    send({ type: 'stage', stage: 'componentize' })
    const { component } = await componentize({
      sourcePath: join(dir, 'entry.js'),
      witWorld: req.witSource,
      worldName: req.worldName,
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
