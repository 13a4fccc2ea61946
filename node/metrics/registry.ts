// A Prometheus registry of our own: counters, gauges, histograms, summaries (count and sum) and
// untyped metrics with labels, rendered in the text exposition format, version 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/). It is a few hundred lines with
// no dependency, so a node carries it from start (libp2p registers its metrics while it is built)
// without adding to its idle memory; values are plain numbers in maps until a scrape renders them.
//
// Rules the format imposes and this file keeps:
//   - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do not
//     start with "__"; `le` is a histogram's own label, `quantile` a summary's;
//   - every family is rendered once, HELP then TYPE then its samples, families in name order;
//   - label values escape backslash, double quote and newline; HELP escapes backslash and newline;
//   - a histogram's buckets are cumulative and end with le="+Inf", equal to its _count.
// A family holds at most `maxSeries` label combinations; samples for new ones past that are
// dropped (and counted in hive_metrics_series_dropped_total), so a label fed from outside cannot
// grow the node's memory without bound.

import { MetricNameError } from '../errors.ts'

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
export type LabelValues = Record<string, string | number>

export interface MetricOptions {
  name: string
  help: string
  labelNames?: readonly string[]
  /** Runs before each render: read a value that lives elsewhere and set it here. */
  collect?: () => void | Promise<void>
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, increasing; +Inf is added. */
  buckets?: readonly number[]
}

/** Seconds: from 5 ms to 5 minutes, for task and run durations. */
export const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
export const DEFAULT_MAX_SERIES = 1000

export function isMetricName (name: string): boolean {
  return NAME.test(name)
}

export function isLabelName (name: string): boolean {
  return LABEL.test(name) && !name.startsWith('__')
}

/** Any text as a metric name: characters outside the format become `_`, runs of `_` one. */
export function metricName (text: string): string {
  const name = text.replace(/[^a-zA-Z0-9_:]/g, '_').replace(/_+/g, '_')
  return /^[0-9]/.test(name) ? `_${name}` : name
}

/** Any text as a label name. */
export function labelName (text: string): string {
  const name = text.replace(/[^a-zA-Z0-9_]/g, '_').replace(/_+/g, '_').replace(/^_+/, '')
  return name === '' || /^[0-9]/.test(name) ? `l_${name}` : name
}

export function formatValue (value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}

export function escapeLabelValue (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

export function escapeHelp (help: string): string {
  return help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')
}

interface Series<T> {
  values: string[]
  data: T
}

abstract class Family<T> {
  readonly name: string
  readonly help: string
  readonly labelNames: readonly string[]
  abstract readonly type: MetricType
  readonly collect?: () => void | Promise<void>
  protected readonly series = new Map<string, Series<T>>()
  private readonly registry: Registry

  constructor (registry: Registry, options: MetricOptions, reserved: string[] = []) {
    if (!isMetricName(options.name)) throw new MetricNameError(`"${options.name}" is not a metric name (letters, digits, _ and :, not starting with a digit)`)
    const labelNames = options.labelNames ?? []
    for (const l of labelNames) {
      if (!isLabelName(l) || reserved.includes(l)) throw new MetricNameError(`"${l}" is not a label name ${options.name} may use`)
    }
    if (new Set(labelNames).size !== labelNames.length) throw new MetricNameError(`${options.name} names a label twice`)
    this.registry = registry
    this.name = options.name
    this.help = options.help
    this.labelNames = labelNames
    if (options.collect != null) this.collect = options.collect
  }

  protected abstract empty (): T

  /** The series for these label values, made on first use; undefined once the family is full. */
  protected at (labels: LabelValues = {}): T | undefined {
    const values = this.labelNames.map(l => String(labels[l] ?? ''))
    return this.atKey(values.join('\u0000'), values)
  }

  /** `at` with the label values already joined into the series key (a hot path keeps them). */
  protected atKey (key: string, values: string[]): T | undefined {
    let entry = this.series.get(key)
    if (entry == null) {
      if (this.series.size >= this.registry.maxSeries) {
        this.registry.dropped(this.name)
        return undefined
      }
      entry = { values, data: this.empty() }
      this.series.set(key, entry)
    }
    return entry.data
  }

  /** Makes the series of each label set, so it shows (at zero) before it first moves. */
  init (...labelSets: LabelValues[]): this {
    for (const labels of labelSets) this.at(labels)
    return this
  }

  reset (): void {
    this.series.clear()
  }

  protected labelText (values: string[], extra?: [string, string]): string {
    const pairs = this.labelNames.map((l, i) => `${l}="${escapeLabelValue(values[i] ?? '')}"`)
    if (extra != null) pairs.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`)
    return pairs.length === 0 ? '' : `{${pairs.join(',')}}`
  }

  abstract samples (): string[]

  /** The family's text: HELP and TYPE even while a labelled family has no series, so it is known. */
  render (): string {
    // a family without labels always has its one series, at zero until it moves
    if (this.labelNames.length === 0 && this.series.size === 0) this.at({})
    const lines = [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`, ...this.samples()]
    return lines.join('\n') + '\n'
  }
}

