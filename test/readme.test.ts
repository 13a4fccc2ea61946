// The README stays navigable: its contents list every section, in order, with working anchors.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'

describe('README', () => {
  it('lists every section in its contents, in order, and every link in the contents finds its heading', async () => {
    const text = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    const contents = /^## Contents\n\n((?:- .*\n)+)/m.exec(text)?.[1]
    assert.ok(contents !== undefined, 'the README has a Contents section')
    const entries = [...contents.matchAll(/^- \[(.+)\]\(#(.+)\)$/gm)].map(m => ({ title: m[1] as string, anchor: m[2] as string }))
    const headings = [...text.matchAll(/^## (.+)$/gm)].map(m => m[1] as string).filter(h => h !== 'Contents')
    assert.deepEqual(entries.map(e => e.title), headings)
    const slug = (h: string): string => h.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')
    for (const e of entries) assert.equal(e.anchor, slug(e.title), `anchor of "${e.title}"`)
  })
})
