// libp2p's metrics interface (`Metrics` of @libp2p/interface v3) onto our registry, so what
// libp2p, its transports, noise and the DHT count shows at `/metrics` beside our own metrics.
// libp2p's own module, @libp2p/prometheus-metrics, keeps its metrics in a module-wide map and
// prom-client's global registry, so two nodes in one process (every multi-node test) would share
// or clear each other's; this one belongs to one node.
//
// How libp2p's kinds map:
//   registerMetric / registerMetricGroup     gauge ("untyped" when the name ends in _total: the
//                                            name says counter, the kind says gauge)
//   registerCounter / registerCounterGroup   counter (named ..._total); a calculated counter
//                                            reports the total its source keeps
//   registerHistogram(Group)                 histogram (libp2p's buckets, else DURATION_BUCKETS)
//   registerSummary(Group)                   summary with count and sum only
// A gauge libp2p names in milliseconds (the DHT's adaptive timeouts) is shown in the base unit
// Prometheus asks for: named _seconds, its values divided by 1000.
// A group's label is the one libp2p names, else the metric's own name (as @libp2p/prometheus-metrics
// does, so libp2p's published dashboards read these series too). Connections and protocol streams
// are counted in libp2p_data_transfer_bytes_total{protocol,direction}.

import { MetricNameError } from '../errors.ts'
import { DURATION_BUCKETS, Registry, labelName, metricName } from './registry.ts'
import type { Counter as RegistryCounter, Gauge, Histogram as RegistryHistogram, Summary as RegistrySummary } from './registry.ts'
import type {
  CalculateMetric, Counter, CounterGroup, Histogram, HistogramGroup, HistogramOptions, Metric, MetricGroup, MetricOptions, Metrics,
  MultiaddrConnection, StopTimer, Stream, Summary, SummaryGroup
} from '@libp2p/interface'

type Options = MetricOptions & HistogramOptions & { calculate?: CalculateMetric<number> | CalculateMetric<Record<string, number>> }

const DEFAULT_TRACE = undefined

function helpOf (name: string, options: Options): string {
  return options.help ?? `libp2p metric ${name}`
}

function elapsed (started: number): number {
  return (performance.now() - started) / 1000
}

function step (value: number | true | undefined): number {
  return typeof value === 'number' ? value : 1
}

export class RegistryMetrics implements Metrics {
  private readonly registry: Registry
  /** Handles by libp2p's name: a second registration of a name gets the first one's handle. */
  private readonly handles = new Map<string, unknown>()
  private readonly transfer: RegistryCounter

  constructor (registry: Registry) {
    this.registry = registry
    this.transfer = registry.counter({
      name: 'libp2p_data_transfer_bytes_total',
      help: 'Bytes sent and received by libp2p, on all connections (protocol="global") and per protocol stream',
      labelNames: ['protocol', 'direction']
    })
  }

  readonly [Symbol.toStringTag] = 'hive-node/metrics'

  /**
   * Counts what a stream sends and what it dispatches to its readers. It wraps `send` and
   * `dispatchEvent` rather than listening for `message`: a listener would make the stream hand
   * out buffered data before the protocol's own reader is attached.
   */
  private track (stream: MultiaddrConnection | Stream, protocol: string): void {
    const sent = this.incrementer(protocol, 'sent')
    const received = this.incrementer(protocol, 'received')
    const send = stream.send.bind(stream)
    stream.send = (data) => {
      sent(data.byteLength)
      return send(data)
    }
    const dispatch = stream.dispatchEvent.bind(stream)
    stream.dispatchEvent = (event: Event) => {
      if (event.type === 'message') received((event as Event & { data?: { byteLength: number } }).data?.byteLength ?? 0)
      return dispatch(event)
    }
  }

  /** One counting function per protocol and direction, shared by every stream of it. */
  private readonly incrementers = new Map<string, (by: number) => void>()

  private incrementer (protocol: string, direction: 'sent' | 'received'): (by: number) => void {
    const key = `${direction} ${protocol}`
    let inc = this.incrementers.get(key)
    if (inc == null) {
      inc = this.transfer.incrementer({ protocol, direction })
      if (this.incrementers.size < 1024) this.incrementers.set(key, inc)
    }
    return inc
  }

  trackMultiaddrConnection (maConn: MultiaddrConnection): void {
    this.track(maConn, 'global')
  }

  trackProtocolStream (stream: Stream): void {
    if (stream.protocol == null || stream.protocol === '') return
    this.track(stream, stream.protocol)
  }

