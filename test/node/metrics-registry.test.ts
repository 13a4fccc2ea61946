// The metrics registry and libp2p's metrics interface on it: the text format (checked by promtool,
// Prometheus's own parser and linter, and by hand where the format fixes a value), the bounds,
// and how each of libp2p's metric kinds lands.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { Registry, escapeLabelValue, formatValue, labelName, metricName } from '../../node/metrics/registry.ts'
import { RegistryMetrics } from '../../node/metrics/libp2p.ts'
import { assertPromtoolPasses, promtoolSkip } from '../helpers/promtool.ts'
import type { MultiaddrConnection, Stream } from '@libp2p/interface'

const skip = await promtoolSkip()

/** The value of one sample line, by its name and labels as written. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1).replace('+Inf', 'Infinity'))
}

describe('metrics registry', () => {
  it('renders HELP, TYPE and samples per family, families in name order', async () => {
    const r = new Registry()
    r.gauge({ name: 'b_gauge', help: 'a gauge' }).set(undefined, 2.5)
    r.counter({ name: 'a_things_total', help: 'things', labelNames: ['kind'] }).inc({ kind: 'x' }, 3)
    const text = await r.render()
    const a = text.indexOf('# HELP a_things_total things\n# TYPE a_things_total counter\na_things_total{kind="x"} 3\n')
    const b = text.indexOf('# HELP b_gauge a gauge\n# TYPE b_gauge gauge\nb_gauge 2.5\n')
    assert.ok(a >= 0 && b > a, text)
    assert.ok(text.endsWith('\n'))
  })

  it('escapes label values and help text as the format says, and promtool reads them back', { skip }, async () => {
    const r = new Registry()
    r.counter({ name: 'odd_total', help: 'back\\slash and\nnewline', labelNames: ['v'] })
      .inc({ v: 'quote " back \\ newline \n end' })
    const text = await r.render()
    assert.ok(text.includes('# HELP odd_total back\\\\slash and\\nnewline\n'), text)
    assert.ok(text.includes('odd_total{v="quote \\" back \\\\ newline \\n end"} 1\n'), text)
    await assertPromtoolPasses(text)
  })

  it('a histogram has cumulative buckets ending at +Inf equal to its count, a sum and a count', { skip }, async () => {
    const r = new Registry()
    const h = r.histogram({ name: 'wait_seconds', help: 'waits', labelNames: ['k'], buckets: [0.1, 1, 10] })
    for (const v of [0.05, 0.1, 0.5, 5, 50]) h.observe({ k: 'a' }, v)
    const text = await r.render()
    assert.equal(sample(text, 'wait_seconds_bucket{k="a",le="0.1"}'), 2)
    assert.equal(sample(text, 'wait_seconds_bucket{k="a",le="1"}'), 3)
    assert.equal(sample(text, 'wait_seconds_bucket{k="a",le="10"}'), 4)
    assert.equal(sample(text, 'wait_seconds_bucket{k="a",le="+Inf"}'), 5)
    assert.equal(sample(text, 'wait_seconds_count{k="a"}'), 5)
    assert.equal(sample(text, 'wait_seconds_sum{k="a"}'), 55.65)
    await assertPromtoolPasses(text)
  })

  it('a family without labels shows 0 before it moves; a labelled one its HELP and TYPE, and only its series', async () => {
    const r = new Registry()
    r.counter({ name: 'quiet_total', help: 'never moved' })
    r.counter({ name: 'labelled_total', help: 'no series yet', labelNames: ['x'] })
    r.counter({ name: 'ready_total', help: 'made in advance', labelNames: ['x'] }).init({ x: 'a' }, { x: 'b' })
    const text = await r.render()
    assert.equal(sample(text, 'quiet_total'), 0)
    assert.ok(text.includes('# HELP labelled_total no series yet\n# TYPE labelled_total counter\n'))
    assert.ok(!text.split('\n').some(l => l.startsWith('labelled_total')))
    assert.equal(sample(text, 'ready_total{x="a"}'), 0)
    assert.equal(sample(text, 'ready_total{x="b"}'), 0)
  })

  it('a counter never goes down; special values are written as the format spells them', async () => {
    const r = new Registry()
    const c = r.counter({ name: 'up_total', help: 'up' })
    c.inc(undefined, 2)
    c.inc(undefined, -5)
    c.inc(undefined, Number.NaN)
    assert.equal(c.get(), 2)
    assert.deepEqual([formatValue(Infinity), formatValue(-Infinity), formatValue(Number.NaN), formatValue(0.25)], ['+Inf', '-Inf', 'NaN', '0.25'])
    assert.equal(escapeLabelValue('a"b'), 'a\\"b')
  })

  it('refuses names the format does not allow and a name registered twice', () => {
    const r = new Registry()
    assert.throws(() => r.counter({ name: '9lives_total', help: 'x' }), { name: 'MetricName' })
    assert.throws(() => r.gauge({ name: 'ok', help: 'x', labelNames: ['__reserved'] }), { name: 'MetricName' })
    assert.throws(() => r.histogram({ name: 'h', help: 'x', labelNames: ['le'] }), { name: 'MetricName' })
    assert.throws(() => r.histogram({ name: 'h2', help: 'x', buckets: [1, 1] }), { name: 'MetricName' })
    r.histogram({ name: 'lat_seconds', help: 'x' })
    assert.throws(() => r.gauge({ name: 'lat_seconds', help: 'x' }), { name: 'MetricName' })
    assert.throws(() => r.gauge({ name: 'lat_seconds_count', help: 'x' }), { name: 'MetricName' })
    assert.equal(metricName('libp2p.kad-dht/1.0'), 'libp2p_kad_dht_1_0')
    assert.equal(labelName('9 lives'), 'l_9_lives')
  })

  it('holds at most maxSeries label combinations per family and counts what it drops', async () => {
    const told: string[] = []
    const r = new Registry({ maxSeries: 3, onDropped: (name) => { told.push(name) } })
    const c = r.counter({ name: 'peers_total', help: 'x', labelNames: ['peer'] })
    for (let i = 0; i < 10; i++) c.inc({ peer: `p${i}` })
    const text = await r.render()
    assert.equal(text.split('\n').filter(l => l.startsWith('peers_total{')).length, 3)
    assert.equal(sample(text, 'hive_metrics_series_dropped_total{metric="peers_total"}'), 7)
    assert.deepEqual(told, ['peers_total'])
    c.inc({ peer: 'p0' })
    assert.equal(c.get({ peer: 'p0' }), 2, 'a series already held still moves')
  })

  it('a collect that throws leaves its family as it was and the scrape goes on', async () => {
    const r = new Registry()
    let fail = false
    const g = r.gauge({ name: 'read_here', help: 'x', collect: () => { if (fail) throw new Error('source gone'); g.set(undefined, 7) } })
    r.gauge({ name: 'other', help: 'x' }).set(undefined, 1)
    assert.equal(sample(await r.render(), 'read_here'), 7)
    fail = true
    const text = await r.render()
    assert.equal(sample(text, 'read_here'), 7)
    assert.equal(sample(text, 'other'), 1)
  })
})

describe('libp2p metrics on the registry', () => {
  it('maps each of libp2p\'s kinds, and the result passes promtool', { skip }, async () => {
    const r = new Registry()
    const m = new RegistryMetrics(r)
    m.registerMetric('libp2p_thing_size').update(4)
    m.registerMetric('libp2p_calc', { calculate: () => 9 })
    m.registerMetricGroup('libp2p_conns', { calculate: async () => ({ inbound: 2, 'outbound pending': 1 }) })
    m.registerMetricGroup('libp2p_kad_operations_total', { label: 'operation' }).increment({ get: true, put: 2 })
    m.registerCounter('libp2p_dials').increment()
    m.registerCounterGroup('libp2p_errors_total', { label: 'error' }).increment({ timeout: 2 })
    m.registerCounterGroup('libp2p_counted_total', { calculate: () => ({ a: 5 }) })
    m.registerHistogram('libp2p_rtt_seconds', { buckets: [0.1, 1] }).observe(0.5)
    m.registerHistogramGroup('libp2p_op_seconds', { label: 'op' }).observe({ find: 2 })
    m.registerSummary('libp2p_sizes').observe(3)
    m.registerSummaryGroup('libp2p_sizes_by', { label: 'k' }).observe({ x: 1 })
    m.registerMetricGroup('libp2p_ping_time_milliseconds', { label: 'stat' }).update({ mean: 250 })
    const text = await r.render()

    assert.match(text, /# TYPE libp2p_thing_size gauge\nlibp2p_thing_size 4\n/)
    assert.equal(sample(text, 'libp2p_calc'), 9)
    // a group's label is libp2p's, else the metric's own name
    assert.equal(sample(text, 'libp2p_conns{libp2p_conns="inbound"}'), 2)
    assert.equal(sample(text, 'libp2p_conns{libp2p_conns="outbound pending"}'), 1)
    // a gauge named as a counter is untyped: its kind is not known
    assert.match(text, /# TYPE libp2p_kad_operations_total untyped\n/)
    assert.equal(sample(text, 'libp2p_kad_operations_total{operation="put"}'), 2)
    // a counter is named _total
    assert.match(text, /# TYPE libp2p_dials_total counter\nlibp2p_dials_total 1\n/)
    assert.equal(sample(text, 'libp2p_errors_total{error="timeout"}'), 2)
    assert.equal(sample(text, 'libp2p_counted_total{libp2p_counted_total="a"}'), 5)
    assert.equal(sample(text, 'libp2p_rtt_seconds_bucket{le="1"}'), 1)
    assert.equal(sample(text, 'libp2p_op_seconds_count{op="find"}'), 1)
    assert.match(text, /# TYPE libp2p_sizes summary\nlibp2p_sizes_sum 3\nlibp2p_sizes_count 1\n/)
    // milliseconds are shown in the base unit
    assert.equal(sample(text, 'libp2p_ping_time_seconds{stat="mean"}'), 0.25)
    assert.ok(!text.includes('milliseconds'))
    await assertPromtoolPasses(text)
    // a calculated counter reports its source's total, not a sum of reads
    assert.equal(sample(await r.render(), 'libp2p_counted_total{libp2p_counted_total="a"}'), 5)
  })

  it('a name registered twice gets the same metric; one our registry refuses still works, unseen', async () => {
    const r = new Registry()
    r.counter({ name: 'libp2p_taken_total', help: 'ours' }).inc()
    const m = new RegistryMetrics(r)
    const first = m.registerMetric('libp2p_twice')
    assert.equal(m.registerMetric('libp2p_twice'), first)
    const refused = m.registerCounter('libp2p_taken')
    refused.increment()
    refused.increment()
    const text = await r.render()
    assert.equal(sample(text, 'libp2p_taken_total'), 1, 'ours, untouched')
    assert.equal(text.match(/# TYPE libp2p_taken_total/g)?.length, 1)
  })

  it('counts the bytes a connection and a protocol stream send and hand to their readers', async () => {
    const r = new Registry()
    const m = new RegistryMetrics(r)
    const fake = (protocol?: string): EventTarget & { send: (d: Uint8Array) => boolean, protocol?: string, got: number } => {
      const target = new EventTarget() as EventTarget & { send: (d: Uint8Array) => boolean, protocol?: string, got: number }
      target.got = 0
      target.send = () => true
      if (protocol !== undefined) target.protocol = protocol
      target.addEventListener('message', () => { target.got++ })
      return target
    }
    const conn = fake()
    const stream = fake('/hive/placement/1.0.0')
    m.trackMultiaddrConnection(conn as unknown as MultiaddrConnection)
    m.trackProtocolStream(stream as unknown as Stream)
    conn.send(new Uint8Array(10))
    stream.send(new Uint8Array(3))
    const message = Object.assign(new Event('message'), { data: new Uint8Array(7) })
    stream.dispatchEvent(message)
    assert.equal(stream.got, 1, 'the stream\'s own reader still gets the message')
    const text = await r.render()
    assert.equal(sample(text, 'libp2p_data_transfer_bytes_total{protocol="global",direction="sent"}'), 10)
    assert.equal(sample(text, 'libp2p_data_transfer_bytes_total{protocol="/hive/placement/1.0.0",direction="sent"}'), 3)
    assert.equal(sample(text, 'libp2p_data_transfer_bytes_total{protocol="/hive/placement/1.0.0",direction="received"}'), 7)
    assert.equal(m.traceFunction('f', (x: number) => x + 1)(1), 2)
  })
})
