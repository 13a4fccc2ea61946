// `hive-node dashboard`: opens the node's dashboard in a browser through a one-time login, so the
// API's token never reaches the browser. Without a display (or with --print) it prints the
// address instead, for a browser on this machine.

import { spawn } from 'node:child_process'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

interface DashboardOptions extends CommonOptions {
  print?: boolean
}

interface LoginAnswer {
  url: string
  expiresAt: number
}

/** The program that opens an address in the person's browser here, or undefined when there is none. */
export function opener (env: NodeJS.ProcessEnv, platform: NodeJS.Platform = process.platform): string | undefined {
  if (platform === 'darwin') return 'open'
  if (platform === 'linux' || platform === 'freebsd' || platform === 'openbsd') {
    return (env.DISPLAY ?? '') !== '' || (env.WAYLAND_DISPLAY ?? '') !== '' ? 'xdg-open' : undefined
  }
  return undefined
}

/** Starts the opener and waits for it to start (not for the browser to close). */
async function open (program: string, url: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const child = spawn(program, [url], { stdio: 'ignore', detached: true })
    child.once('error', () => { resolve(false) })
    child.once('spawn', () => { child.unref(); resolve(true) })
  })
}

export function register (program: Command, cli: CliContext): void {
  program.command('dashboard')
    .description('open the dashboard in a browser, logged in once with a single-use code')
    .option('--print', 'print the login address instead of opening a browser')
    .option('--json', 'print { url, expiresAt } as JSON (implies --print)')
    .action(async (options: DashboardOptions, command: Command) => {
      const all = command.optsWithGlobals<DashboardOptions>()
      const login = await cli.api(all).post<LoginAnswer>('/dashboard/login', {})
      const seconds = Math.max(1, Math.round((login.expiresAt - Date.now()) / 1000))
      const program = options.print === true || options.json === true ? undefined : opener(cli.env)
      if (program !== undefined && await open(program, login.url)) {
        cli.out(`opened the dashboard in your browser (${new URL('/', login.url).href})\n`)
        return
      }
      cli.print(all, `open this address in a browser on this machine within ${seconds} s; it logs in once:\n${login.url}`, login)
    })
}