  /**
   * The handle for a name, made on its first registration. A name our registry refuses (taken
   * by a metric of another kind) gets a working handle on a registry of its own, not shown: a
   * metric must never stop libp2p from starting.
   */
  private once<T> (name: string, make: (registry: Registry) => T): T {
    const existing = this.handles.get(name)
    if (existing !== undefined) return existing as T
    let made: T
    try {
      made = make(this.registry)
    } catch (err) {
      if (!(err instanceof MetricNameError)) throw err
      made = make(new Registry())
    }
    this.handles.set(name, made)
    return made
  }

  private gaugeFamily (registry: Registry, name: string, options: Options, labelNames: string[], collect?: () => Promise<void>): Gauge {
    const init = { name, help: helpOf(name, options), labelNames, ...(collect != null ? { collect } : {}) }
    return name.endsWith('_total') ? registry.untyped(init) : registry.gauge(init)
  }

  /** A gauge's name in base units, and the factor its values take to get there. */
  private gaugeName (name: string): { n: string, k: number } {
    const n = metricName(name)
    return n.endsWith('_milliseconds') ? { n: `${n.slice(0, -'_milliseconds'.length)}_seconds`, k: 1 / 1000 } : { n, k: 1 }
  }

  registerMetric (name: string, options: Options = {}): any {
    const { n, k } = this.gaugeName(name)
    const calculate = options.calculate as CalculateMetric<number> | undefined
    return this.once(n, (r): Metric => {
      let gauge: Gauge | undefined
      const collect = calculate == null ? undefined : async () => { gauge?.set(undefined, k * await calculate()) }
      gauge = this.gaugeFamily(r, n, options, [], collect)
      const g = gauge
      return {
        update: (value) => { g.set(undefined, k * value) },
        increment: (value = 1) => { g.inc(undefined, k * value) },
        decrement: (value = 1) => { g.dec(undefined, k * value) },
        reset: () => { g.set(undefined, 0) },
        timer: (): StopTimer => {
          const started = performance.now()
          return () => { g.set(undefined, elapsed(started)) }
        }
      }
    })
  }

  registerMetricGroup (name: string, options: Options = {}): any {
    const { n, k } = this.gaugeName(name)
    // the label keeps libp2p's own name for it
    const label = labelName(options.label ?? metricName(name))
    const calculate = options.calculate as CalculateMetric<Record<string, number>> | undefined
    return this.once(n, (r): MetricGroup => {
      let gauge: Gauge | undefined
      // a calculated group shows exactly the keys its source has now
      const collect = calculate == null
        ? undefined
        : async () => {
          const values = await calculate()
          gauge?.reset()
          for (const [key, value] of Object.entries(values)) gauge?.set({ [label]: key }, k * value)
        }
      gauge = this.gaugeFamily(r, n, options, [label], collect)
      const g = gauge
      return {
        update: (values) => { for (const [key, value] of Object.entries(values)) if (typeof value === 'number') g.set({ [label]: key }, k * value) },
        increment: (values) => { for (const [key, value] of Object.entries(values)) g.inc({ [label]: key }, k * step(value)) },
        decrement: (values) => { for (const [key, value] of Object.entries(values)) g.dec({ [label]: key }, k * step(value)) },
        reset: () => { g.reset() },
        timer: (key: string): StopTimer => {
          const started = performance.now()
          return () => { g.set({ [label]: key }, elapsed(started)) }
        }
      }
    })
  }

  private counterName (name: string): string {
    const n = metricName(name)
    return n.endsWith('_total') ? n : `${n}_total`
  }

  registerCounter (name: string, options: Options = {}): any {
    const n = this.counterName(name)
    const calculate = options.calculate as CalculateMetric<number> | undefined
    return this.once(n, (r): Counter => {
      let counter: RegistryCounter | undefined
      const collect = calculate == null ? undefined : async () => { counter?.setTotal(undefined, await calculate()) }
      counter = r.counter({ name: n, help: helpOf(n, options), ...(collect != null ? { collect } : {}) })
      const c = counter
      return {
        increment: (value = 1) => { c.inc(undefined, value) },
        reset: () => { c.reset() }
      }
    })
  }

