// What `npm install` says on a fresh clone is ours to keep quiet where it is ours: the engines
// field names the Node a machine needs to install and run hive-node (the system Node that runs
// npm and node/bin.js, which then uses the project's own Node), and every dependency with an
// install script has a decision in allowScripts, so npm neither warns about our package's engine
// nor asks for a review of scripts.

import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'

interface PackageJson {
  engines: { node: string }
  dependencies: Record<string, string>
  overrides: Record<string, string>
  allowScripts: Record<string, boolean>
  devDependencies: Record<string, string>
}
interface Lockfile {
  packages: Record<string, { version?: string, hasInstallScript?: boolean, engines?: { node?: string } }>
}

const read = async <T>(file: string): Promise<T> => JSON.parse(await readFile(new URL(`../${file}`, import.meta.url), 'utf8')) as T

/** The lowest version a `>=X[.Y]` range admits. */
function floor (range: string): [number, number] {
  const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.\d+)?$/.exec(range.trim())
  assert.ok(m !== null, `engines.node is a plain ">=" range: ${range}`)
  return [Number(m[1]), Number(m[2] ?? 0)]
}

describe('package.json', () => {
  it('admits the system Node 20 the README promises in engines, as the lockfile does', async () => {
    const pkg = await read<PackageJson>('package.json')
    const [major] = floor(pkg.engines.node)
    assert.ok(major <= 20, `engines.node (${pkg.engines.node}) admits Node 20, which runs npm install and node/bin.js`)
    const lock = await read<Lockfile>('package-lock.json')
    assert.equal(lock.packages['']?.engines?.node, pkg.engines.node, 'the lockfile records the same engines')
    // the Node that runs the code is the project's own, which must meet what the code needs
    const own = lock.packages['node_modules/node']?.version ?? ''
    assert.ok(Number(own.split('.')[0]) >= 22, `the project's own Node (${own}) runs TypeScript by type stripping`)
    assert.ok('node' in pkg.devDependencies)
  })

  it('has an allowScripts decision for every installed package with an install script, and none for others', async () => {
    const pkg = await read<PackageJson>('package.json')
    const lock = await read<Lockfile>('package-lock.json')
    const withScripts = new Set(Object.entries(lock.packages)
      .filter(([path, p]) => path !== '' && p.hasInstallScript === true)
      .map(([path]) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)))
    assert.ok(withScripts.size > 0)
    for (const name of withScripts) assert.equal(typeof pkg.allowScripts[name], 'boolean', `allowScripts decides for ${name}`)
    for (const name of Object.keys(pkg.allowScripts)) assert.ok(withScripts.has(name), `allowScripts entry ${name} matches an installed package with an install script`)
    // node-llama-cpp's postinstall would probe or build llama.cpp: the prebuilt binaries are used
    assert.equal(pkg.allowScripts['node-llama-cpp'], false)
  })

  it('overrides only pin what the lockfile installs (or an empty local package), so npm ci and npm install agree', async () => {
    const pkg = await read<PackageJson>('package.json')
    const lock = await read<Lockfile>('package-lock.json')
    const installed = (name: string): string[] => Object.entries(lock.packages)
      .filter(([path]) => path === `node_modules/${name}` || path.endsWith(`/node_modules/${name}`))
      .map(([, p]) => p.version ?? '')
    for (const [name, value] of Object.entries(pkg.overrides)) {
      if (value.startsWith('file:')) continue
      if (value.startsWith('$')) {
        // the version the root asks for, everywhere: one copy, also for peers that ask for older
        assert.ok(pkg.dependencies[value.slice(1)] !== undefined, `override ${name} refers to a dependency of the root`)
        const versions = new Set(installed(name))
        assert.equal(versions.size, 1, `${name} is installed once: ${[...versions].join(', ')}`)
        continue
      }
      const versions = installed(name)
      for (const v of versions) assert.equal(v, value, `${name} is installed at the version its override pins`)
    }
    // jco-std asks for preview2-shim ^0.25 as an optional peer; the root's 0.26 is what runs, and
    // without this override a plain npm install prints a page of ERESOLVE warnings about it
    assert.equal(pkg.overrides['@bytecodealliance/preview2-shim'], '$@bytecodealliance/preview2-shim')
  })
})
