// Shared shape and printing of benchmark results.

export interface BenchRow {
  metric: string
  value: number
  unit: string
  /** The same-run baseline this figure is compared with, if any. */
  baseline?: { label: string, value: number }
  note?: string
}

export interface BenchResult {
  title: string
  rows: BenchRow[]
}

function fmt (n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString('en-US')
  return n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(3)
}

export function printTable (result: BenchResult): void {
  const rows = result.rows.map(r => [
    r.metric,
    `${fmt(r.value)} ${r.unit}`,
    r.baseline != null ? `${r.baseline.label}: ${fmt(r.baseline.value)} ${r.unit}` : '',
    r.baseline != null && r.baseline.value !== 0 ? `${(r.value / r.baseline.value).toFixed(2)}×` : '',
    r.note ?? ''
  ])
  const headers = ['metric', 'value', 'baseline', 'ratio', 'note']
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map(r => r[i]!.length)))
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  process.stdout.write(`\n${result.title}\n${line(headers)}\n${widths.map(w => '-'.repeat(w)).join('  ')}\n${rows.map(line).join('\n')}\n`)
}

export function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]!
}

/** Runs `one(0)` … `one(count - 1)` one after another; resolves to each one's time in ms. */
export async function timed (count: number, one: (i: number) => Promise<void>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < count; i++) {
    const t0 = performance.now()
    await one(i)
    out.push(performance.now() - t0)
  }
  return out
}

/** Runs `one(0)` … `one(count - 1)` with `inFlight` at a time; resolves to completions per second. */
export async function throughput (count: number, inFlight: number, one: (i: number) => Promise<void>): Promise<number> {
  let next = 0
  const t0 = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    for (let i = next++; i < count; i = next++) await one(i)
  }))
  return count / ((performance.now() - t0) / 1000)
}
