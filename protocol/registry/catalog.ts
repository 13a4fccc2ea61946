// The catalog's state: what a set of signed entries says is published. A pure function of the
// set, so every member holding the same entries answers alike, whatever order they came in.
//
// Rules, for each NAME@VERSION:
//   1. Its bytes are those of its first publish (entries.ts `comparePublishes`: the signer's
//      clock, then the signer, then the id). A publish of the same NAME@VERSION with another
//      digest never replaces them: it is a conflict, shown beside the version, never run.
//      (A member refuses to sign one; two devices cut off from each other may still both
//      publish a version, and when they meet every member keeps the same first one.)
//      A second publish with the same digest adds its tags and nothing else.
//   2. It is yanked when a yank entry names it with its digest: no longer run by name, still
//      listed, still verifiable. A yank is never undone; publish a new version instead.
//   3. A tag (`latest`) names the version of the latest publish carrying it that is not yanked.
//   4. A bare NAME is its `latest` tag, else its greatest version (semantic order) not yanked.

import { compareVersions, comparePublishes, formatAgentRef } from './entries.ts'
import { AgentNotPublishedError, AgentYankedError } from './errors.ts'
import type { AgentRef, CatalogEntry, ManifestSummary, PublishBody, YankBody } from './entries.ts'

/** One published version of an agent, as every member resolves it. */
export interface PublishedVersion {
  name: string
  version: string
  digest: string
  size: number
  manifest: ManifestSummary
  /** PeerId of the device that signed the first publish. */
  publisher: string
  /** When it was published (the publisher's clock, ms since the epoch). */
  time: number
  /** The first publish entry's id. */
  entry: string
  /** Tags that name this version now. */
  tags: string[]
  yanked?: { by: string, at: number, reason?: string, entry: string }
  /** Publishes of the same NAME@VERSION with other bytes: refused, shown here. */
  conflicts: Array<{ digest: string, size: number, publisher: string, time: number, entry: string }>
}

export interface PublishedAgent {
  name: string
  versions: PublishedVersion[]
  /** Tag → version, for the tags that name a version now. */
  tags: Record<string, string>
}

type Publish = CatalogEntry<PublishBody>
type Yank = CatalogEntry<YankBody>

export class Catalog {
  private readonly byName = new Map<string, { publishes: Publish[], yanks: Yank[] }>()
  private readonly ids = new Set<string>()

  has (id: string): boolean {
    return this.ids.has(id)
  }

  get size (): number {
    return this.ids.size
  }

  add (entry: CatalogEntry): boolean {
    if (this.ids.has(entry.id)) return false
    this.ids.add(entry.id)
    const slot = this.byName.get(entry.body.name) ?? { publishes: [], yanks: [] }
    this.byName.set(entry.body.name, slot)
    if (entry.body.type === 'publish') slot.publishes.push(entry as Publish)
    else slot.yanks.push(entry as Yank)
    return true
  }

  names (): string[] {
    return [...this.byName.keys()].sort()
  }

  /** Every version of `name`, greatest first; undefined when nothing of that name was published. */
  agent (name: string): PublishedAgent | undefined {
    const slot = this.byName.get(name)
    if (slot == null || slot.publishes.length === 0) return undefined
    const byVersion = new Map<string, Publish[]>()
    for (const p of slot.publishes) {
      const list = byVersion.get(p.body.version) ?? []
      list.push(p)
      byVersion.set(p.body.version, list)
    }
    const versions: PublishedVersion[] = []
    /** The publishes of each version's own bytes: their tags count. */
    const kept = new Map<string, Publish[]>()
    for (const [version, list] of byVersion) {
      list.sort(comparePublishes)
      const first = list[0] as Publish
      kept.set(version, list.filter(p => p.body.digest === first.body.digest))
      const conflicts = list.filter(p => p.body.digest !== first.body.digest).map(p => ({
        digest: p.body.digest, size: p.body.size, publisher: p.body.by, time: p.body.at, entry: p.id
      }))
      const yank = slot.yanks.filter(y => y.body.version === version && y.body.digest === first.body.digest).sort(comparePublishes)[0]
      versions.push({
        name,
        version,
        digest: first.body.digest,
        size: first.body.size,
        manifest: first.body.manifest,
        publisher: first.body.by,
        time: first.body.at,
        entry: first.id,
        tags: [],
        ...(yank != null ? { yanked: { by: yank.body.by, at: yank.body.at, entry: yank.id, ...(yank.body.reason != null ? { reason: yank.body.reason } : {}) } } : {}),
        conflicts
      })
    }
    // a tag names the version of the latest publish carrying it whose version is not yanked
    const tags: Record<string, string> = {}
    const tagged = new Map<string, Publish>()
    for (const v of versions) {
      if (v.yanked != null) continue
      for (const p of kept.get(v.version) ?? []) {
        for (const tag of p.body.tags) {
          const held = tagged.get(tag)
          if (held == null || comparePublishes(p, held) > 0) tagged.set(tag, p)
        }
      }
    }
    for (const [tag, p] of tagged) tags[tag] = p.body.version
    for (const v of versions) {
      v.tags = Object.entries(tags).filter(([, version]) => version === v.version).map(([tag]) => tag).sort()
    }
    versions.sort((a, b) => compareVersions(b.version, a.version))
    return { name, versions, tags }
  }

  /** Every agent published, by name. */
  agents (): PublishedAgent[] {
    return this.names().map(n => this.agent(n)).filter((a): a is PublishedAgent => a != null)
  }

  /**
   * The version a reference names. Throws AgentNotPublished when nothing answers to it, and
   * AgentYanked for a yanked version named exactly (by a tag or a bare name, yanked versions are
   * passed over).
   */
  resolve (ref: AgentRef): PublishedVersion {
    const agent = this.agent(ref.name)
    const text = formatAgentRef(ref)
    if (agent == null) throw new AgentNotPublishedError(`no agent named "${ref.name}" is published in this hive; "hive-node agent list" shows what is, and "hive-node agent publish FILE" adds one`)
    const live = agent.versions.filter(v => v.yanked == null)
    if (ref.version != null) {
      const v = agent.versions.find(v => v.version === ref.version)
      if (v == null) throw new AgentNotPublishedError(`${text} is not published; the versions of ${ref.name} are ${agent.versions.map(v => v.version).join(', ')}`)
      if (v.yanked != null) {
        throw new AgentYankedError(`${text} was yanked${v.yanked.reason != null ? ` ("${v.yanked.reason}")` : ''} and is no longer run by name` +
          `${live.length > 0 ? `; the versions not yanked are ${live.map(v => v.version).join(', ')}` : ''}`)
      }
      return v
    }
    const tag = ref.tag ?? 'latest'
    const tagged = agent.tags[tag]
    if (tagged != null) return agent.versions.find(v => v.version === tagged) as PublishedVersion
    if (ref.tag != null) throw new AgentNotPublishedError(`no version of ${ref.name} is tagged "${ref.tag}"${Object.keys(agent.tags).length > 0 ? `; its tags are ${Object.keys(agent.tags).join(', ')}` : ''}`)
    const greatest = live[0]
    if (greatest == null) throw new AgentYankedError(`every version of ${ref.name} was yanked (${agent.versions.map(v => v.version).join(', ')}); nothing of that name runs`)
    return greatest
  }
}
