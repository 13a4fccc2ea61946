// A tiny but real GGUF model, written byte by byte: llama architecture, seeded random weights,
// a SentencePiece-style vocabulary with byte-fallback tokens, bos/eos ids and a chat template.
// llama.cpp loads it like any downloaded model; its output is noise, so tests assert on tokens,
// routes and errors, never on wording. The same seed always gives the same bytes.
//
// Layout (GGUF version 3, little-endian): magic "GGUF", version u32, tensor count u64,
// metadata count u64, the metadata key/values, the tensor infos (name, dims, type, offset), then
// padding to the alignment and the tensor data, each tensor starting on an aligned offset.

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const GGUF_MAGIC = 0x46554747 // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3
const ALIGNMENT = 32

/** GGUF metadata value types. */
const VT = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const
type VT = typeof VT
/** ggml tensor types used here. */
const GGML_F32 = 0

/** SentencePiece token types as llama.cpp reads them. */
const TOKEN_NORMAL = 1
const TOKEN_UNKNOWN = 2
const TOKEN_CONTROL = 3
const TOKEN_BYTE = 6

export interface TinyModelOptions {
  seed?: number
  /** Width of the hidden state. Default 64. */
  embedding?: number
  /** Transformer blocks. Default 2. */
  layers?: number
  heads?: number
  feedForward?: number
  contextLength?: number
  name?: string
}

type Value =
  | { t: VT['U32'] | VT['I32'] | VT['F32'] | VT['U64'], v: number }
  | { t: VT['BOOL'], v: boolean }
  | { t: VT['STRING'], v: string }
  | { t: VT['ARRAY'], of: VT['STRING'], v: string[] }
  | { t: VT['ARRAY'], of: VT['F32'] | VT['I32'], v: number[] }

interface Tensor { name: string, dims: number[], data: Float32Array }

/** A deterministic 32-bit generator (mulberry32), so a seed names one model. */
function random (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const WORDS = ['the', 'hive', 'agent', 'hello', 'model', 'device', 'summary', 'and', 'is', 'of', 'to', 'a', 'in', 'it', 'you', 'yes', 'no']

/**
 * The vocabulary: <unk>, <s>, </s>, the chat markers, the 256 byte tokens, printable ASCII
 * characters and "▁", then word pieces, each word with all its prefixes so that SentencePiece's
 * pairwise merges can reach it.
 */
export function tinyVocabulary (): { tokens: string[], scores: number[], types: number[] } {
  const tokens: string[] = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>']
  const types: number[] = [TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_CONTROL, TOKEN_CONTROL]
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    types.push(TOKEN_BYTE)
  }
  const pieces = new Set<string>(['▁'])
  for (let c = 33; c < 127; c++) pieces.add(String.fromCharCode(c))
  for (const word of WORDS) {
    const full = `▁${word}`
    for (let end = 2; end <= full.length; end++) pieces.add(full.slice(0, end))
  }
  for (const piece of pieces) {
    tokens.push(piece)
    types.push(TOKEN_NORMAL)
  }
  // Longer pieces score higher so that merges prefer whole words.
  const scores = tokens.map((token, i) => types[i] === TOKEN_NORMAL ? -1000 + [...token].length * 10 - i / 1000 : 0)
  return { tokens, scores, types }
}

export const CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

