// The dashboard's files, as the API serves them: the page, its ES modules and styles from
// node/dashboard/ui/, and the UI library (Preact, its hooks, htm) from node_modules under fixed
// names in /ui/lib/. No build step, nothing from another host. Loaded on the first request for
// the dashboard (node/api/dashboard.ts), then held: the files are some tens of KiB.

import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

export interface DashboardFile {
  type: string
  body: Buffer
}

export interface Dashboard {
  html: string
  /** The page's Content-Security-Policy: its own modules and its one inline import map only. */
  csp: string
  /** A file under /ui/ by its path there, or undefined for any other name. */
  file: (path: string) => DashboardFile | undefined
}

const UI_DIR = new URL('./ui/', import.meta.url)

/** The library's ES modules, under the names the import map gives them. */
const LIBRARY: Record<string, string> = {
  'lib/preact.mjs': 'preact',
  'lib/hooks.mjs': 'preact/hooks',
  'lib/htm.mjs': 'htm'
}

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml'
}

const typeOf = (name: string): string | undefined => TYPES[/\.[a-z]+$/.exec(name)?.[0] ?? '']

async function uiFiles (): Promise<Map<string, DashboardFile>> {
  const files = new Map<string, DashboardFile>()
  const walk = async (dir: URL, prefix: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) {
        await walk(new URL(`${entry.name}/`, dir), `${prefix}${entry.name}/`)
        continue
      }
      const type = typeOf(entry.name)
      if (type === undefined) continue
      files.set(`${prefix}${entry.name}`, { type, body: await readFile(new URL(entry.name, dir)) })
    }
  }
  await walk(UI_DIR, '')
  for (const [name, specifier] of Object.entries(LIBRARY)) {
    const path = fileURLToPath(import.meta.resolve(specifier))
    files.set(name, { type: TYPES['.mjs'] as string, body: await readFile(path) })
  }
  return files
}

export async function loadDashboard (): Promise<Dashboard> {
  const files = await uiFiles()
  const importMap = JSON.stringify({ imports: { preact: '/ui/lib/preact.mjs', 'preact/hooks': '/ui/lib/hooks.mjs', htm: '/ui/lib/htm.mjs' } })
  const template = (await readFile(new URL('index.html', UI_DIR), 'utf8'))
  const html = template.replace('<!-- import map -->', `<script type="importmap">${importMap}</script>`)
  const hash = createHash('sha256').update(importMap).digest('base64')
  const csp = [
    "default-src 'none'",
    `script-src 'self' 'sha256-${hash}'`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'"
  ].join('; ')
  return {
    html,
    csp,
    file: (path) => files.get(path)
  }
}
