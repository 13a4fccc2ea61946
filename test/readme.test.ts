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

describe('README API table', () => {
  it('lists every route the local API serves', async () => {
    const { readdir } = await import('node:fs/promises')
    const text = await readFile(new URL('../README.md', import.meta.url), 'utf8')
    const dir = new URL('../node/api/', import.meta.url)
    const sources = await Promise.all((await readdir(dir)).filter(f => f.endsWith('.ts')).map(async f => readFile(new URL(f, dir), 'utf8')))
    const legacy = await readFile(new URL('../node/api.ts', import.meta.url), 'utf8').catch(() => '')
    const routes = new Set<string>()
    for (const source of [...sources, legacy]) {
      for (const m of source.matchAll(/app\.(get|post|delete|put)(?:<[^(]*>)?\('([^']+)'/g)) routes.add(`${(m[1] as string).toUpperCase()} ${m[2] as string}`)
    }
    assert.ok(routes.size > 20, `found the routes (${routes.size})`)
    for (const route of routes) assert.ok(text.includes(`| \`${route}\` |`), `README's API table lists ${route}`)
  })
})

const ROOT = new URL('../', import.meta.url)

/** The Markdown files of the repository (outside node_modules), relative to its root. */
async function markdownFiles (): Promise<string[]> {
  const { readdir } = await import('node:fs/promises')
  const found: string[] = []
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(new URL(dir, ROOT), { withFileTypes: true })) {
      if (e.name.startsWith('.') || e.name === 'node_modules') continue
      const path = `${dir}${e.name}`
      if (e.isDirectory()) await walk(`${path}/`)
      else if (e.name.endsWith('.md')) found.push(path)
    }
  }
  await walk('')
  return found
}

/** GitHub's anchor of a heading. */
const anchorOf = (heading: string): string => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')

/** The text outside fenced code blocks, so a link-like or heading-like line in code is not read as one. */
const prose = (text: string): string => text.replace(/^```[\s\S]*?^```/gm, '')

describe('README and the specs beside the code', () => {
  it('links every byte-level spec beside its code, and every relative link in them all resolves, anchors included', async () => {
    const files = await markdownFiles()
    const specs = files.filter(f => /(^|\/)(PROTOCOL|FORMAT)\.md$/.test(f))
    for (const f of ['protocol/wire/PROTOCOL.md', 'protocol/pairing/PROTOCOL.md', 'protocol/membership/PROTOCOL.md', 'crdt/PROTOCOL.md', 'protocol/placement/PROTOCOL.md', 'ledger/FORMAT.md', 'protocol/llm/PROTOCOL.md']) {
      assert.ok(specs.includes(f), `${f} exists`)
    }
    const readme = await readFile(new URL('README.md', ROOT), 'utf8')
    for (const spec of specs) assert.ok(readme.includes(`](${spec}`), `README links ${spec}`)
    const { dirname, join, normalize } = await import('node:path')
    for (const file of ['README.md', ...specs]) {
      const text = prose(await readFile(new URL(file, ROOT), 'utf8'))
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const link = m[1] as string
        if (/^[a-z]+:/.test(link)) continue
        const [path, anchor] = link.split('#') as [string, string | undefined]
        const target = path === '' ? file : normalize(join(dirname(file), path))
        const body = await readFile(new URL(target, ROOT), 'utf8').catch(() => undefined)
        assert.ok(body !== undefined, `${file}: the link ${link} names a file that exists`)
        if (anchor !== undefined) {
          const anchors = [...prose(body).matchAll(/^#+ (.+)$/gm)].map(h => anchorOf(h[1] as string))
          assert.ok(anchors.includes(anchor), `${file}: the link ${link} finds its heading in ${target}`)
        }
      }
    }
  })

  it('stays a user guide: the guide comes first, every command has a row, and no byte-level spec is left in it', async () => {
    const readme = await readFile(new URL('README.md', ROOT), 'utf8')
    const sections = [...readme.matchAll(/^## (.+)$/gm)].map(m => m[1] as string)
    assert.deepEqual(sections.slice(0, 4), ['Contents', 'Walk-through', 'Commands', 'Local HTTP API'])
    const { buildProgram } = await import('../node/cli.ts')
    const program = buildProgram({ out: () => {}, err: () => {}, env: {} })
    const commands = /^## Commands\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? ''
    for (const c of program.commands) {
      assert.match(commands, new RegExp(`^\\| \`hive-node ${c.name()}\\b|^\\| \`hive-node [^|]* / \`?${c.name()}\\b`, 'm'), `the Commands table has a row for ${c.name()}`)
    }
    // what only a byte-level spec writes: integer layouts, varint streams, signed-byte
    // concatenations, and wire messages by their type tags
    const byteLevel = /\bu(8|16|32|64)be\(|\bvaruint\(|\blp\(|\bLEB128\b|\|\| *"hive-node\/|\{ ?t: ['0-9]|\{ ?type: '|\{ ?v: 1,/
    const offending = readme.split('\n').map((line, i) => ({ line, n: i + 1 })).filter(({ line }) => byteLevel.test(line))
    assert.deepEqual(offending.map(o => `${o.n}: ${o.line}`), [], 'byte-level lines belong in a PROTOCOL.md or FORMAT.md beside the code')
  })
})
