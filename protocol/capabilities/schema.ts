// What a device says about itself on the capability topic, and the checks every receiver applies.
//
// One gossip message is a CBOR map (schema below). It carries no PeerId: the author is the
// gossipsub signer of the message, so a device can only speak for itself.

import { decode as cborDecode, encode as cborEncode } from 'cborg'
import { z } from 'zod'
import { MalformedCapabilitiesError } from './errors.ts'

export const POWER_STATES = ['ac', 'battery', 'unknown'] as const
export type PowerState = typeof POWER_STATES[number]

/** Most bytes one capability message may take; anything longer is refused unread. */
export const MAX_CAPABILITY_MESSAGE_BYTES = 16 * 1024

const Name = z.string().min(1).max(128)

export const Power = z.object({
  state: z.enum(POWER_STATES),
  /** Battery charge, when a battery reports one. */
  percent: z.number().min(0).max(100).optional()
})
export type Power = z.infer<typeof Power>

/** The fields a user (or a test) may override in the node's configuration. */
export const OVERRIDABLE = ['cores', 'load', 'freeMemory', 'totalMemory', 'power', 'runtimes', 'models'] as const
export type OverridableField = typeof OVERRIDABLE[number]

export const Gpu = z.object({
  vendor: z.enum(['nvidia', 'amd', 'intel']),
  name: z.string().min(1).max(128),
  vramBytes: z.number().int().min(0).optional()
})
export type Gpu = z.infer<typeof Gpu>

/** Most refused origins one report names. */
export const MAX_NET_REFUSE = 32

/** Most links one report names. */
export const MAX_LINKS = 64

export const CapabilityReport = z.object({
  /** Human name of the device (its node name). */
  name: Name,
  /** hive-node version it runs. */
  version: z.string().min(1).max(32),
  cores: z.number().int().min(1).max(4096),
  /** One-minute load average of the whole device. */
  load: z.number().min(0).max(1e6),
  /** Hive tasks this node is running right now. */
  running: z.number().int().min(0).max(1e6),
  freeMemory: z.number().int().min(0),
  totalMemory: z.number().int().min(0),
  power: Power,
  /** Agent runtimes offered (e.g. `wasm-component`). */
  runtimes: z.array(Name).max(16),
  /** Local LLM models this device serves: Ollama's tags, then the embedded engine's files. */
  models: z.array(Name).max(64),
  /** GPUs the OS shows (absent from devices that predate the field). */
  gpus: z.array(Gpu).max(8).optional(),
  /**
   * Members this device holds an open connection with, by PeerId (absent from devices that
   * predate the field): the edges of the hive's map. At most MAX_LINKS, so a report stays small.
   */
  links: z.array(z.string().min(1).max(128)).max(MAX_LINKS).optional(),
  /**
   * Origins this device refuses to agents (`*`: the network altogether), as its configuration
   * states them; absent when it refuses none. A task that needs one is not placed here.
   */
  netRefuse: z.array(z.string().min(1).max(300)).max(MAX_NET_REFUSE).optional(),
  /** Which of the fields above come from configuration rather than from the device. */
  overridden: z.array(z.enum(OVERRIDABLE)).max(OVERRIDABLE.length)
})
export type CapabilityReport = z.infer<typeof CapabilityReport>

/** Bounds of a report's announced interval (`every`). */
export const MIN_REPORT_INTERVAL_MS = 1_000
export const MAX_REPORT_INTERVAL_MS = 120_000

export const CapabilityMessage = z.object({
  v: z.literal(1),
  /** Increases with every message from one device run; an older one is ignored. */
  seq: z.number().int().min(0),
  /** The author's clock, milliseconds since the epoch (shown, never compared across devices). */
  time: z.number().int().min(0),
  /**
   * Milliseconds until the author's next periodic report (its interval grows with the hive);
   * receivers keep the author live for 3.5 times that. Absent from older authors.
   */
  every: z.number().int().min(MIN_REPORT_INTERVAL_MS).max(MAX_REPORT_INTERVAL_MS).optional(),
  caps: CapabilityReport
})
export type CapabilityMessage = z.infer<typeof CapabilityMessage>

export function encodeCapabilityMessage (message: CapabilityMessage): Uint8Array {
  return cborEncode(CapabilityMessage.parse(message))
}

export function decodeCapabilityMessage (bytes: Uint8Array): CapabilityMessage {
  if (bytes.byteLength > MAX_CAPABILITY_MESSAGE_BYTES) {
    throw new MalformedCapabilitiesError(`capability message of ${bytes.byteLength} bytes exceeds ${MAX_CAPABILITY_MESSAGE_BYTES}`)
  }
  let raw: unknown
  try {
    raw = cborDecode(bytes, { useMaps: false, rejectDuplicateMapKeys: true })
  } catch (err) {
    throw new MalformedCapabilitiesError(`capability message is not CBOR: ${(err as Error).message}`)
  }
  const parsed = CapabilityMessage.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new MalformedCapabilitiesError(`capability message is invalid: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'unknown'}`)
  }
  return parsed.data
}

/** Overrides as a user writes them in the node's configuration; every field optional. */
export const CapabilityOverrides = z.object({
  cores: z.number().int().min(1).max(4096).optional(),
  load: z.number().min(0).max(1e6).optional(),
  freeMemory: z.number().int().min(0).optional(),
  totalMemory: z.number().int().min(0).optional(),
  power: z.union([z.enum(POWER_STATES), Power]).optional(),
  runtimes: z.array(Name).max(16).optional(),
  models: z.array(Name).max(64).optional()
}).strict()
export type CapabilityOverrides = z.infer<typeof CapabilityOverrides>
