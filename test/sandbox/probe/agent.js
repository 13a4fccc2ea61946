// Test agent: reports what of the host it can see. Built by agents.test.ts with the real build.

import { log } from 'hive:agent/log@0.1.0'

export function run (input) {
  if (input.startsWith('fetch ')) {
    log('info', 'fetching')
    fetch(input.slice(6))
    return 'fetch returned'
  }
  return JSON.stringify({
    process: typeof globalThis.process,
    require: typeof globalThis.require,
    deno: typeof globalThis.Deno,
    now: Date.now(),
    random: Math.random()
  })
}
