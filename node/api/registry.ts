// Registry API routes, behind `hive-node agent publish|list|show|yank|export`:
//   GET  /registry                 { agents: [{ name, tags, versions: [VersionView] }] }: every agent
//                                  published in the hive, every version, greatest first.
//   GET  /registry/:ref            { agent: { name, tags, versions }, version?: VersionView }: one agent
//                                  with every version, and the version `NAME`, `NAME@VERSION` or
//                                  `NAME@TAG` resolves to (absent when yanked). 404 AgentNotPublished.
//   GET  /registry/:ref/component  { name, version, digest, publisher, time, manifest, component: base64 }:
//                                  the bytes held here, or fetched from a member that holds them, checked.
//   POST /registry/publish         { agent: base64 component, tags?: [tag] } → 201 { version }.
//                                  409 VersionConflict when NAME@VERSION is published with other bytes.
//   POST /registry/yank            { ref: "NAME@VERSION", reason? } → { version }.
// A VersionView is { name, version, digest, size, manifest, publisher, publisherName?, time,
// entry, tags, yanked?, conflicts: [{ digest, size, publisher, publisherName?, time, entry }] }.

import { z } from 'zod'
import { AGENT_TAG_PATTERN, MAX_TAGS, MAX_YANK_REASON_CHARS, isAgentRefText, parseAgentRef } from '../../protocol/index.ts'
import { parseInput } from './input.ts'
import type { PublishedAgent, PublishedVersion } from '../../protocol/index.ts'
import type { ApiNode } from './types.ts'
import type { FastifyInstance } from 'fastify'

/** A JS agent is ~12 MB, ~16 MB in base64. */
const MAX_AGENT_BODY_BYTES = 96 * 1024 * 1024

const publishBody = z.strictObject({
  agent: z.string().min(1).max(MAX_AGENT_BODY_BYTES),
  tags: z.array(z.string().regex(AGENT_TAG_PATTERN, 'a tag: lowercase letters, digits, "_" or "-", at most 32, starting with a letter (e.g. latest)')).max(MAX_TAGS).optional()
})
const yankBody = z.strictObject({
  ref: z.string().min(1).max(140),
  reason: z.string().max(MAX_YANK_REASON_CHARS).optional()
})

export interface VersionView extends PublishedVersion {
  publisherName?: string
  conflicts: Array<PublishedVersion['conflicts'][number] & { publisherName?: string }>
}

export interface AgentView { name: string, tags: Record<string, string>, versions: VersionView[] }

export function routes (app: FastifyInstance, node: ApiNode): void {
  const nameOf = (peer: string): string | undefined => peer === node.peerId.toString() ? node.name : node.hive.membership.member(peer)?.name ?? undefined
  const versionView = (v: PublishedVersion): VersionView => {
    const publisherName = nameOf(v.publisher)
    return {
      ...v,
      ...(publisherName != null ? { publisherName } : {}),
      conflicts: v.conflicts.map(c => {
        const name = nameOf(c.publisher)
        return { ...c, ...(name != null ? { publisherName: name } : {}) }
      })
    }
  }
  const agentView = (a: PublishedAgent): AgentView => ({ name: a.name, tags: a.tags, versions: a.versions.map(versionView) })

  app.get('/registry', async () => ({ agents: node.registry.list().map(agentView) }))

  app.get<{ Params: { ref: string } }>('/registry/:ref', async (request) => {
    // resolves as a run would (a device back from offline first asks the members it reaches)
    const version = await node.registry.resolve(request.params.ref, { signal: AbortSignal.timeout(10_000) }).catch((err: Error) => {
      if (err.name === 'AgentYanked' && node.registry.show(parseAgentRef(request.params.ref).name) != null) return undefined
      throw err
    })
    const agent = node.registry.show(parseAgentRef(request.params.ref).name) as PublishedAgent
    return { agent: agentView(agent), ...(version != null ? { version: versionView(version) } : {}) }
  })

  app.get<{ Params: { ref: string } }>('/registry/:ref/component', async (request) => {
    if (!isAgentRefText(request.params.ref)) parseAgentRef(request.params.ref)
    const { bytes, ...version } = await node.resolveAgent(request.params.ref, { signal: AbortSignal.timeout(120_000) })
    return { ...versionView(version), component: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') }
  })

  app.post('/registry/publish', { bodyLimit: MAX_AGENT_BODY_BYTES + 64 * 1024 }, async (request, reply) => {
    const body = parseInput(publishBody, request.body)
    const bytes = new Uint8Array(Buffer.from(body.agent, 'base64'))
    const version = await node.registry.publish(bytes, { ...(body.tags != null ? { tags: body.tags } : {}) })
    return reply.status(201).send({ version: versionView(version) })
  })

  app.post('/registry/yank', async (request) => {
    const body = parseInput(yankBody, request.body)
    return { version: versionView(await node.registry.yank(body.ref, { ...(body.reason != null ? { reason: body.reason } : {}) })) }
  })
}
