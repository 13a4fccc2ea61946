// The one logger shape every protocol part takes, so no part depends on node/'s logger.

export interface ProtocolLog {
  debug: (message: string, ...details: unknown[]) => void
  warn: (message: string, ...details: unknown[]) => void
  info?: (message: string, ...details: unknown[]) => void
}

/** For parts started without a logger (tests, tools). */
export const SILENT_LOG: ProtocolLog = { debug: () => {}, warn: () => {} }
