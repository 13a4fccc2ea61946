// The human form of an explanation, shared by `hive-node explain` and anyone else who prints one.

import type { Explanation } from './views.ts'

function short (peerId: string): string {
  return peerId.length > 16 ? `…${peerId.slice(-8)}` : peerId
}

export function explainText (e: Explanation, names: (peerId: string) => string | undefined = () => undefined): string {
  const who = (peerId: string): string => {
    const name = names(peerId) ?? e.bids.find(b => b.bidder === peerId)?.name
    return name != null ? `${name} (${short(peerId)})` : peerId
  }
  const lines: string[] = []
  lines.push(`Task ${e.task}: ${e.status}${e.winner != null ? ` — ${e.status === 'done' || e.status === 'failed' ? 'ran on' : 'awarded to'} ${who(e.winner)}` : ''}`)
  lines.push(`Submitted by ${who(e.submitter)}`)
  lines.push(`Rule: ${e.rule}`)
  const req = e.requirements
  lines.push(`Requirements: runtime ${req.runtime}${req.models.length > 0 ? `, models ${req.models.join(', ')}` : ''}${req.minMemoryMiB != null ? `, ${req.minMemoryMiB} MiB` : ''}${req.minCores != null ? `, ${req.minCores} cores` : ''}${req.peer != null ? `, pinned to ${who(req.peer)}` : ''}`)
  lines.push(`Bids (${e.bids.length}${e.expected.length > 0 ? ` of ${e.expected.length} live capable members` : ''}):`)
  for (const bid of e.bids) {
    const won = e.rounds.some(r => r.winner === bid.bidder)
    lines.push(`  ${String(bid.rank).padStart(2)}. ${who(bid.bidder)}  cost ${bid.cost}${won ? '  ← won a round' : ''}${bid.excluded ? '  (excluded: lost the task)' : ''}`)
    for (const r of bid.reasons) lines.push(`        +${r.points} ${r.factor}: ${r.detail}`)
  }
  if (e.missing.length > 0) lines.push(`No bid from: ${e.missing.map(who).join(', ')}`)
  for (const h of e.history.filter(h => h.type === 'bid-declined' && h.peer != null)) lines.push(`Declined: ${who(h.peer as string)} ${h.detail}`)
  for (const r of e.rounds) {
    lines.push(`Round ${r.round}: ${who(r.winner)} at cost ${r.cost} — ${r.why}`)
  }
  const notable = e.history.filter(h => h.type === 'lease-lapsed' || h.type === 'winner-lost' || h.type === 'late-result' || h.type === 'abandoned' || h.type === 'bid-refused' || h.type === 'failed')
  for (const h of notable) lines.push(`${h.type}: ${h.detail}`)
  if (e.result != null) {
    lines.push(e.result.ok ? `Result accepted from ${who(e.result.executor)} (round ${e.result.round}, ${Math.round(e.result.durationMs)} ms)` : `Agent failed on ${who(e.result.executor)}: ${e.result.error ?? ''}`)
    if (e.result.ledger?.seq != null) lines.push(`Ledger: record ${e.result.ledger.seq} in ${who(e.result.executor)}'s chain`)
  }
  return lines.join('\n')
}
