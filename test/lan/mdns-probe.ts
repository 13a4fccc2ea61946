// Run inside a host's namespace: asks the LAN by mDNS who offers the hive's service, the way a
// hive node does, and prints what answered as JSON `{ peers: { <PeerId>: [multiaddr…] } }`.
// Stops as soon as every expected PeerId answered, or at the deadline.
//
//   node mdns-probe.ts SERVICE_TAG DEADLINE_MS [EXPECTED_PEER_ID…]

import multicastDns from 'multicast-dns'

const [serviceTag, deadlineText, ...expected] = process.argv.slice(2)
if (serviceTag == null || deadlineText == null) {
  process.stderr.write('usage: mdns-probe.ts SERVICE_TAG DEADLINE_MS [EXPECTED_PEER_ID…]\n')
  process.exit(2)
}

const peers: Record<string, string[]> = {}
const mdns = multicastDns()
let finished = false

const finish = (): void => {
  if (finished) return
  finished = true
  clearInterval(asking)
  clearTimeout(deadline)
  process.stdout.write(JSON.stringify({ peers }) + '\n')
  mdns.destroy()
}

mdns.on('response', (response) => {
  const records = [...response.answers, ...(response.additionals ?? [])]
  if (!records.some(r => r.type === 'PTR' && r.name === serviceTag)) return
  for (const record of records) {
    if (record.type !== 'TXT') continue
    const data = Array.isArray(record.data) ? record.data : [record.data]
    for (const item of data) {
      const text = item.toString()
      if (!text.startsWith('dnsaddr=')) continue
      const addr = text.slice('dnsaddr='.length)
      const peer = /\/p2p\/([^/]+)$/.exec(addr)?.[1]
      if (peer == null) continue
      peers[peer] = [...new Set([...(peers[peer] ?? []), addr])]
    }
  }
  if (expected.length > 0 && expected.every(p => p in peers)) finish()
})
mdns.on('warning', (err: Error) => { process.stderr.write(`mdns warning: ${err.message}\n`) })

const ask = (): void => { mdns.query({ questions: [{ name: serviceTag, type: 'PTR' }] }) }
ask()
const asking = setInterval(ask, 1_000)
const deadline = setTimeout(finish, Number(deadlineText))
