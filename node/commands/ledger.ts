// Ledger commands: `verify` audits every chain held, `ledger` lists a chain. Both ask the
// running node through the API, and open the data directory themselves when no node runs.

import { UsageError, formatTime, table } from '../cli-context.ts'
import { NodeNotRunningError } from '../errors.ts'
import { storedMemberNames, withStoppedNode } from '../offline.ts'
import { netUsageText } from '../../ledger/listing.ts'
import type { AuditReport, ChainReport, LedgerStore, ListingJson, RecordJson } from '../../ledger/index.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

/** The audit found a problem: exit code 1 after the report is printed. */
export class LedgerProblemsError extends Error {
  override name = 'LedgerProblems'
}

/** The data directory has no ledger to read. */
export class NoLedgerError extends Error {
  override name = 'NoLedger'
}

interface VerifyOptions extends CommonOptions {
  peer?: string
}

interface LedgerOptions extends CommonOptions {
  peer?: string
  limit?: string
}

async function parsePeer (value: string | undefined): Promise<string | undefined> {
  if (value == null) return undefined
  const { peerIdFromString } = await import('@libp2p/peer-id')
  try {
    const id = peerIdFromString(value)
    if (id.type !== 'Ed25519') throw new Error(`a ${id.type} PeerId cannot sign ledger records`)
    return id.toString()
  } catch (err) {
    throw new UsageError(`--peer: "${value}" is not an Ed25519 PeerId (${(err as Error).message})`)
  }
}

function parseLimit (value: string | undefined): number | undefined {
  if (value == null) return undefined
  if (!/^[1-9][0-9]{0,8}$/.test(value)) throw new UsageError(`--limit: "${value}" is not a positive whole number`)
  return Number(value)
}

type Names = (peerId: string) => string | undefined

/** Runs `fn` against the stopped node's ledger, with the device names its member list holds. */
async function withStoppedLedger<T> (dataDir: string, fn: (store: LedgerStore) => Promise<T>): Promise<{ value: T, names: Names }> {
  return withStoppedNode(dataDir, 'ledger', async (db) => {
    const { LEDGER_SUBLEVEL, LedgerStore } = await import('../../ledger/index.ts')
    const value = await fn(new LedgerStore(db.sublevel(LEDGER_SUBLEVEL, { keyEncoding: 'utf8', valueEncoding: 'view' })))
    const names = await storedMemberNames(db)
    return { value, names: (peerId) => names.get(peerId) }
  })
}

/** Device names of the hive's members, from the running node (none when it cannot say). */
async function memberNames (cli: CliContext, options: CommonOptions): Promise<Names> {
  const names = new Map<string, string>()
  try {
    const hive = await cli.api(options).get<{ members: Array<{ peerId: string, name?: string | null }> }>('/hive')
    for (const m of hive.members) if (m.name != null) names.set(m.peerId, m.name)
  } catch {}
  return (peerId) => names.get(peerId)
}

/**
 * Asks the running node; when none runs, answers from the data directory. Either way with the
 * members' device names, from the node or from the member list on disk.
 */
async function viaNodeOrDisk<T> (cli: CliContext, options: CommonOptions, path: string, offline: (store: LedgerStore) => Promise<T>): Promise<{ value: T, source: 'node' | 'disk', names: Names }> {
  try {
    const value = await cli.api(options).get<T>(path)
    return { value, source: 'node', names: await memberNames(cli, options) }
  } catch (err) {
    if (!(err instanceof NodeNotRunningError)) throw err
  }
  return { ...await withStoppedLedger(cli.dataDir(options), offline), source: 'disk' }
}

function query (params: Record<string, string | number | undefined>): string {
  const entries = Object.entries(params).filter((e): e is [string, string | number] => e[1] != null)
  return entries.length === 0 ? '' : '?' + new URLSearchParams(entries.map(([k, v]) => [k, String(v)])).toString()
}

