// Summarize: reads the recent conversation of its task's context, asks a language model for a
// short summary, and keeps it in the context's state under "summary" (and where it came from
// under "summary-source"), so every device that opens the context sees it. The input, when not
// empty, says what the summary should focus on. The hive picks where the model runs.

import { conversation, set } from 'hive:agent/context@0.1.0'
import { chat } from 'hive:agent/llm@0.1.0'

/** Entries read from the end of the conversation, and the transcript's length at most. */
const ENTRIES = 200
const MAX_TRANSCRIPT_CHARS = 100_000

export function run (input: string): string {
  const entries = conversation(ENTRIES)
  if (entries.length === 0) throw new Error("nothing to summarise: the context's conversation is empty")
  // Newest entries first into the budget, then back in order.
  const lines: string[] = []
  let chars = 0
  for (const e of [...entries].reverse()) {
    const line = `${e.role}: ${e.text}`
    if (chars + line.length > MAX_TRANSCRIPT_CHARS) break
    lines.unshift(line)
    chars += line.length + 1
  }
  const focus = input.trim()
  let answer
  try {
    answer = chat({
      models: [],
      messages: [
        { role: 'system', content: 'You summarise conversations. Answer with the summary only: a few sentences that keep decisions, open questions and names.' },
        { role: 'user', content: `${focus !== '' ? `Focus on: ${focus}\n\n` : ''}The conversation:\n${lines.join('\n')}` }
      ],
      maxTokens: 256,
      temperature: 0.2,
      seed: undefined,
      stop: [],
      format: undefined
    })
  } catch (err) {
    const payload = (err as { payload?: { tag?: string, val?: string } }).payload
    throw new Error(payload?.tag !== undefined ? `the model call failed (${payload.tag}): ${payload.val ?? ''}` : `the model call failed: ${String(err)}`)
  }
  const summary = answer.text.trim()
  if (summary === '') throw new Error(`the model ${answer.model} answered with an empty summary`)
  const where = answer.route.tag === 'local' ? 'this device' : `${answer.route.tag} ${answer.route.val ?? ''}`
  set('summary', summary)
  set('summary-source', JSON.stringify({ model: answer.model, route: answer.route.tag, at: answer.route.val ?? null, entries: lines.length }))
  return `${summary}\n(${lines.length} entries, ${answer.model} on ${where})`
}
