// Errors of the composition root and user surfaces. Each class's `name` is its code.

export class NodeAlreadyRunningError extends Error {
  override name = 'NodeAlreadyRunning'
  readonly pid: number
  constructor (pid: number, dataDir: string) {
    super(`another hive-node (pid ${pid}) is already running with data directory ${dataDir}; stop it with "hive-node stop --data ${dataDir}" or use another --data directory`)
    this.pid = pid
  }
}

export class NodeNotRunningError extends Error {
  override name = 'NodeNotRunning'
  constructor (dataDir: string, detail?: string, advice = `start one with "hive-node start --data ${dataDir}"`) {
    super(`no hive-node is running with data directory ${dataDir}${detail != null ? ` (${detail})` : ''}; ${advice}`)
  }
}

/** The node is starting or stopping: its process holds the data directory, its API is not up. */
export class NodeNotReadyError extends Error {
  override name = 'NodeNotReady'
  readonly pid: number
  readonly state: string
  constructor (pid: number, state: string, dataDir: string) {
    super(`hive-node (pid ${pid}) with data directory ${dataDir} is ${state}${state === 'stopping' ? '; it exits within the stop bound (see the README)' : '; try again in a moment'}`)
    this.pid = pid
    this.state = state
  }
}

export class InvalidConfigError extends Error {
  override name = 'InvalidConfig'
}

export class IdentityError extends Error {
  override name = 'IdentityError'
}

/** An error the HTTP API reports as `{ error: { code, message } }` with `status`. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  constructor (status: number, code: string, message: string) {
    super(message)
    this.name = code
    this.status = status
    this.code = code
  }
}

/** A metric or label name the Prometheus format does not allow, or one already registered. */
export class MetricNameError extends Error {
  override name = 'MetricName'
}

/** A directory that is not an OCI image layout holding one agent, or whose blobs do not match their digests. */
export class OciLayoutInvalidError extends Error {
  static readonly code = 'OciLayoutInvalid'
  override name = 'OciLayoutInvalid'
}

/** A shard of a virtual hive (a worker thread holding some of its nodes) threw in a phase, failed or exited. */
export class ShardFailedError extends Error {
  override name = 'ShardFailed'
  readonly shard: string
  constructor (shard: string, message: string) {
    super(`${shard}: ${message}`)
    this.shard = shard
  }
}
