// The generated test model is a real GGUF file: an independent reader (node-llama-cpp's own
// parser, in JavaScript) finds the tokenizer, the chat template and every tensor we wrote.

import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { readGgufFileInfo } from 'node-llama-cpp'
import { readGgufHeader } from '../../../protocol/llm/engines/models-dir.ts'
import { CHAT_TEMPLATE, GGUF_MAGIC, tinyGguf, tinyVocabulary, writeTinyGguf } from '../../helpers/gguf.ts'

describe('tiny GGUF writer', () => {
  let dir: string
  before(async () => { dir = await mkdtemp(join(tmpdir(), 'hive-gguf-')) })
  after(async () => { await rm(dir, { recursive: true, force: true }) })

  it('is deterministic for a seed and differs between seeds', () => {
    const a = tinyGguf({ seed: 7 })
    const b = tinyGguf({ seed: 7 })
    const c = tinyGguf({ seed: 8 })
    assert.deepEqual(a, b)
    assert.notDeepEqual(a, c)
    assert.equal(a.byteLength, c.byteLength)
    assert.ok(a.byteLength > 100_000 && a.byteLength < 1_000_000, `size ${a.byteLength}`)
    assert.equal(new DataView(a.buffer).getUint32(0, true), GGUF_MAGIC)
  })

  it('is read back by an independent GGUF parser with its tokenizer and tensors', async () => {
    const file = join(dir, 'm.gguf')
    await writeTinyGguf(file, { seed: 3, name: 'm' })
    const header = await readGgufHeader(file)
    assert.equal(header.version, 3)
    const info = await readGgufFileInfo(file, { readTensorInfo: true })
    assert.equal(info.version, 3)
    const meta = info.metadata as unknown as {
      general: { architecture: string, name: string }
      llama: { block_count: number, embedding_length: number }
      tokenizer: { ggml: { model: string, tokens: string[], token_type: number[], bos_token_id: number, eos_token_id: number }, chat_template: string }
    }
    assert.equal(meta.general.architecture, 'llama')
    assert.equal(meta.general.name, 'm')
    assert.equal(meta.llama.block_count, 2)
    const vocab = tinyVocabulary()
    assert.equal(meta.tokenizer.ggml.model, 'llama')
    assert.deepEqual(meta.tokenizer.ggml.tokens, vocab.tokens)
    assert.equal(meta.tokenizer.ggml.tokens[meta.tokenizer.ggml.bos_token_id], '<s>')
    assert.equal(meta.tokenizer.ggml.tokens[meta.tokenizer.ggml.eos_token_id], '</s>')
    assert.equal(meta.tokenizer.ggml.token_type.filter(t => t === 6).length, 256, 'one byte-fallback token per byte')
    assert.equal(meta.tokenizer.chat_template, CHAT_TEMPLATE)
    assert.equal(header.tensorCount, BigInt(info.tensorInfo?.length ?? -1))
    const names = new Set(info.tensorInfo?.map(t => t.name))
    for (const name of ['token_embd.weight', 'output.weight', 'output_norm.weight', 'blk.0.attn_q.weight', 'blk.1.ffn_down.weight']) {
      assert.ok(names.has(name), `tensor ${name}`)
    }
  })
})
