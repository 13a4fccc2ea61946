// Stands in for the wizer binary when componentize-js snapshots an agent (its `wizerBin`
// option), so the snapshot depends on the build's inputs only:
//   - the two temporary directories componentize and the build work in are shown to the engine
//     under fixed names (`/hive-build` and `/`), in the preopens and in the script arguments it
//     reads from stdin; the paths were kept in the snapshot;
//   - the environment handed to the engine is exactly the variables componentize sets;
//   - the files it reads carry a fixed modification time (the engine keeps each module's);
//   - the engine's random and clock wrappers answer from the seed for the snapshot, and get their
//     original bodies back afterwards (snapshot.ts).
// Usage, as the build's launcher calls it: wizer-shim.ts SEED_HEX <wizer's own arguments>.

import { spawnSync } from 'node:child_process'
import { readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { join } from 'node:path'
import { SNAPSHOT_EPOCH_NS, patchForSnapshot, restoreAfterSnapshot } from './snapshot.ts'

/** Where componentize's own work directory (initializer, bindings) appears to the engine. */
const GUEST_WORK_DIR = '/hive-build'
/** The variables componentize sets for the engine; anything else in the environment is left out. */
const ENGINE_ENV = /^(DEBUG|SOURCE_NAME|FEATURE_CLOCKS|EXPORT_CNT|IMPORT_CNT|EXPORT\d+_(NAME|ARGS|RET|RETSIZE)|IMPORT\d+_(NAME|ARGCNT))$/

function fail (message: string): never {
  process.stderr.write(`reproducible snapshot: ${message}\n`)
  process.exit(2)
}

const [seedHex, ...args] = process.argv.slice(2)
if (seedHex === undefined || !/^[0-9a-f]{16}$/.test(seedHex)) fail('the first argument must be the 16-hex-digit seed')
const input = args.at(-1)
const output = args.find(a => a.startsWith('-o='))?.slice(3)
const workDir = args.find(a => a.startsWith('--dir='))?.slice(6)
const sourceDir = args.find(a => a.startsWith('--mapdir=/::'))?.slice(12)
if (input === undefined || output === undefined || workDir === undefined || sourceDir === undefined) {
  fail(`unexpected wizer arguments from componentize-js: ${args.join(' ')}`)
}

const stdin = readFileSync(0, 'utf8')
const scriptArgs = stdin.split(`${workDir}/`).join(`${GUEST_WORK_DIR}/`).split(`${sourceDir}/`).join('/')
const wizerArgs = args.map(a => {
  if (a === `--dir=${workDir}`) return `--mapdir=${GUEST_WORK_DIR}::${workDir}`
  if (a === input) return `${input}.seeded`
  return a
})
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => ENGINE_ENV.test(k)))

const epoch = new Date(Number(SNAPSHOT_EPOCH_NS / 1_000_000n))
for (const dir of [workDir, sourceDir]) {
  for (const f of readdirSync(dir)) utimesSync(join(dir, f), epoch, epoch)
  utimesSync(dir, epoch, epoch)
}

const patched = patchForSnapshot(readFileSync(input), BigInt(`0x${seedHex}`))
writeFileSync(`${input}.seeded`, patched.bytes)
// the wizer componentize-js itself depends on
const fromComponentize = createRequire(fileURLToPath(import.meta.resolve('@bytecodealliance/componentize-js')))
const { default: wizer } = await import(pathToFileURL(fromComponentize.resolve('@bytecodealliance/wizer')).href) as { default: string }
const run = spawnSync(wizer, wizerArgs, { input: scriptArgs, env, stdio: ['pipe', 'inherit', 'inherit'] })
if (run.error !== undefined) fail(`could not start wizer: ${run.error.message}`)
if (run.status !== 0) process.exit(run.status ?? 1)
writeFileSync(output, restoreAfterSnapshot(readFileSync(output), patched))