  registerCounterGroup (name: string, options: Options = {}): any {
    const n = this.counterName(name)
    const label = labelName(options.label ?? metricName(name))
    const calculate = options.calculate as CalculateMetric<Record<string, number>> | undefined
    return this.once(n, (r): CounterGroup => {
      let counter: RegistryCounter | undefined
      const collect = calculate == null
        ? undefined
        : async () => { for (const [key, value] of Object.entries(await calculate())) counter?.setTotal({ [label]: key }, value) }
      counter = r.counter({ name: n, help: helpOf(n, options), labelNames: [label], ...(collect != null ? { collect } : {}) })
      const c = counter
      return {
        increment: (values) => { for (const [key, value] of Object.entries(values)) c.inc({ [label]: key }, step(value)) },
        reset: () => { c.reset() }
      }
    })
  }

  registerHistogram (name: string, options: Options = {}): any {
    const n = metricName(name)
    const calculate = options.calculate as CalculateMetric<number> | undefined
    return this.once(n, (r): Histogram => {
      let histogram: RegistryHistogram | undefined
      const collect = calculate == null ? undefined : async () => { histogram?.observe(undefined, await calculate()) }
      histogram = r.histogram({ name: n, help: helpOf(n, options), buckets: options.buckets ?? DURATION_BUCKETS, ...(collect != null ? { collect } : {}) })
      const h = histogram
      return {
        observe: (value) => { h.observe(undefined, value) },
        reset: () => { h.reset() },
        timer: (): StopTimer => {
          const started = performance.now()
          return () => { h.observe(undefined, elapsed(started)) }
        }
      }
    })
  }

  registerHistogramGroup (name: string, options: Options = {}): any {
    const n = metricName(name)
    const label = labelName(options.label ?? n)
    const calculate = options.calculate as CalculateMetric<Record<string, number>> | undefined
    return this.once(n, (r): HistogramGroup => {
      let histogram: RegistryHistogram | undefined
      const collect = calculate == null
        ? undefined
        : async () => { for (const [key, value] of Object.entries(await calculate())) histogram?.observe({ [label]: key }, value) }
      histogram = r.histogram({ name: n, help: helpOf(n, options), labelNames: [label], buckets: options.buckets ?? DURATION_BUCKETS, ...(collect != null ? { collect } : {}) })
      const h = histogram
      return {
        observe: (values) => { for (const [key, value] of Object.entries(values)) if (typeof value === 'number') h.observe({ [label]: key }, value) },
        reset: () => { h.reset() },
        timer: (key: string): StopTimer => {
          const started = performance.now()
          return () => { h.observe({ [label]: key }, elapsed(started)) }
        }
      }
    })
  }

  registerSummary (name: string, options: Options = {}): any {
    const n = metricName(name)
    const calculate = options.calculate as CalculateMetric<number> | undefined
    return this.once(n, (r): Summary => {
      let summary: RegistrySummary | undefined
      const collect = calculate == null ? undefined : async () => { summary?.observe(undefined, await calculate()) }
      summary = r.summary({ name: n, help: helpOf(n, options), ...(collect != null ? { collect } : {}) })
      const s = summary
      return {
        observe: (value) => { s.observe(undefined, value) },
        reset: () => { s.reset() },
        timer: (): StopTimer => {
          const started = performance.now()
          return () => { s.observe(undefined, elapsed(started)) }
        }
      }
    })
  }

  registerSummaryGroup (name: string, options: Options = {}): any {
    const n = metricName(name)
    const label = labelName(options.label ?? n)
    const calculate = options.calculate as CalculateMetric<Record<string, number>> | undefined
    return this.once(n, (r): SummaryGroup => {
      let summary: RegistrySummary | undefined
      const collect = calculate == null
        ? undefined
        : async () => { for (const [key, value] of Object.entries(await calculate())) summary?.observe({ [label]: key }, value) }
      summary = r.summary({ name: n, help: helpOf(n, options), labelNames: [label], ...(collect != null ? { collect } : {}) })
      const s = summary
      return {
        observe: (values) => { for (const [key, value] of Object.entries(values)) if (typeof value === 'number') s.observe({ [label]: key }, value) },
        reset: () => { s.reset() },
        timer: (key: string): StopTimer => {
          const started = performance.now()
          return () => { s.observe({ [label]: key }, elapsed(started)) }
        }
      }
    })
  }

  // tracing is not collected: functions run as they are
  traceFunction<F extends (...args: any[]) => any> (_name: string, fn: F): F {
    return fn
  }

  createTrace (): any {
    return DEFAULT_TRACE
  }
}

/** libp2p's `metrics` option: every metric libp2p registers lands in `registry`. */
export function libp2pMetrics (registry: Registry): () => Metrics {
  return () => new RegistryMetrics(registry)
}