function short (id: string): string {
  return id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-6)}` : id
}

function chainLine (chain: ChainReport, reasons: Record<string, string>, names: Names): string[] {
  const name = names(chain.signer)
  const who = `${name !== undefined ? `${name} (${chain.signer})` : chain.signer}${chain.self ? ' (this device)' : ''}`
  const span = chain.end < 0 ? 'no records' : `records 0..${chain.end}`
  const head = chain.head != null ? `, signed head ${chain.head.seq}` : ''
  const behind = chain.behind != null ? `, catching up to ${chain.behind.seq}` : ''
  const lines = [`  ${chain.ok ? 'ok ' : 'BAD'}  ${who}`, `       ${span}${head}${behind}`]
  if (chain.firstBad != null) {
    lines.push(`       first bad record: seq ${chain.firstBad.seq}, ${chain.firstBad.reason} (${reasons[chain.firstBad.reason] ?? ''})`)
    lines.push(`       ${chain.firstBad.message}`)
  }
  for (const fork of chain.forks) {
    const proof = [...fork.records.map(r => `record ${r.hash}`), ...(fork.head != null ? [`head naming ${fork.head.hash}`] : [])]
    lines.push(`       conflict at seq ${fork.seq}, both signed by the signer: ${proof.join(' vs ')}`)
  }
  return lines
}

function renderReport (report: AuditReport, source: 'node' | 'disk', reasons: Record<string, string>, names: Names): string {
  const bad = report.chains.filter(c => !c.ok).length
  const from = source === 'node' ? 'the running node' : 'the data directory (node stopped)'
  return [
    `ledger audit of ${from}: ${report.chains.length} chain${report.chains.length === 1 ? '' : 's'}, ${report.records} records checked in ${report.durationMs} ms`,
    ...report.chains.flatMap(c => chainLine(c, reasons, names)),
    bad === 0 ? 'clean' : `PROBLEMS FOUND in ${bad} chain${bad === 1 ? '' : 's'}`
  ].join('\n')
}

function renderListing (listing: ListingJson, names: Names): string {
  const name = names(listing.signer)
  const header = `chain of ${name !== undefined ? `${name} (${listing.signer})` : listing.signer}${listing.self ? ' (this device)' : ''}: ${listing.records.length} record${listing.records.length === 1 ? '' : 's'} shown`
  if (listing.records.length === 0) return header
  const rows = listing.records.map(r => 'error' in r
    ? [String(r.seq), '', '', 'UNDECODABLE', r.error, '']
    : [String(r.seq), formatTime((r as RecordJson).time), short(r.task), r.status, short(r.agent), r.hash.slice(0, 16)])
  // what each run reached on the network, under the table: origins are too long for a column
  const requests = listing.records.flatMap(r => 'net' in r && r.net != null ? [`  seq ${r.seq}: ${netUsageText(r.net)}`] : [])
  return header + '\n' + table(['SEQ', 'TIME', 'TASK', 'STATUS', 'AGENT', 'HASH'], rows) +
    (requests.length > 0 ? '\n' + requests.join('\n') : '')
}

export function register (program: Command, cli: CliContext): void {
  program.command('verify')
    .description('audit every ledger chain held (or one peer\'s): hash links, signatures, sequence, heads, forks; exit 0 clean, 1 problem found')
    .option('--peer <peerId>', 'audit only this signer\'s chain')
    .option('--json', 'print the audit report as JSON')
    .action(async (_options: VerifyOptions, command: Command) => {
      const all = command.optsWithGlobals<VerifyOptions>()
      const peer = await parsePeer(all.peer)
      const { value: report, source, names } = await viaNodeOrDisk<AuditReport>(cli, all, `/ledger/verify${query({ peer })}`, async (store) => {
        const { verifyAll, verifyChain } = await import('../../ledger/index.ts')
        if (peer == null) return verifyAll(store)
        const started = performance.now()
        const chain = await verifyChain(store, peer)
        return { ok: chain.ok, chains: [chain], records: chain.checked, durationMs: Math.round(performance.now() - started) }
      })
      const reasons = report.ok ? {} : (await import('../../ledger/index.ts')).AUDIT_REASONS
      // --json: each chain's signer PeerId as it is, and its device name beside it when known
      const named = { ...report, chains: report.chains.map(c => { const name = names(c.signer); return name !== undefined ? { ...c, name } : c }) }
      cli.print(all, () => renderReport(report, source, reasons, names), named)
      if (!report.ok) {
        const bad = report.chains.filter(c => !c.ok).map(c => `${short(c.signer)} at seq ${c.firstBad?.seq ?? '?'} (${c.firstBad?.reason ?? '?'})`)
        throw new LedgerProblemsError(`the ledger audit found problems: ${bad.join('; ')}`)
      }
    })

  program.command('ledger')
    .description('list the records of this device\'s ledger chain, or of a peer\'s copy')
    .option('--peer <peerId>', 'list this signer\'s chain instead of this device\'s')
    .option('--limit <n>', 'show only the newest N records')
    .option('--json', 'print the records in the JSON form the README specifies')
    .action(async (_options: LedgerOptions, command: Command) => {
      const all = command.optsWithGlobals<LedgerOptions>()
      const peer = await parsePeer(all.peer)
      const limit = parseLimit(all.limit)
      const { value: listing, names } = await viaNodeOrDisk<ListingJson>(cli, all, `/ledger/records${query({ peer, limit })}`, async (store) => {
        const self = await store.self()
        const signer = peer ?? self
        if (signer == null) throw new NoLedgerError('this data directory\'s ledger has no records of its own yet; pass --peer to list a peer\'s chain')
        const { listingToJson } = await import('../../ledger/index.ts')
        return listingToJson(signer, signer === self, await store.list(signer, { limit }))
      })
      cli.print(all, () => renderListing(listing, names), listing)
    })
}
