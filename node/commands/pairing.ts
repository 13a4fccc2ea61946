// Pairing and membership commands: pair, join, remove, members.

import { stat } from 'node:fs/promises'
import { resolve } from 'node:path'
import { UsageError, formatTime, readUserFile, table } from '../cli-context.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { CreatedInvite, JoinResult } from '../../protocol/pairing/index.ts'
import type { Command } from 'commander'

interface PairOptions extends CommonOptions {
  png?: string
  ttl?: string
}

interface JoinOptions extends CommonOptions {
  force?: boolean
}

interface HiveMember {
  peerId: string
  name?: string
  self: boolean
  founder: boolean
  addedBy: string
  addedAt: number
  connected: boolean
  /** Not connected, but reached through the hive's mesh (not a neighbour). */
  mesh?: boolean
}

interface HiveSummary {
  hiveId: string
  self: string
  members: HiveMember[]
  removed: Array<{ peerId: string, removedBy: string, removedAt: number }>
}

function parseTtl (text: string | undefined): number | undefined {
  if (text == null) return undefined
  const minutes = Number(text)
  if (!Number.isFinite(minutes) || minutes <= 0 || minutes > 24 * 60) {
    throw new UsageError(`--ttl takes minutes between 1 and ${24 * 60}, not "${text}"`)
  }
  return minutes
}

/** The invite text from an argument that is either the invite itself or a PNG of its QR code. */
async function inviteFrom (argument: string): Promise<string> {
  if (/^hive:\/\//i.test(argument.trim())) return argument
  const looksLikeFile = /[/\\]|\.[a-z0-9]{1,5}$/i.test(argument)
  let isFile = false
  try {
    isFile = (await stat(argument)).isFile()
  } catch { /* not a file */ }
  if (!isFile) {
    if (looksLikeFile) await readUserFile(argument, 'a PNG of the invite\'s QR code (hive-node pair --png FILE), or give the invite text hive://join/…')
    return argument
  }
  const bytes = await readUserFile(argument, 'a PNG of the invite\'s QR code')
  const { decodeQrPng, isPng } = await import('../../protocol/pairing/index.ts')
  if (isPng(bytes)) return await decodeQrPng(bytes)
  const text = new TextDecoder().decode(bytes).trim()
  if (!/^hive:\/\//i.test(text)) throw new UsageError(`${argument} holds no hive invite: give the invite text (hive://join/…, from "hive-node pair") or a PNG of its QR code`)
  return text
}

function memberName (summary: HiveSummary, peer: string): string {
  const member = summary.members.find(m => m.peerId === peer)
  return member?.name != null ? `${member.name} (${peer})` : peer
}

export function register (program: Command, cli: CliContext): void {
  program.command('pair')
    .description('invite a device into this hive: shows a one-time QR code and invite text')
    .option('--png <file>', 'also write the QR code as a PNG image')
    .option('--ttl <minutes>', 'how long the invite stays valid (default 10)')
    .option('--json', 'print the invite as JSON (no QR drawing)')
    .action(async (options: PairOptions, command: Command) => {
      const all = command.optsWithGlobals<PairOptions>()
      const ttlMinutes = parseTtl(options.ttl)
      const invite = await cli.api(all).post<CreatedInvite>('/pairing/invites', ttlMinutes != null ? { ttlMinutes } : {})
      const png = options.png != null ? resolve(options.png) : undefined
      // the QR code libraries load only for the commands that draw or read one
      const { inviteQrTerminal, writeInvitePng } = await import('../../protocol/pairing/index.ts')
      if (png != null) await writeInvitePng(png, invite.uri)
      if (all.json === true) {
        cli.print(all, '', { uri: invite.uri, id: invite.id, hiveId: invite.hiveId, inviter: invite.inviter, addresses: invite.addresses, expiresAt: new Date(invite.expiresAt).toISOString(), png })
        return
      }
      const qr = await inviteQrTerminal(invite.uri, { colour: cli.colour })
      cli.print(all, [
        'Scan this code on the new device, or run there:',
        '',
        qr,
        `  hive-node join ${invite.uri}`,
        '',
        `The invite works once and expires at ${formatTime(invite.expiresAt)}.`,
        ...(png != null ? [`QR code written to ${png} (readable by you only): hive-node join ${png}`] : []),
        'Anyone holding it can join this hive until then: show it only to the device you are adding.'
      ].join('\n'), undefined)
    })

  program.command('join')
    .description('join the hive of an invite (its text, or a PNG of its QR code)')
    .argument('<invite>', 'the invite text (hive://join/…) or a PNG file with its QR code')
    .option('--force', 'leave the hive this device shares with others to join this one')
    .option('--json', 'print the result as JSON')
    .action(async (argument: string, options: JoinOptions, command: Command) => {
      const all = command.optsWithGlobals<JoinOptions>()
      const text = await inviteFrom(argument)
      // checked here first, so a damaged invite is caught before anything touches the network
      const { decodeInvite } = await import('../../protocol/pairing/index.ts')
      const invite = decodeInvite(text)
      const result = await cli.api(all).post<JoinResult>('/pairing/join', { invite: text, force: options.force === true })
      const inviter = result.members.find(m => m.peerId === invite.inviter)
      cli.print(all, () => [
        `joined hive ${result.hiveId} through ${inviter?.name ?? invite.inviter}`,
        table(['MEMBER', 'NAME', 'ADDED BY'], result.members.map(m => [m.peerId, `${m.name ?? ''}${m.self ? ' (this device)' : ''}`, m.founder ? '(founder)' : result.members.find(a => a.peerId === m.addedBy)?.name ?? m.addedBy]))
      ].join('\n'), result)
    })

  program.command('remove')
    .description('remove a device from the hive: every member refuses it from then on')
    .argument('<peer>', 'the PeerId of the member to remove (see "hive-node members")')
    .option('--json', 'print the result as JSON')
    .action(async (peer: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const before = await cli.api(all).get<HiveSummary>('/hive')
      const result = await cli.api(all).post<{ peer: string, entry: string, hive: HiveSummary }>('/hive/remove', { peer })
      cli.print(all, `removed ${memberName(before, peer)} from hive ${before.hiveId}; it can come back only through a new invite`, result)
    })

  program.command('members')
    .description('list the members of this device\'s hive, and who added each')
    .option('--json', 'print as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const summary = await cli.api(all).get<HiveSummary>('/hive')
      cli.print(all, () => [
        `hive ${summary.hiveId}: ${summary.members.length} member${summary.members.length === 1 ? '' : 's'}`,
        table(['MEMBER', 'NAME', 'ADDED BY', 'CONNECTED'], summary.members.map(m => [
          m.peerId,
          `${m.name ?? ''}${m.self ? ' (this device)' : ''}`,
          m.founder ? '(founder)' : memberName(summary, m.addedBy),
          m.self ? '' : m.connected ? 'yes' : m.mesh === true ? 'through the mesh' : 'no'
        ]))
      ].join('\n'), summary)
    })
}