abstract class ValueFamily extends Family<{ value: number }> {
  protected empty (): { value: number } {
    return { value: 0 }
  }

  /** The current value of one series (0 when it has none yet). */
  get (labels: LabelValues = {}): number {
    const key = this.labelNames.map(l => String(labels[l] ?? '')).join('\u0000')
    return this.series.get(key)?.data.value ?? 0
  }

  samples (): string[] {
    return [...this.series.values()].map(s => `${this.name}${this.labelText(s.values)} ${formatValue(s.data.value)}`)
  }
}

export class Counter extends ValueFamily {
  readonly type = 'counter'

  /** `inc` for one label set, its key made once: for counters moved on every frame. */
  incrementer (labels: LabelValues = {}): (by: number) => void {
    const values = this.labelNames.map(l => String(labels[l] ?? ''))
    const key = values.join('\u0000')
    return (by) => {
      if (!(by >= 0)) return
      const s = this.atKey(key, values)
      if (s != null) s.value += by
    }
  }

  inc (labels?: LabelValues, by = 1): void {
    // a counter only goes up; a negative or non-number step is a caller's slip, not a reset
    if (!(by >= 0)) return
    const s = this.at(labels)
    if (s != null) s.value += by
  }

  /** Sets the total read from a source that counts on its own (a calculated counter). */
  setTotal (labels: LabelValues | undefined, total: number): void {
    const s = this.at(labels)
    if (s != null && Number.isFinite(total)) s.value = total
  }
}

export class Gauge extends ValueFamily {
  readonly type: 'gauge' | 'untyped'

  constructor (registry: Registry, options: MetricOptions, type: 'gauge' | 'untyped' = 'gauge') {
    super(registry, options)
    this.type = type
  }

  set (labels: LabelValues | undefined, value: number): void {
    const s = this.at(labels)
    if (s != null) s.value = value
  }

  inc (labels?: LabelValues, by = 1): void {
    const s = this.at(labels)
    if (s != null) s.value += by
  }

  dec (labels?: LabelValues, by = 1): void {
    const s = this.at(labels)
    if (s != null) s.value -= by
  }
}

interface Distribution { counts: number[], sum: number, count: number }

export class Histogram extends Family<Distribution> {
  readonly type = 'histogram'
  readonly buckets: readonly number[]

  constructor (registry: Registry, options: HistogramOptions) {
    super(registry, options, ['le'])
    const buckets = [...(options.buckets ?? DURATION_BUCKETS)].filter(b => b !== Infinity)
    for (let i = 0; i < buckets.length; i++) {
      if (!Number.isFinite(buckets[i]) || (i > 0 && (buckets[i] as number) <= (buckets[i - 1] as number))) {
        throw new MetricNameError(`the buckets of ${options.name} must be finite and increasing`)
      }
    }
    this.buckets = buckets
  }

  protected empty (): Distribution {
    return { counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 }
  }

  observe (labels: LabelValues | undefined, value: number): void {
    if (Number.isNaN(value)) return
    const d = this.at(labels)
    if (d == null) return
    const i = this.buckets.findIndex(b => value <= b)
    if (i >= 0) d.counts[i] = (d.counts[i] ?? 0) + 1
    d.sum += value
    d.count++
  }

  /** How many observations one series holds. */
  count (labels: LabelValues = {}): number {
    const key = this.labelNames.map(l => String(labels[l] ?? '')).join('\u0000')
    return this.series.get(key)?.data.count ?? 0
  }

