import assert from 'node:assert/strict'
import { readdir, readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { formatTime } from '../../node/cli-context.ts'

describe('one date format in human output', () => {
  it('formatTime is local YYYY-MM-DD HH:MM:SS, and "-" for no time', () => {
    const ms = new Date(2026, 0, 2, 3, 4, 5).getTime()
    assert.equal(formatTime(ms), '2026-01-02 03:04:05')
    assert.equal(formatTime(0), '-')
    assert.equal(formatTime(Number.NaN), '-')
  })

  it('no command formats a date any other way', async () => {
    const dir = new URL('../../node/commands/', import.meta.url)
    for (const file of await readdir(dir)) {
      const text = await readFile(new URL(file, dir), 'utf8')
      // ISO strings belong in --json output only; locale strings differ between machines
      for (const line of text.split('\n')) {
        if (/toLocale(Date|Time)?String\(/.test(line)) assert.fail(`${file}: ${line.trim()}`)
        if (/toISOString\(\)/.test(line) && !/json|JSON|\{ .*: new Date/.test(line)) assert.fail(`${file}: human output with an ISO date: ${line.trim()}`)
      }
    }
  })
})
