// Notes: keeps a running notebook in the task's context. Each run appends its input to the
// conversation, counts the notes in the context's state, and answers with the count and the
// previous note, so a second run (on this device or another) sees what the first one wrote.
// An empty input is refused with an error of the agent's own.

import { append, get, set } from 'hive:agent/context@0.1.0'

export function run (input: string): string {
  const note = input.trim()
  if (note === '') throw new Error('nothing to note: give the note as input')
  const count = Number(get('notes') ?? '0') + 1
  const previous = get('last')
  append(note)
  set('notes', String(count))
  set('last', note)
  return previous === undefined
    ? `note ${count} saved`
    : `note ${count} saved; previous note: ${previous}`
}
