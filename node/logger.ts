// A small labelled logger. Each node in a multi-node test gets its own label so interleaved
// output stays readable. Secrets never go through here: callers log ids, not invite secrets.

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent'

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 }

export interface Logger {
  readonly label: string
  debug: (message: string, ...details: unknown[]) => void
  info: (message: string, ...details: unknown[]) => void
  warn: (message: string, ...details: unknown[]) => void
  error: (message: string, ...details: unknown[]) => void
  child: (label: string) => Logger
}

export interface LoggerOptions {
  level?: LogLevel
  /** Where lines go; stderr by default so stdout stays for command output. */
  sink?: (line: string) => void
}

function format (detail: unknown): string {
  if (detail instanceof Error) return `${detail.name}: ${detail.message}`
  if (typeof detail === 'string') return detail
  try {
    return JSON.stringify(detail)
  } catch {
    return String(detail)
  }
}

export function createLogger (label: string, options: LoggerOptions = {}): Logger {
  const threshold = ORDER[options.level ?? (process.env.HIVE_LOG_LEVEL as LogLevel | undefined) ?? 'info'] ?? ORDER.info
  const sink = options.sink ?? ((line: string) => { process.stderr.write(line + '\n') })
  const emit = (level: LogLevel, message: string, details: unknown[]): void => {
    if (ORDER[level] < threshold) return
    const rest = details.length > 0 ? ' ' + details.map(format).join(' ') : ''
    sink(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${label}] ${message}${rest}`)
  }
  return {
    label,
    debug: (m, ...d) => { emit('debug', m, d) },
    info: (m, ...d) => { emit('info', m, d) },
    warn: (m, ...d) => { emit('warn', m, d) },
    error: (m, ...d) => { emit('error', m, d) },
    child: (sub) => createLogger(`${label}:${sub}`, options)
  }
}
