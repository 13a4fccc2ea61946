// The interpreter behind code tasks: `run` takes JavaScript source, evaluates it as the body of
// an async function (so `await` works at its top level), and returns what it printed with
// console.log and friends, one line per call. console.warn and console.error also go to the
// task's log. A throw (or a rejected await) fails the task with the error's name and message.
//
// It is an agent like any other, built from this file and its manifest by the reproducible
// build, so every device that builds it gets the same component and digest. Like every agent it
// imports nothing but the hive's log: there is no filesystem, network, environment or clock, and
// no `require` or `import()`.

import { log } from 'hive:agent/log@0.1.0'

/** Printed output kept, in characters; the rest is cut with a note. */
const MAX_OUTPUT_CHARS = 1 << 20

function show (value, depth = 0) {
  if (typeof value === 'string') return depth === 0 ? value : JSON.stringify(value)
  if (value === undefined) return 'undefined'
  if (typeof value === 'bigint') return `${value}n`
  if (typeof value === 'function') return `[Function ${value.name || '(anonymous)'}]`
  if (typeof value === 'symbol') return value.toString()
  if (value instanceof Error) return value.stack ? `${value.name}: ${value.message}\n${value.stack}`.trimEnd() : `${value.name}: ${value.message}`
  if (value === null || typeof value !== 'object') return String(value)
  if (depth > 4) return Array.isArray(value) ? '[Array]' : '[Object]'
  if (Array.isArray(value)) return `[ ${value.map(v => show(v, depth + 1)).join(', ')} ]`
  if (value instanceof Map) return `Map(${value.size}) { ${[...value].map(([k, v]) => `${show(k, depth + 1)} => ${show(v, depth + 1)}`).join(', ')} }`
  if (value instanceof Set) return `Set(${value.size}) { ${[...value].map(v => show(v, depth + 1)).join(', ')} }`
  const entries = Object.entries(value).map(([k, v]) => `${/^[A-Za-z_$][\w$]*$/.test(k) ? k : JSON.stringify(k)}: ${show(v, depth + 1)}`)
  return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`
}

function describe (e) {
  if (e instanceof Error) return `${e.name}: ${e.message}`
  return `Uncaught ${show(e, 1)}`
}

export async function run (code) {
  const lines = []
  let size = 0
  let cut = false
  const print = (level, args) => {
    const line = args.map(a => show(a)).join(' ')
    if (level === 'warn' || level === 'error') log(level, line.slice(0, 4096))
    if (cut) return
    if (size + line.length + 1 > MAX_OUTPUT_CHARS) {
      cut = true
      lines.push(`… output cut at ${MAX_OUTPUT_CHARS} characters`)
      return
    }
    size += line.length + 1
    lines.push(line)
  }
  const console = {
    log: (...a) => print('info', a),
    info: (...a) => print('info', a),
    debug: (...a) => print('debug', a),
    warn: (...a) => print('warn', a),
    error: (...a) => print('error', a)
  }
  globalThis.console = console
  // the engine's own fetch has no network behind it and would trap; say so instead
  globalThis.fetch = () => { throw new TypeError('fetch is not available: code tasks have no network') }
  const AsyncFunction = (async () => {}).constructor
  let body
  try {
    body = new AsyncFunction('console', code)
  } catch (e) {
    throw describe(e)
  }
  try {
    await body(console)
  } catch (e) {
    throw describe(e)
  }
  return lines.join('\n')
}
