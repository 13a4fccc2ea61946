// skopeo (Debian package `skopeo`) as the independent reader of the OCI image layouts agents are
// exported as. Tests that need it are skipped, with the reason, only when it is missing outside
// CI; under CI=true a missing skopeo fails them, since .ci/run installs it.

import { spawn } from 'node:child_process'

export interface SkopeoResult {
  code: number
  stdout: string
  stderr: string
}

export async function skopeo (args: string[]): Promise<SkopeoResult> {
  return await new Promise((resolve, reject) => {
    const child = spawn('skopeo', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', reject)
    child.on('close', (code) => { resolve({ code: code ?? 1, stdout, stderr }) })
  })
}

export async function hasSkopeo (): Promise<boolean> {
  try {
    return (await skopeo(['--version'])).code === 0
  } catch {
    return false
  }
}

/** The `skip` option for a test that needs skopeo: false when it is here or under CI=true, else why it is skipped. */
export async function skopeoSkip (): Promise<string | false> {
  if (await hasSkopeo() || process.env.CI === 'true') return false
  return 'skopeo is not installed: install Debian\'s "skopeo" package (apt-get install skopeo) to check exported OCI layouts'
}
