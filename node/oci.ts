// An agent as an OCI image layout (the OCI Image Layout spec, v1.0.0), following the conventions
// for WebAssembly artifacts in OCI registries: one layer of media type `application/wasm` (the
// component as it is), a config of media type `application/vnd.wasm.config.v0+json`, and the
// agent's manifest as annotations. Any OCI tool reads the layout (`skopeo inspect oci:DIR`,
// `skopeo copy oci:DIR docker://…` to push it to a registry); `readOciLayout` reads one back and
// checks every blob against its digest.
//
//   DIR/oci-layout                 {"imageLayoutVersion":"1.0.0"}
//   DIR/index.json                 an image index: one manifest, `org.opencontainers.image.ref.name` = VERSION
//   DIR/blobs/sha256/<hex>         the manifest, the config and the component, each named by its SHA-256

import { createHash } from 'node:crypto'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { OciLayoutInvalidError } from './errors.ts'

export const OCI_LAYOUT_VERSION = '1.0.0'
export const OCI_INDEX_MEDIA_TYPE = 'application/vnd.oci.image.index.v1+json'
export const OCI_MANIFEST_MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json'
export const WASM_LAYER_MEDIA_TYPE = 'application/wasm'
export const WASM_CONFIG_MEDIA_TYPE = 'application/vnd.wasm.config.v0+json'
/** The agent's manifest (JSON), on the OCI manifest. */
export const MANIFEST_ANNOTATION = 'dev.hive-node.agent.manifest'
const REF_NAME = 'org.opencontainers.image.ref.name'
/** Blobs read back at most: a component as large as the hive runs, and small JSON documents. */
const MAX_COMPONENT_BYTES = 64 * 1024 * 1024
const MAX_JSON_BYTES = 1024 * 1024

export interface OciAgent {
  bytes: Uint8Array
  name: string
  version: string
  description?: string
  /** The agent's manifest as its component carries it (JSON-compatible). */
  manifest: unknown
  /** Ids of the device that published it, and when (ms since the epoch). */
  publisher?: string
  time?: number
  /** The component's exports and imports (the config's `component` field). */
  exports?: string[]
  imports?: string[]
}

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex')

const Descriptor = z.object({
  mediaType: z.string().max(256),
  digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'a sha256: digest'),
  size: z.number().int().min(0),
  annotations: z.record(z.string(), z.string()).optional()
})
const Index = z.object({ schemaVersion: z.literal(2), manifests: z.array(Descriptor).min(1).max(256) })
const Manifest = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.literal(OCI_MANIFEST_MEDIA_TYPE).optional(),
  config: Descriptor,
  layers: z.array(Descriptor).min(1).max(16),
  annotations: z.record(z.string(), z.string()).optional()
})

/** Writes `agent` as an OCI image layout in `dir` (created; blobs already there are kept). Returns the manifest's digest. */
export async function writeOciLayout (dir: string, agent: OciAgent): Promise<{ manifestDigest: string, layerDigest: string }> {
  const blobs = join(dir, 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const put = async (bytes: Uint8Array): Promise<{ digest: string, size: number }> => {
    const hex = sha256(bytes)
    await writeFile(join(blobs, hex), bytes)
    return { digest: `sha256:${hex}`, size: bytes.byteLength }
  }
  const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value))
  const created = new Date(agent.time ?? 0).toISOString()
  const layer = await put(agent.bytes)
  const config = await put(json({
    created,
    ...(agent.publisher != null ? { author: agent.publisher } : {}),
    architecture: 'wasm',
    os: 'wasip2',
    layerDigests: [layer.digest],
    component: { exports: agent.exports ?? [], imports: agent.imports ?? [] }
  }))
  const manifest = await put(json({
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: { mediaType: WASM_CONFIG_MEDIA_TYPE, ...config },
    layers: [{ mediaType: WASM_LAYER_MEDIA_TYPE, ...layer, annotations: { 'org.opencontainers.image.title': `${agent.name}.wasm` } }],
    annotations: {
      'org.opencontainers.image.title': agent.name,
      'org.opencontainers.image.version': agent.version,
      ...(agent.description != null && agent.description !== '' ? { 'org.opencontainers.image.description': agent.description } : {}),
      'org.opencontainers.image.created': created,
      [MANIFEST_ANNOTATION]: JSON.stringify(agent.manifest)
    }
  }))
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: OCI_LAYOUT_VERSION }))
  await writeFile(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: OCI_INDEX_MEDIA_TYPE,
    manifests: [{ mediaType: OCI_MANIFEST_MEDIA_TYPE, ...manifest, annotations: { [REF_NAME]: agent.version } }]
  }))
  return { manifestDigest: manifest.digest, layerDigest: layer.digest }
}

