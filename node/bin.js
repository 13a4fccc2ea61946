#!/usr/bin/env node
// Entry point of the `hive-node` command. Plain JavaScript so that an older Node can still run
// this far: when the Node that started it is too old, it runs itself again under the project's
// own Node (the `node` package among its dependencies), so `npm link`, `npm install -g .` or a
// symlink to this file give a working `hive-node` on PATH whatever the system Node is.
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  // The main module's URL is its real path, also when started through a symlink.
  const own = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url))
  if (process.env.HIVE_NODE_REEXEC === '1' || !existsSync(own)) {
    process.stderr.write(`hive-node needs Node.js 22.18 or newer (this is ${process.versions.node}).\n` +
      'Run `npm install` in the hive-node folder (it brings its own Node), or install a newer Node.\n')
    process.exit(1)
  }
  const { spawn } = await import('node:child_process')
  const child = spawn(own, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, HIVE_NODE_REEXEC: '1' }
  })
  // A supervisor that stops this process stops the node: pass the signals on, and leave with the
  // child's own exit code (or its signal).
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => { child.kill(sig) })
  child.on('error', err => {
    process.stderr.write(`hive-node: could not start ${own}: ${err.message}\n`)
    process.exit(1)
  })
  child.on('exit', (code, signal) => {
    if (signal !== null) {
      process.removeAllListeners(signal)
      process.kill(process.pid, signal)
    } else {
      process.exit(code ?? 1)
    }
  })
} else {
  // Cache compiled code (the TypeScript stripped, the bytecode) between runs: a start, and every
  // CLI command, then loads its modules faster. NODE_COMPILE_CACHE picks the directory and
  // NODE_DISABLE_COMPILE_CACHE=1 turns it off; by default it is under the system's temp directory.
  const { enableCompileCache } = await import('node:module')
  enableCompileCache?.()
  const { main } = await import('./cli.ts')
  process.exitCode = await main(process.argv.slice(2))
}