  samples (): string[] {
    const out: string[] = []
    for (const s of this.series.values()) {
      let cumulative = 0
      this.buckets.forEach((bound, i) => {
        cumulative += s.data.counts[i] ?? 0
        out.push(`${this.name}_bucket${this.labelText(s.values, ['le', formatValue(bound)])} ${cumulative}`)
      })
      out.push(`${this.name}_bucket${this.labelText(s.values, ['le', '+Inf'])} ${s.data.count}`)
      out.push(`${this.name}_sum${this.labelText(s.values)} ${formatValue(s.data.sum)}`)
      out.push(`${this.name}_count${this.labelText(s.values)} ${s.data.count}`)
    }
    return out
  }
}

/** A summary without quantiles: how many observations and their sum, which the format allows. */
export class Summary extends Family<{ sum: number, count: number }> {
  readonly type = 'summary'

  constructor (registry: Registry, options: MetricOptions) {
    super(registry, options, ['quantile'])
  }

  protected empty (): { sum: number, count: number } {
    return { sum: 0, count: 0 }
  }

  observe (labels: LabelValues | undefined, value: number): void {
    if (Number.isNaN(value)) return
    const d = this.at(labels)
    if (d == null) return
    d.sum += value
    d.count++
  }

  samples (): string[] {
    return [...this.series.values()].flatMap(s => [
      `${this.name}_sum${this.labelText(s.values)} ${formatValue(s.data.sum)}`,
      `${this.name}_count${this.labelText(s.values)} ${s.data.count}`
    ])
  }
}

export interface RegistryInit {
  maxSeries?: number
  /** Told once per family that reaches maxSeries. */
  onDropped?: (name: string) => void
}

export class Registry {
  readonly maxSeries: number
  private readonly families = new Map<string, Family<unknown>>()
  private readonly droppedSeries: Counter
  private readonly full = new Set<string>()
  private readonly onDropped?: (name: string) => void

  constructor (init: RegistryInit = {}) {
    this.maxSeries = init.maxSeries ?? DEFAULT_MAX_SERIES
    if (init.onDropped != null) this.onDropped = init.onDropped
    this.droppedSeries = this.counter({ name: 'hive_metrics_series_dropped_total', help: 'Samples dropped because their metric already held its maximum number of label combinations', labelNames: ['metric'] })
  }

  private add<F extends Family<any>>(family: F): F {
    const names = family.type === 'histogram' ? [family.name, `${family.name}_bucket`, `${family.name}_sum`, `${family.name}_count`] : family.type === 'summary' ? [family.name, `${family.name}_sum`, `${family.name}_count`] : [family.name]
    for (const n of names) {
      if (this.families.has(n) || this.taken(n)) throw new MetricNameError(`a metric named ${n} is already registered`)
    }
    this.families.set(family.name, family)
    return family
  }

  /** Whether a name collides with the _bucket/_sum/_count samples of a family already here. */
  private taken (name: string): boolean {
    const base = name.replace(/_(bucket|sum|count)$/, '')
    const f = this.families.get(base)
    return base !== name && f != null && (f.type === 'histogram' || f.type === 'summary')
  }

  has (name: string): boolean {
    return this.families.has(name)
  }

  get (name: string): Family<unknown> | undefined {
    return this.families.get(name)
  }

  counter (options: MetricOptions): Counter {
    return this.add(new Counter(this, options))
  }

  gauge (options: MetricOptions): Gauge {
    return this.add(new Gauge(this, options))
  }

  /** A value whose kind is not known (the format's `untyped`). */
  untyped (options: MetricOptions): Gauge {
    return this.add(new Gauge(this, options, 'untyped'))
  }

  histogram (options: HistogramOptions): Histogram {
    return this.add(new Histogram(this, options))
  }

  summary (options: MetricOptions): Summary {
    return this.add(new Summary(this, options))
  }

  /** @internal a family reached maxSeries */
  dropped (name: string): void {
    this.droppedSeries.inc({ metric: name })
    if (!this.full.has(name)) {
      this.full.add(name)
      this.onDropped?.(name)
    }
  }

  /**
   * Runs every family's collect, then renders them all. A collect that throws leaves its family
   * as it was: one failing reading does not cost the scrape.
   */
  async render (): Promise<string> {
    const families = [...this.families.values()].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
    await Promise.all(families.map(async f => {
      try {
        await f.collect?.()
      } catch {
        // the family keeps its last values
      }
    }))
    return families.map(f => f.render()).join('')
  }
}

/** The content type of the text format. */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'