async function readJson<S extends z.ZodType> (path: string, schema: S, what: string): Promise<z.infer<S>> {
  let text: string
  try {
    if ((await stat(path)).size > MAX_JSON_BYTES) throw new OciLayoutInvalidError(`${what} is larger than ${MAX_JSON_BYTES} bytes`)
    text = await readFile(path, 'utf8')
  } catch (err) {
    if (err instanceof OciLayoutInvalidError) throw err
    throw new OciLayoutInvalidError(`${what} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); is this an OCI image layout, as "hive-node agent export --oci" writes?`)
  }
  return parseJson(text, schema, what)
}

function parseJson<S extends z.ZodType> (text: string, schema: S, what: string): z.infer<S> {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new OciLayoutInvalidError(`${what} is not JSON: ${(err as Error).message}`)
  }
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new OciLayoutInvalidError(`${what} is invalid: ${parsed.error.issues.map(i => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`)
  return parsed.data
}

/** Reads a blob a descriptor names and checks its size and digest before returning it. */
async function readBlob (dir: string, descriptor: z.infer<typeof Descriptor>, what: string, max: number): Promise<Uint8Array> {
  if (descriptor.size > max) throw new OciLayoutInvalidError(`${what} is ${descriptor.size} bytes; at most ${max} are read`)
  const hex = descriptor.digest.slice('sha256:'.length)
  let bytes: Buffer
  try {
    bytes = await readFile(join(dir, 'blobs', 'sha256', hex))
  } catch (err) {
    throw new OciLayoutInvalidError(`${what} (${descriptor.digest}) is missing from the layout: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  if (bytes.byteLength !== descriptor.size) throw new OciLayoutInvalidError(`${what} (${descriptor.digest}) is ${bytes.byteLength} bytes, not the ${descriptor.size} its descriptor says`)
  const got = sha256(bytes)
  if (got !== hex) throw new OciLayoutInvalidError(`${what} has digest sha256:${got}, not the ${descriptor.digest} its descriptor names; the layout is damaged or was altered`)
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * Reads the agent an OCI image layout holds (`ref`: the version its index names, when it holds
 * several), checking the manifest, config and component against their digests.
 */
export async function readOciLayout (dir: string, ref?: string): Promise<{ bytes: Uint8Array, digest: string, name?: string, version?: string, manifestDigest: string }> {
  const layout = await readJson(join(dir, 'oci-layout'), z.object({ imageLayoutVersion: z.string() }), 'oci-layout')
  if (layout.imageLayoutVersion !== OCI_LAYOUT_VERSION) throw new OciLayoutInvalidError(`oci-layout says version ${layout.imageLayoutVersion}; this reads ${OCI_LAYOUT_VERSION}`)
  const index = await readJson(join(dir, 'index.json'), Index, 'index.json')
  const wanted = ref != null ? index.manifests.filter(m => m.annotations?.[REF_NAME] === ref) : index.manifests
  if (wanted.length !== 1) {
    const refs = index.manifests.map(m => m.annotations?.[REF_NAME] ?? m.digest)
    throw new OciLayoutInvalidError(ref != null
      ? `the layout names no image "${ref}"; it holds ${refs.join(', ')}`
      : `the layout holds ${index.manifests.length} images (${refs.join(', ')}); name one: DIR:REF`)
  }
  const descriptor = wanted[0] as z.infer<typeof Descriptor>
  if (descriptor.mediaType !== OCI_MANIFEST_MEDIA_TYPE) throw new OciLayoutInvalidError(`the image is a ${descriptor.mediaType}, not an OCI image manifest`)
  const manifest = parseJson(new TextDecoder().decode(await readBlob(dir, descriptor, 'the image manifest', MAX_JSON_BYTES)), Manifest, 'the image manifest')
  if (manifest.config.mediaType !== WASM_CONFIG_MEDIA_TYPE) throw new OciLayoutInvalidError(`the image's config is ${manifest.config.mediaType}, not ${WASM_CONFIG_MEDIA_TYPE}: it is not a WebAssembly artifact`)
  await readBlob(dir, manifest.config, 'the config', MAX_JSON_BYTES)
  const layers = manifest.layers.filter(l => l.mediaType === WASM_LAYER_MEDIA_TYPE)
  if (layers.length !== 1) throw new OciLayoutInvalidError(`the image has ${layers.length} layers of media type ${WASM_LAYER_MEDIA_TYPE}; an agent has exactly one`)
  const layer = layers[0] as z.infer<typeof Descriptor>
  const bytes = await readBlob(dir, layer, 'the component layer', MAX_COMPONENT_BYTES)
  const name = manifest.annotations?.['org.opencontainers.image.title']
  const version = manifest.annotations?.['org.opencontainers.image.version']
  return { bytes, digest: layer.digest.slice('sha256:'.length), manifestDigest: descriptor.digest, ...(name != null ? { name } : {}), ...(version != null ? { version } : {}) }
}
