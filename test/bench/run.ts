// `npm run bench [-- name…]`: runs every test/bench/*.bench.ts (or those named) and prints
// each one's table. Benchmarks report figures and ratios against a baseline measured in the
// same run; they never pass or fail on time.

import { readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { printTable } from './table.ts'
import type { BenchResult } from './table.ts'

const dir = fileURLToPath(new URL('.', import.meta.url))
const wanted = process.argv.slice(2)
const files = (await readdir(dir)).filter(f => f.endsWith('.bench.ts')).sort()
  .filter(f => wanted.length === 0 || wanted.some(w => f.startsWith(w)))

if (files.length === 0) {
  process.stderr.write(`no benchmark matches ${wanted.join(', ')}; have: ${(await readdir(dir)).filter(f => f.endsWith('.bench.ts')).join(', ')}\n`)
  process.exit(2)
}

for (const file of files) {
  process.stderr.write(`running ${file} …\n`)
  const module = await import(new URL(file, import.meta.url).href) as { run: () => Promise<BenchResult> }
  printTable(await module.run())
}
