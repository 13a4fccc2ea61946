#!/usr/bin/env node
// Entry point of the `hive-node` command. Plain JavaScript so that an older Node can still say
// what is wrong instead of failing on TypeScript syntax.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`hive-node needs Node.js 22.18 or newer (this is ${process.versions.node}).\n` +
    'Run it through the project (npx hive-node, npm start), which uses the Node it installs, or install a newer Node.\n')
  process.exit(1)
}
// Cache compiled code (the TypeScript stripped, the bytecode) between runs: a start, and every
// CLI command, then loads its modules faster. NODE_COMPILE_CACHE picks the directory and
// NODE_DISABLE_COMPILE_CACHE=1 turns it off; by default it is under the system's temp directory.
const { enableCompileCache } = await import('node:module')
enableCompileCache?.()
const { main } = await import('./cli.ts')
process.exitCode = await main(process.argv.slice(2))
