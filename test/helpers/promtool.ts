// promtool (Prometheus's own checker, Debian package `prometheus`) as the oracle for our text
// format. Tests that need it are skipped, with the reason, only when it is missing outside CI;
// under CI=true a missing promtool fails them, since .ci/run installs it.

import { spawn } from 'node:child_process'

export interface PromtoolResult {
  code: number
  /** What promtool printed: the problems it found, one a line. */
  output: string
}

async function run (args: string[], input?: string): Promise<PromtoolResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn('promtool', args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => { resolve({ code: code ?? 1, output }) })
    child.stdin.end(input ?? '')
  })
}

/** Whether promtool can be run here. */
export async function hasPromtool (): Promise<boolean> {
  try {
    return (await run(['--version'])).code === 0
  } catch {
    return false
  }
}

/** `promtool check metrics` on a scrape's text. */
export async function checkMetrics (text: string): Promise<PromtoolResult> {
  return await run(['check', 'metrics'], text)
}

/** `promtool check rules` on a rules file: checks that each rule's expression is valid PromQL. */
export async function checkRules (file: string): Promise<PromtoolResult> {
  return await run(['check', 'rules', file])
}

/**
 * The `skip` option for a test that needs promtool: false when it is here or under CI=true (where
 * the test then fails on its absence), else the reason it is skipped.
 */
export async function promtoolSkip (): Promise<string | false> {
  if (await hasPromtool() || process.env.CI === 'true') return false
  return 'promtool is not installed: install Debian\'s "prometheus" package (apt-get install prometheus) to check the /metrics format'
}

/** Fails with the reason when promtool is missing (under CI=true), else checks the text. */
export async function assertPromtoolPasses (text: string): Promise<void> {
  if (!await hasPromtool()) throw new Error('promtool is required (CI=true) but was not found on PATH: install Debian\'s "prometheus" package')
  const result = await checkMetrics(text)
  if (result.code !== 0 || result.output.trim() !== '') {
    throw new Error(`promtool check metrics found problems (exit ${result.code}):\n${result.output}`)
  }
}
