// `hive-node service install|remove`: a systemd user unit that starts this device's node at
// login and stops it cleanly. The unit runs the node with the project's Node directly (not
// through npx, which does not pass a stop signal on), so `systemctl --user stop` is a SIGTERM to
// the node itself.

import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { UsageError } from '../cli-context.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

export const UNIT_NAME = 'hive-node.service'

interface InstallOptions extends CommonOptions {
  name?: string
  listen?: string
  apiPort?: string
  dryRun?: boolean
  json?: boolean
}

/** Where systemd looks for a user's own units. */
export function userUnitDir (env: NodeJS.ProcessEnv): string {
  const config = env.XDG_CONFIG_HOME !== undefined && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(homedir(), '.config')
  return join(config, 'systemd', 'user')
}

/** systemd's quoting for one word of ExecStart: double quotes, with `\` and `"` escaped, `%` doubled. */
function quote (word: string): string {
  if (/^[A-Za-z0-9_./:=@+-]+$/.test(word)) return word
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/%/g, '%%')}"`
}

/** The unit's text for a node with data directory `dataDir` and the extra start arguments. */
export function unitText (init: { node: string, bin: string, dataDir: string, startArgs: string[] }): string {
  const exec = [init.node, init.bin, '--data', init.dataDir, 'start', ...init.startArgs].map(quote).join(' ')
  return [
    '[Unit]',
    'Description=hive-node: this device\'s node in the hive',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `ExecStart=${exec}`,
    // The node finishes its stop steps on SIGTERM; give it time before systemd kills it.
    'KillSignal=SIGTERM',
    'TimeoutStopSec=30',
    'Restart=on-failure',
    'RestartSec=5',
    '',
    '[Install]',
    'WantedBy=default.target',
    ''
  ].join('\n')
}

export function register (program: Command, cli: CliContext): void {
  const service = program.command('service')
    .description('run this device\'s node as a systemd user service (starts at login, stops cleanly)')

  service.command('install')
    .description(`write ~/.config/systemd/user/${UNIT_NAME} and print how to enable it`)
    .option('--name <name>', 'this device\'s name in the hive')
    .option('--listen <multiaddr|port>', 'libp2p listen address for the service')
    .option('--api-port <port>', 'local API port for the service')
    .option('--dry-run', 'print the unit without writing it')
    .option('--json', 'print the unit path and text as JSON')
    .action(async (options: InstallOptions, command: Command) => {
      const all = command.optsWithGlobals<InstallOptions>()
      const dataDir = resolve(cli.dataDir(all))
      const startArgs: string[] = []
      if (options.name !== undefined) {
        if (options.name.trim() === '' || options.name.length > 64) throw new UsageError('--name must be 1 to 64 characters')
        startArgs.push('--name', options.name)
      }
      if (options.listen !== undefined) startArgs.push('--listen', options.listen)
      if (options.apiPort !== undefined) {
        if (!/^\d{1,5}$/.test(options.apiPort) || Number(options.apiPort) > 65535) throw new UsageError(`--api-port must be a port number (0-65535), not "${options.apiPort}"`)
        startArgs.push('--api-port', options.apiPort)
      }
      const text = unitText({
        node: process.execPath,
        bin: fileURLToPath(new URL('../bin.js', import.meta.url)),
        dataDir,
        startArgs
      })
      const path = join(userUnitDir(cli.env), UNIT_NAME)
      if (options.dryRun !== true) {
        await mkdir(dirname(path), { recursive: true })
        const tmp = `${path}.${process.pid}.tmp`
        await writeFile(tmp, text, { mode: 0o644 })
        await rename(tmp, path)
      }
      if (options.json === true) {
        cli.out(JSON.stringify({ path, written: options.dryRun !== true, unit: text }) + '\n')
        return
      }
      cli.out(`${options.dryRun === true ? 'Would write' : 'Wrote'} ${path}:\n\n${text}\n`)
      cli.out('Enable it (starts now and at every login):\n' +
        '  systemctl --user daemon-reload\n' +
        `  systemctl --user enable --now ${UNIT_NAME}\n` +
        'To keep it running while you are logged out: loginctl enable-linger\n')
    })

  service.command('remove')
    .description(`delete ~/.config/systemd/user/${UNIT_NAME} (disable it first)`)
    .action(async () => {
      const path = join(userUnitDir(cli.env), UNIT_NAME)
      const existing = await readFile(path, 'utf8').catch(() => undefined)
      if (existing === undefined) {
        cli.out(`No unit at ${path}; nothing to remove.\n`)
        return
      }
      await rm(path)
      cli.out(`Removed ${path}. If it was enabled: systemctl --user disable --now ${UNIT_NAME}; systemctl --user daemon-reload\n`)
    })
}
