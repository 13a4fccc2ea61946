// The models folder of a device (`<data dir>/models/`): one GGUF file per model, named
// `<model>.gguf`. Listing reads only the folder, so it costs nothing at start-up; adding a file
// checks its GGUF header first and then appears in the folder in one step (a hard link of a
// finished copy), so the engine never sees half a model and two adds of one name cannot both win.

import { randomBytes } from 'node:crypto'
import { copyFile, link, mkdir, open, readdir, stat, unlink } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ModelExistsError, ModelFileInvalidError, ModelFileMissingError, ModelNameInvalidError } from './errors.ts'
import { MODEL_FILE_NAME_PATTERN, MODEL_NAME_MAX } from './limits.ts'
import type { ModelInfo } from '../types.ts'

export const GGUF_EXTENSION = '.gguf'
/** "GGUF" as the first four bytes of the file. */
const GGUF_MAGIC = Buffer.from('GGUF', 'latin1')
/** GGUF versions llama.cpp reads. */
export const GGUF_VERSIONS: readonly number[] = [2, 3]

export interface GgufHeader {
  version: number
  tensorCount: bigint
  metadataCount: bigint
}

/** Reads and checks a GGUF file's fixed header (magic, version, counts). */
export async function readGgufHeader (file: string, options: { signal?: AbortSignal } = {}): Promise<GgufHeader> {
  options.signal?.throwIfAborted()
  let handle
  try {
    handle = await open(file, 'r')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelFileMissingError(`no file at ${file}: give the path of a .gguf model file`)
    if ((err as NodeJS.ErrnoException).code === 'EISDIR') throw new ModelFileInvalidError(`${file} is a folder: give the path of a .gguf model file`)
    throw err
  }
  try {
    const header = Buffer.alloc(24)
    const { bytesRead } = await handle.read(header, 0, 24, 0)
    if (bytesRead < 24 || !header.subarray(0, 4).equals(GGUF_MAGIC)) {
      throw new ModelFileInvalidError(`${file} is not a GGUF model file (its first bytes are not "GGUF"): convert the model to GGUF, or pull it with Ollama instead`)
    }
    const version = header.readUInt32LE(4)
    if (!GGUF_VERSIONS.includes(version)) {
      throw new ModelFileInvalidError(`${file} is GGUF version ${version}; this engine reads versions ${GGUF_VERSIONS.join(' and ')}: convert it with a current llama.cpp`)
    }
    return { version, tensorCount: header.readBigUInt64LE(8), metadataCount: header.readBigUInt64LE(16) }
  } finally {
    await handle.close()
  }
}

/** Checks a model name: a plain file name, bounded. */
export function checkModelName (name: string): string {
  if (name.length === 0 || name.length > MODEL_NAME_MAX || !MODEL_FILE_NAME_PATTERN.test(name)) {
    throw new ModelNameInvalidError(`"${name.slice(0, MODEL_NAME_MAX)}" is not a usable model name: use up to ${MODEL_NAME_MAX} letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
  return name
}

/** The path of model `name` in `modelsDir` (the name is checked first). */
export function modelPath (modelsDir: string, name: string): string {
  return join(modelsDir, checkModelName(name) + GGUF_EXTENSION)
}

/** The GGUF models in `modelsDir`; a folder that does not exist yet holds none. */
export async function listModelFiles (modelsDir: string, options: { signal?: AbortSignal } = {}): Promise<ModelInfo[]> {
  options.signal?.throwIfAborted()
  let entries
  try {
    entries = await readdir(modelsDir, { withFileTypes: true })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const models: ModelInfo[] = []
  for (const entry of entries) {
    if (!entry.isFile() || !entry.name.endsWith(GGUF_EXTENSION)) continue
    const name = entry.name.slice(0, -GGUF_EXTENSION.length)
    if (name.length === 0 || name.length > MODEL_NAME_MAX || !MODEL_FILE_NAME_PATTERN.test(name)) continue
    const info = await stat(join(modelsDir, entry.name)).catch(() => undefined)
    if (info == null) continue
    models.push({ name, sizeBytes: info.size, source: 'embedded' })
  }
  return models.sort((a, b) => a.name.localeCompare(b.name))
}

/**
 * Copies the GGUF file `file` into `modelsDir` as `<name>.gguf` (by default the file's own name
 * without `.gguf`) and returns the model. The header is checked before anything is copied; an
 * existing model of that name is never replaced.
 */
export async function addModelFile (modelsDir: string, file: string, options: { name?: string, signal?: AbortSignal } = {}): Promise<ModelInfo> {
  const name = checkModelName(options.name ?? basename(file).replace(/\.gguf$/i, ''))
  await readGgufHeader(file, options)
  await mkdir(modelsDir, { recursive: true })
  const target = modelPath(modelsDir, name)
  if (await stat(target).then(() => true, () => false)) {
    throw new ModelExistsError(`a model named "${name}" is already in ${modelsDir}: remove it first, or add this one under another name`)
  }
  const partial = join(modelsDir, `.${name}.${randomBytes(6).toString('hex')}.partial`)
  try {
    await copyFile(file, partial)
    options.signal?.throwIfAborted()
    // A hard link appears whole and fails if the name was taken meanwhile: no clobbering race.
    await link(partial, target)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ModelExistsError(`a model named "${name}" is already in ${modelsDir}: remove it first, or add this one under another name`)
    }
    throw err
  } finally {
    await unlink(partial).catch(() => {})
  }
  const info = await stat(target)
  return { name, sizeBytes: info.size, source: 'embedded' }
}
