// Node configuration: where the data directory is, which ports to use, and the defaults a user
// gets without flags.

import { homedir, hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { InvalidConfigError } from './errors.ts'

/** Default libp2p TCP port; `--listen` overrides, 0 picks a free one. */
export const DEFAULT_P2P_PORT = 4190
/** Default local HTTP API port on 127.0.0.1; `--api-port` overrides, 0 picks a free one. */
export const DEFAULT_API_PORT = 8765

/** `--data DIR`, else `HIVE_DATA`, else `$XDG_DATA_HOME/hive-node`, else `~/.local/share/hive-node`. */
export function resolveDataDir (flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag != null && flag !== '') return resolve(flag)
  if (env.HIVE_DATA != null && env.HIVE_DATA !== '') return resolve(env.HIVE_DATA)
  const xdg = env.XDG_DATA_HOME
  const base = xdg != null && xdg !== '' ? xdg : join(homedir(), '.local', 'share')
  return join(base, 'hive-node')
}

/** Files inside a data directory. One place names them so nothing else builds paths by hand. */
export function dataPaths (dataDir: string): {
  identity: string
  lock: string
  api: string
  token: string
  db: string
  config: string
} {
  return {
    identity: join(dataDir, 'identity.key'),
    lock: join(dataDir, 'node.lock'),
    api: join(dataDir, 'api.json'),
    token: join(dataDir, 'api.token'),
    db: join(dataDir, 'db'),
    config: join(dataDir, 'config.json')
  }
}

/** `--listen` accepts a multiaddr or a bare port (shorthand for all IPv4 interfaces). */
export function parseListen (value: string): string {
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) {
    return `/ip4/0.0.0.0/tcp/${parsePort(trimmed, '--listen')}`
  }
  if (!trimmed.startsWith('/')) {
    throw new InvalidConfigError(`--listen takes a port or a multiaddr such as /ip4/0.0.0.0/tcp/${DEFAULT_P2P_PORT}, not "${value}"`)
  }
  return trimmed
}

export function parsePort (value: string, flag: string): number {
  const port = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidConfigError(`${flag} takes a port number from 0 to 65535, not "${value}"`)
  }
  return port
}

export function defaultNodeName (): string {
  return hostname()
}

/** Node names travel to other members: keep them short and printable. */
export function validateNodeName (name: string): string {
  const trimmed = name.trim()
  if (trimmed.length === 0 || trimmed.length > 64 || /[\p{Cc}]/u.test(trimmed)) {
    throw new InvalidConfigError(`a node name is 1 to 64 printable characters, not "${name}"`)
  }
  return trimmed
}
