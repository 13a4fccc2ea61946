// A real headless browser for the dashboard's tests: Debian's Chromium driven by playwright-core
// (which downloads no browser of its own). Tests that need it are skipped, with the reason, only
// when it is missing outside CI; under CI=true a missing Chromium fails them, since .ci/run
// installs it.

import { access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import type { Browser } from 'playwright-core'

const NAMES = ['chromium', 'chromium-browser']

/** The Chromium executable: $HIVE_CHROMIUM, else the first `chromium` on PATH. */
export async function findChromium (): Promise<string | undefined> {
  const candidates = process.env.HIVE_CHROMIUM != null && process.env.HIVE_CHROMIUM !== ''
    ? [process.env.HIVE_CHROMIUM]
    : (process.env.PATH ?? '').split(delimiter).filter(d => d !== '').flatMap(d => NAMES.map(n => join(d, n)))
  for (const path of candidates) {
    try {
      await access(path, constants.X_OK)
      return path
    } catch { /* next */ }
  }
  return undefined
}

/** The `skip` option for a browser test: false when Chromium is here or under CI=true, else why. */
export async function browserSkip (): Promise<string | false> {
  if (await findChromium() !== undefined || process.env.CI === 'true') return false
  return 'Chromium is not installed: install Debian\'s "chromium" package (apt-get install chromium) to test the dashboard in a browser'
}

export async function launchChromium (): Promise<Browser> {
  const executablePath = await findChromium()
  if (executablePath === undefined) throw new Error('Chromium is required (CI=true) but was not found on PATH: install Debian\'s "chromium" package')
  const { chromium } = await import('playwright-core')
  // root (CI, containers) cannot use Chromium's own sandbox; the pages are the node's own
  return await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] })
}
