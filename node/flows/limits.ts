// Every bound of a workflow, stated once: the file and API checks, the engine, the README's
// limits checklist and the tests all read them from here.

export const FLOW_LIMITS = {
  /** Bytes of a workflow file (or of the `workflow` of `POST /flows` as JSON). */
  maxFileBytes: 256 * 1024,
  /** Steps in one workflow. */
  maxSteps: 64,
  /** Characters of a step name: a letter, then letters, digits, `_` or `-`. */
  maxStepNameChars: 64,
  /** Elements a fork may fan out over (the JSON array it is given). */
  maxForkWidth: 256,
  /** Tasks of one fork running at once. */
  maxConcurrency: 32,
  /** The concurrency of a fork that names none. */
  defaultConcurrency: 4,
  /** Characters of one template (a step's `input` or a fork's `over`), before it is filled in. */
  maxTemplateChars: 16 * 1024,
  /** `${{ … }}` expressions in one template. */
  maxTemplateExpressions: 64,
  /** Retries of one step (or of one fork element) after a failed attempt. */
  maxRetries: 5,
  /** A step's timeout: from 1 s to 1 h (default: none beyond the agent's own limit). */
  minTimeoutMs: 1_000,
  maxTimeoutMs: 3_600_000,
  /** Distinct agents one workflow names. */
  maxAgents: 16,
  /** Bytes of every agent a workflow brings with it, together (a JS agent is ~12 MB). */
  maxAgentBytes: 96 * 1024 * 1024,
  /** Bytes of the workflow's input (`--input`, `input` of `POST /flows`). */
  maxInputBytes: 1024 * 1024,
  /** Bytes of a filled-in step input; placement's own bound on a task's input applies too. */
  maxStepInputBytes: 4 * 1024 * 1024,
  /** Workflows kept on the submitter (the oldest ended ones are dropped beyond it). */
  maxFlowsKept: 500,
  /** Workflows running at once on one submitter. */
  maxRunning: 32
} as const
