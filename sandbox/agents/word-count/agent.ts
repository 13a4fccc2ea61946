// Word counter: counts the words, lines and characters of its input and returns them as JSON.
// Logs a summary line, so its manifest asks for "log".

import { log } from 'hive:agent/log@0.1.0'

export function run (input: string): string {
  const words = input.split(/\s+/).filter(w => w !== '').length
  const lines = input === '' ? 0 : input.split('\n').length
  const characters = [...input].length
  log('info', `counted ${words} words`)
  return JSON.stringify({ words, lines, characters })
}