/** The bytes of a tiny llama-architecture GGUF model for `seed`. */
export function tinyGguf (options: TinyModelOptions = {}): Uint8Array {
  const seed = options.seed ?? 1
  const nEmbd = options.embedding ?? 64
  const nLayer = options.layers ?? 2
  const nHead = options.heads ?? 4
  const nFf = options.feedForward ?? 128
  const nCtx = options.contextLength ?? 512
  const vocab = tinyVocabulary()
  const nVocab = vocab.tokens.length
  const rand = random(seed)

  const weights = (dims: number[], scale = 0.08): Tensor['data'] => {
    const n = dims.reduce((a, b) => a * b, 1)
    const out = new Float32Array(n)
    for (let i = 0; i < n; i++) out[i] = (rand() * 2 - 1) * scale
    return out
  }
  const ones = (n: number): Float32Array => new Float32Array(n).fill(1)

  // ggml dims are innermost first: a [rows × cols] matrix is written as dims [cols, rows].
  const tensors: Tensor[] = [
    { name: 'token_embd.weight', dims: [nEmbd, nVocab], data: weights([nEmbd, nVocab], 0.5) }
  ]
  for (let l = 0; l < nLayer; l++) {
    const b = `blk.${l}`
    tensors.push(
      { name: `${b}.attn_norm.weight`, dims: [nEmbd], data: ones(nEmbd) },
      { name: `${b}.attn_q.weight`, dims: [nEmbd, nEmbd], data: weights([nEmbd, nEmbd]) },
      { name: `${b}.attn_k.weight`, dims: [nEmbd, nEmbd], data: weights([nEmbd, nEmbd]) },
      { name: `${b}.attn_v.weight`, dims: [nEmbd, nEmbd], data: weights([nEmbd, nEmbd]) },
      { name: `${b}.attn_output.weight`, dims: [nEmbd, nEmbd], data: weights([nEmbd, nEmbd]) },
      { name: `${b}.ffn_norm.weight`, dims: [nEmbd], data: ones(nEmbd) },
      { name: `${b}.ffn_gate.weight`, dims: [nEmbd, nFf], data: weights([nEmbd, nFf]) },
      { name: `${b}.ffn_up.weight`, dims: [nEmbd, nFf], data: weights([nEmbd, nFf]) },
      { name: `${b}.ffn_down.weight`, dims: [nFf, nEmbd], data: weights([nFf, nEmbd]) }
    )
  }
  tensors.push(
    { name: 'output_norm.weight', dims: [nEmbd], data: ones(nEmbd) },
    { name: 'output.weight', dims: [nEmbd, nVocab], data: weights([nEmbd, nVocab], 0.5) }
  )

  const metadata: Array<[string, Value]> = [
    ['general.architecture', { t: VT.STRING, v: 'llama' }],
    ['general.name', { t: VT.STRING, v: options.name ?? `tiny-${seed}` }],
    ['general.alignment', { t: VT.U32, v: ALIGNMENT }],
    ['llama.context_length', { t: VT.U32, v: nCtx }],
    ['llama.embedding_length', { t: VT.U32, v: nEmbd }],
    ['llama.block_count', { t: VT.U32, v: nLayer }],
    ['llama.feed_forward_length', { t: VT.U32, v: nFf }],
    ['llama.attention.head_count', { t: VT.U32, v: nHead }],
    ['llama.attention.head_count_kv', { t: VT.U32, v: nHead }],
    ['llama.attention.layer_norm_rms_epsilon', { t: VT.F32, v: 1e-5 }],
    ['llama.rope.dimension_count', { t: VT.U32, v: nEmbd / nHead }],
    ['llama.vocab_size', { t: VT.U32, v: nVocab }],
    ['tokenizer.ggml.model', { t: VT.STRING, v: 'llama' }],
    ['tokenizer.ggml.tokens', { t: VT.ARRAY, of: VT.STRING, v: vocab.tokens }],
    ['tokenizer.ggml.scores', { t: VT.ARRAY, of: VT.F32, v: vocab.scores }],
    ['tokenizer.ggml.token_type', { t: VT.ARRAY, of: VT.I32, v: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', { t: VT.U32, v: 0 }],
    ['tokenizer.ggml.bos_token_id', { t: VT.U32, v: 1 }],
    ['tokenizer.ggml.eos_token_id', { t: VT.U32, v: 2 }],
    ['tokenizer.ggml.add_bos_token', { t: VT.BOOL, v: true }],
    ['tokenizer.ggml.add_eos_token', { t: VT.BOOL, v: false }],
    ['tokenizer.chat_template', { t: VT.STRING, v: CHAT_TEMPLATE }]
  ]

  const w = new Writer()
  w.u32(GGUF_MAGIC)
  w.u32(GGUF_VERSION)
  w.u64(tensors.length)
  w.u64(metadata.length)
  for (const [key, value] of metadata) {
    w.str(key)
    w.u32(value.t)
    w.value(value)
  }
  let offset = 0
  for (const tensor of tensors) {
    w.str(tensor.name)
    w.u32(tensor.dims.length)
    for (const d of tensor.dims) w.u64(d)
    w.u32(GGML_F32)
    w.u64(offset)
    offset = align(offset + tensor.data.byteLength)
  }
  w.pad()
  for (const tensor of tensors) {
    w.f32s(tensor.data)
    w.pad()
  }
  return w.bytes()
}

/** Writes `tinyGguf(options)` to `path` and returns its size in bytes. */
export async function writeTinyGguf (path: string, options: TinyModelOptions = {}): Promise<number> {
  const bytes = tinyGguf(options)
  await writeFile(path, bytes)
  return bytes.byteLength
}

function align (n: number): number {
  return Math.ceil(n / ALIGNMENT) * ALIGNMENT
}

class Writer {
  private buf = new Uint8Array(1 << 16)
  private view = new DataView(this.buf.buffer)
  private at = 0
  private readonly encoder = new TextEncoder()

  private room (n: number): void {
    if (this.at + n <= this.buf.byteLength) return
    let size = this.buf.byteLength * 2
    while (size < this.at + n) size *= 2
    const next = new Uint8Array(size)
    next.set(this.buf.subarray(0, this.at))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  u32 (n: number): void { this.room(4); this.view.setUint32(this.at, n, true); this.at += 4 }
  i32 (n: number): void { this.room(4); this.view.setInt32(this.at, n, true); this.at += 4 }
  f32 (n: number): void { this.room(4); this.view.setFloat32(this.at, n, true); this.at += 4 }
  u64 (n: number): void { this.room(8); this.view.setBigUint64(this.at, BigInt(n), true); this.at += 8 }
  u8 (n: number): void { this.room(1); this.view.setUint8(this.at, n); this.at += 1 }

  /** A GGUF string: u64 byte length, then UTF-8 bytes, no terminator. */
  str (s: string): void {
    const bytes = this.encoder.encode(s)
    this.u64(bytes.byteLength)
    this.room(bytes.byteLength)
    this.buf.set(bytes, this.at)
    this.at += bytes.byteLength
  }

  value (value: Value): void {
    switch (value.t) {
      case VT.U32: this.u32(value.v); break
      case VT.I32: this.i32(value.v); break
      case VT.F32: this.f32(value.v); break
      case VT.U64: this.u64(value.v); break
      case VT.BOOL: this.u8(value.v ? 1 : 0); break
      case VT.STRING: this.str(value.v); break
      case VT.ARRAY:
        this.u32(value.of)
        this.u64(value.v.length)
        if (value.of === VT.STRING) for (const s of value.v) this.str(s)
        else if (value.of === VT.F32) for (const n of value.v) this.f32(n)
        else for (const n of value.v) this.i32(n)
        break
    }
  }

  f32s (data: Float32Array): void {
    this.room(data.byteLength)
    for (let i = 0; i < data.length; i++) this.view.setFloat32(this.at + i * 4, data[i] ?? 0, true)
    this.at += data.byteLength
  }

  pad (): void {
    const to = align(this.at)
    this.room(to - this.at)
    this.at = to // the buffer is zero-filled
  }

  bytes (): Uint8Array { return this.buf.slice(0, this.at) }
}

export interface TinyModelsDir {
  /** A temporary folder standing for a node's data directory. */
  dataDir: string
  /** Its `models/` folder, holding the generated models. */
  modelsDir: string
  /** Removes the whole temporary folder. */
  remove: () => Promise<void>
}

/** A temporary data directory whose `models/` holds one tiny model per name (seeded 1, 2, …). */
export async function tinyModelsDir (names: string[] = ['tiny'], options: Omit<TinyModelOptions, 'seed'> = {}): Promise<TinyModelsDir> {
  const dataDir = await mkdtemp(join(tmpdir(), 'hive-models-'))
  const modelsDir = join(dataDir, 'models')
  await mkdir(modelsDir)
  let seed = 1
  for (const name of names) await writeTinyGguf(join(modelsDir, `${name}.gguf`), { ...options, seed: seed++, name })
  return { dataDir, modelsDir, remove: async () => { await rm(dataDir, { recursive: true, force: true }) } }
}
