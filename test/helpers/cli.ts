// Run the real `hive-node` command as a child process with the project's Node.

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { ChildProcess, ChildProcessWithoutNullStreams } from 'node:child_process'

export const BIN = fileURLToPath(new URL('../../node/bin.js', import.meta.url))

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/**
 * Children still running when the test file's process exits: a test that fails before it stops
 * the node it started (a ready line that came too late, an assertion) leaves no node behind.
 * The test runner's --test-force-exit ends the file's process once its tests are done even
 * while such a child would keep it alive.
 */
const running = new Set<ChildProcess>()
process.once('exit', () => { for (const child of running) child.kill('SIGKILL') })

export function spawnCli (args: string[], env: NodeJS.ProcessEnv = {}): ChildProcessWithoutNullStreams {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, HIVE_LOG_LEVEL: 'warn', ...env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  running.add(child)
  child.once('exit', () => { running.delete(child) })
  return child
}

export async function exited (child: ChildProcessWithoutNullStreams): Promise<CliResult> {
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  return new Promise((resolve, reject) => {
    child.once('error', reject)
    child.once('close', (code, signal) => { resolve({ code, signal, stdout, stderr }) })
  })
}

/** Runs the CLI to completion. */
export async function runCli (args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  const child = spawnCli(args, env)
  child.stdin.end()
  return exited(child)
}
