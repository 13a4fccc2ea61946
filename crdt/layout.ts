// The one layout every context document has, and plain-data views of it.
//
//   conversation  Y.Array of { role, text, node, time }   the agent's transcript, append-only
//   state         Y.Map   key -> JSON value                the agent's working state
//   checkpoints   Y.Map   name -> { snapshot, time, node }  named past states (Y.encodeSnapshot)
//
// Documents are created with gc off, so a snapshot taken for a checkpoint can always be
// turned back into the document as it was.

import * as Y from 'yjs'
import { z } from 'zod'

export const CONVERSATION = 'conversation'
export const STATE = 'state'
export const CHECKPOINTS = 'checkpoints'

/** Root types a context may contain; updates touching any other root are refused. */
export const ROOT_NAMES: ReadonlySet<string> = new Set([CONVERSATION, STATE, CHECKPOINTS])

export interface ConversationEntry {
  role: string
  text: string
  /** Name of the node the entry was written on. */
  node: string
  /** Milliseconds since the epoch, as the writing node saw it. */
  time: number
}

export interface CheckpointEntry {
  snapshot: Uint8Array
  time: number
  node: string
}

export interface ContextLayout {
  conversation: Y.Array<ConversationEntry>
  state: Y.Map<unknown>
  checkpoints: Y.Map<CheckpointEntry>
}

export function layoutOf (doc: Y.Doc): ContextLayout {
  return {
    conversation: doc.getArray<ConversationEntry>(CONVERSATION),
    state: doc.getMap<unknown>(STATE),
    checkpoints: doc.getMap<CheckpointEntry>(CHECKPOINTS)
  }
}

export function newContextDoc (): Y.Doc {
  const doc = new Y.Doc({ gc: false })
  layoutOf(doc)
  return doc
}

const conversationEntrySchema = z.object({
  role: z.string(),
  text: z.string(),
  node: z.string(),
  time: z.number()
})

const checkpointEntrySchema = z.object({
  snapshot: z.instanceof(Uint8Array),
  time: z.number(),
  node: z.string()
})

export function parseCheckpointEntry (value: unknown): CheckpointEntry | undefined {
  const parsed = checkpointEntrySchema.safeParse(value)
  return parsed.success ? parsed.data : undefined
}

export interface CheckpointInfo {
  name: string
  time: number
  node: string
}

/** A context as plain data: what `get` prints and the API returns. */
export interface ContextView {
  conversation: ConversationEntry[]
  state: Record<string, unknown>
  checkpoints: CheckpointInfo[]
}

/**
 * Reads a document into plain data. Entries written by a peer are not trusted to have the
 * documented shape: one that does not is shown with role `invalid` and its JSON as text, so
 * nothing is hidden and nothing downstream has to guess at types.
 */
export function viewOf (doc: Y.Doc): ContextView {
  const layout = layoutOf(doc)
  const conversation = layout.conversation.toArray().map((value: unknown): ConversationEntry => {
    const parsed = conversationEntrySchema.safeParse(value)
    if (parsed.success) return parsed.data
    return { role: 'invalid', text: safeJson(value), node: '', time: 0 }
  })
  const state: Record<string, unknown> = {}
  for (const [key, value] of layout.state.entries()) {
    state[key] = value instanceof Y.AbstractType ? value.toJSON() : value
  }
  return { conversation, state, checkpoints: checkpointsOf(doc) }
}

export function checkpointsOf (doc: Y.Doc): CheckpointInfo[] {
  const out: CheckpointInfo[] = []
  for (const [name, value] of layoutOf(doc).checkpoints.entries()) {
    const entry = parseCheckpointEntry(value)
    if (entry != null) out.push({ name, time: entry.time, node: entry.node })
  }
  return out.sort((a, b) => a.time - b.time || a.name.localeCompare(b.name))
}

function safeJson (value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
