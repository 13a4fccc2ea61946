// `hive-node agent publish|list|show|yank|export|import`: the hive's agent registry, through the
// running node's API (node/api/registry.ts). `run NAME[@VERSION]` is in agent.ts.

import { UsageError, formatTime, readUserFile, table } from '../cli-context.ts'
import type { AgentView, VersionView } from '../api/registry.ts'
import type { CliContext, CommonOptions } from '../cli-context.ts'
import type { Command } from 'commander'

function mib (bytes: number): string {
  return bytes < 2 ** 20 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`
}

const who = (v: { publisher: string, publisherName?: string }): string => v.publisherName ?? `…${v.publisher.slice(-8)}`

function renderVersion (v: VersionView): string {
  const lines = [
    `${v.name}@${v.version}${v.tags.length > 0 ? ` (${v.tags.join(', ')})` : ''}${v.yanked != null ? '  YANKED' : ''}`,
    `  digest       ${v.digest}`,
    `  size         ${mib(v.size)}`,
    `  published    ${formatTime(v.time)} by ${who(v)} (${v.publisher})`,
    ...(v.manifest.description !== '' ? [`  description  ${v.manifest.description}`] : []),
    `  permissions  ${v.manifest.permissions.length > 0 ? v.manifest.permissions.join(', ') : '(none)'}`,
    `  limits       ${v.manifest.limits.timeoutMs} ms, ${v.manifest.limits.memoryMiB} MiB`
  ]
  for (const tool of v.manifest.tools ?? []) {
    const props = tool.parameters.properties
    const params = typeof props === 'object' && props !== null ? Object.keys(props) : []
    lines.push(`  tool         ${tool.name}(${params.join(', ')})${tool.description !== '' ? `: ${tool.description}` : ''}`)
  }
  if (v.yanked != null) lines.push(`  yanked       ${formatTime(v.yanked.at)} by ${v.yanked.by}${v.yanked.reason != null ? `: ${v.yanked.reason}` : ''}`)
  for (const c of v.conflicts) {
    lines.push(`  CONFLICT     ${formatTime(c.time)} ${c.publisherName ?? c.publisher} published other bytes as ${v.name}@${v.version} (digest ${c.digest}); refused, never run`)
  }
  return lines.join('\n')
}

function collect (value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

export function register (program: Command, cli: CliContext): void {
  const agent = program.commands.find(c => c.name() === 'agent')
  if (agent == null) throw new Error('the agent command must be registered first')

  agent.command('publish')
    .description('publish an agent to the hive\'s registry under the name and version its manifest gives, signed by this device')
    .argument('<file>', 'agent component (.wasm)')
    .option('--tag <tag>', 'a tag that names this version (repeatable), e.g. latest', collect)
    .option('--json', 'print the result as JSON')
    .action(async (file: string, options: CommonOptions & { tag?: string[] }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const bytes = await readUserFile(file, 'an agent component (.wasm), as "hive-node agent build" writes it')
      const { version } = await cli.api(all).post<{ version: VersionView }>('/registry/publish', { agent: bytes.toString('base64'), ...(options.tag != null ? { tags: options.tag } : {}) })
      cli.print(all, `published ${version.name}@${version.version} (digest ${version.digest}, ${mib(version.size)}) signed by ${who(version)}` +
        `${version.tags.length > 0 ? `; tags: ${version.tags.join(', ')}` : ''}\nrun it anywhere in the hive: hive-node run ${version.name}@${version.version} --input "…"`, version)
    })

  agent.command('list')
    .description('list the agents published in the hive')
    .option('--json', 'print as JSON')
    .action(async (_options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { agents } = await cli.api(all).get<{ agents: AgentView[] }>('/registry')
      cli.print(all, () => {
        if (agents.length === 0) return 'no agents are published in this hive yet; "hive-node agent publish FILE" adds one'
        return table(['NAME', 'LATEST', 'VERSIONS', 'PUBLISHED BY', 'DESCRIPTION'], agents.map(a => {
          const live = a.versions.filter(v => v.yanked == null)
          const latest = a.versions.find(v => v.version === a.tags.latest) ?? live[0]
          const conflicts = a.versions.reduce((n, v) => n + v.conflicts.length, 0)
          return [
            a.name,
            latest?.version ?? '(all yanked)',
            `${a.versions.length}${a.versions.length > live.length ? ` (${a.versions.length - live.length} yanked)` : ''}${conflicts > 0 ? ` ${conflicts} CONFLICT${conflicts === 1 ? '' : 'S'}` : ''}`,
            latest != null ? who(latest) : '-',
            (latest?.manifest.description ?? '').slice(0, 60)
          ]
        }))
      }, { agents })
    })

  agent.command('show')
    .description('show every version of a published agent (or one: NAME@VERSION): digest, publisher, permissions, tools, conflicts')
    .argument('<ref>', 'NAME or NAME@VERSION')
    .option('--json', 'print as JSON')
    .action(async (ref: string, _options: CommonOptions, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const answer = await cli.api(all).get<{ agent: AgentView, version?: VersionView }>(`/registry/${encodeURIComponent(ref)}`)
      const at = ref.indexOf('@')
      const one = at < 0 ? undefined : answer.version ?? answer.agent.versions.find(v => v.version === ref.slice(at + 1))
      cli.print(all, () => (one != null ? [one] : answer.agent.versions).map(renderVersion).join('\n'), answer)
    })

  agent.command('yank')
    .description('yank a published version: no longer run by name, still listed and verifiable (signed by this device)')
    .argument('<ref>', 'NAME@VERSION')
    .option('--reason <text>', 'why, shown to every member')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, options: CommonOptions & { reason?: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { version } = await cli.api(all).post<{ version: VersionView }>('/registry/yank', { ref, ...(options.reason != null ? { reason: options.reason } : {}) })
      cli.print(all, `yanked ${version.name}@${version.version}; it is no longer run by name (its entries stay, signed)`, version)
    })

  agent.command('export')
    .description('write a published agent as an OCI image layout (WebAssembly artifact) that OCI tools read')
    .argument('<ref>', 'NAME@VERSION (or NAME, NAME@TAG)')
    .requiredOption('--oci <dir>', 'the directory to write the layout into')
    .option('--json', 'print the result as JSON')
    .action(async (ref: string, options: CommonOptions & { oci: string }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const answer = await cli.api(all).get<VersionView & { component: string }>(`/registry/${encodeURIComponent(ref)}/component`)
      const bytes = new Uint8Array(Buffer.from(answer.component, 'base64'))
      const [{ writeOciLayout }, { inspectAgentBytes }] = await Promise.all([import('../oci.ts'), import('../../sandbox/index.ts')])
      const info = inspectAgentBytes(bytes)
      if (info.digest !== answer.digest) throw new Error(`the node sent bytes of digest ${info.digest}, not ${answer.digest}; nothing was written`)
      const written = await writeOciLayout(options.oci, {
        bytes, name: answer.name, version: answer.version, description: info.manifest.description, manifest: info.manifest,
        publisher: answer.publisher, time: answer.time, exports: info.exports, imports: info.imports.map(i => i.name)
      })
      const { component: _component, ...rest } = answer
      cli.print(all, `wrote ${answer.name}@${answer.version} to ${options.oci} as an OCI image layout (manifest ${written.manifestDigest}, layer ${written.layerDigest})\n` +
        `read it with: skopeo inspect --raw oci:${options.oci}:${answer.version}`, { ...rest, oci: options.oci, ...written })
    })

  agent.command('import')
    .description('read an agent from an OCI image layout (every blob checked against its digest) and publish it to the hive')
    .argument('<dir>', 'the layout directory (DIR, or DIR:VERSION when it holds several)')
    .option('--tag <tag>', 'a tag that names this version (repeatable), e.g. latest', collect)
    .option('--json', 'print the result as JSON')
    .action(async (target: string, options: CommonOptions & { tag?: string[] }, command: Command) => {
      const all = command.optsWithGlobals<CommonOptions>()
      const { readOciLayout } = await import('../oci.ts')
      const colon = target.lastIndexOf(':')
      const [dir, ref] = colon > 0 && !target.slice(colon + 1).includes('/') ? [target.slice(0, colon), target.slice(colon + 1)] : [target, undefined]
      if (dir === '') throw new UsageError('give the directory of an OCI image layout')
      const read = await readOciLayout(dir, ref)
      const { version } = await cli.api(all).post<{ version: VersionView }>('/registry/publish', { agent: Buffer.from(read.bytes).toString('base64'), ...(options.tag != null ? { tags: options.tag } : {}) })
      if (version.digest !== read.digest) throw new Error(`the registry holds ${version.name}@${version.version} as ${version.digest}, not the layout's ${read.digest}`)
      cli.print(all, `imported ${version.name}@${version.version} (digest ${version.digest}, checked against the layout) from ${dir}`, { ...version, manifestDigest: read.manifestDigest })
    })
}
