// Re-verifies a chain exported by `hive-node ledger --json` using only node:crypto and the
// byte-level spec in ledger/FORMAT.md, all three record format versions: no project code is imported
// here. The chain is made and exported by
// running the project as separate processes, as a third party would receive it.

import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { createHash, createPublicKey, verify } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

interface JsonRecord {
  seq: number
  prev: string
  time: number
  signer: string
  task: string
  agent: string
  input: string
  output: string
  status: string
  placement: string
  llm?: Array<{ route: string, calls: number, tokensIn: number, tokensOut: number }>
  net?: { requests: number, origins: Array<{ origin: string, requests: number }> }
  signature: string
  hash: string
}

// ---- the FORMAT.md spec, written from the text alone ----

const ALPHABET = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz'

function base58Decode (text: string): Buffer {
  let n = 0n
  for (const ch of text) {
    const v = ALPHABET.indexOf(ch)
    if (v < 0) throw new Error(`not base58: ${ch}`)
    n = n * 58n + BigInt(v)
  }
  const bytes: number[] = []
  while (n > 0n) {
    bytes.unshift(Number(n & 0xffn))
    n >>= 8n
  }
  for (const ch of text) {
    if (ch !== '1') break
    bytes.unshift(0)
  }
  return Buffer.from(bytes)
}

function u16 (n: number): Buffer {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(n)
  return b
}

function u64 (n: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeBigUInt64BE(BigInt(n))
  return b
}

function u32 (n: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeUInt32BE(n)
  return b
}

const ROUTE_CODES: Record<string, number> = { local: 1, peer: 2, cloud: 3 }

function str (s: string): Buffer {
  const b = Buffer.from(s, 'utf8')
  return Buffer.concat([u16(b.length), b])
}

const L = (1n << 252n) + 27742317777372353535851937790883648493n
const RECORD_DOMAIN = Buffer.from('686976652d6c65646765722f7265636f72642f7631', 'hex')

function signerBytes (peerId: string): Buffer {
  const bytes = base58Decode(peerId)
  assert.equal(bytes.length, 38)
  assert.deepEqual([...bytes.subarray(0, 6)], [0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
  return bytes
}

function body (r: JsonRecord): Buffer {
  const llm = r.llm ?? []
  const net = r.net
  return Buffer.concat([
    Buffer.from([net != null ? 0x03 : llm.length > 0 ? 0x02 : 0x01]),
    u64(r.seq),
    Buffer.from(r.prev, 'hex'),
    u64(r.time),
    u16(38),
    signerBytes(r.signer),
    str(r.task), str(r.agent), str(r.input), str(r.output), str(r.status), str(r.placement),
    ...(llm.length > 0 || net != null
      ? [Buffer.from([llm.length]), ...llm.map(u => Buffer.concat([Buffer.from([ROUTE_CODES[u.route] as number]), u32(u.calls), u32(u.tokensIn), u32(u.tokensOut)]))]
      : []),
    // version 3: the total, the count, then each origin (as listed: ascending bytes) with its requests
    ...(net != null
      ? [u32(net.requests), Buffer.from([net.origins.length]), ...net.origins.map(o => Buffer.concat([str(o.origin), u32(o.requests)]))]
      : [])
  ])
}

/** Returns the index of the first bad record and why, or null for a valid chain. */
function verifyChain (records: JsonRecord[]): { index: number, why: string } | null {
  let prev = Buffer.alloc(32)
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as JsonRecord
    if (r.seq !== i) return { index: i, why: 'seq' }
    if (!Buffer.from(r.prev, 'hex').equals(prev)) return { index: i, why: 'link' }
    const signer = signerBytes(r.signer)
    if (i > 0 && !signer.equals(signerBytes((records[0] as JsonRecord).signer))) return { index: i, why: 'signer' }
    const b = body(r)
    const signature = Buffer.from(r.signature, 'hex')
    if (signature.length !== 64) return { index: i, why: 'signature length' }
    const s = BigInt('0x' + Buffer.from(signature.subarray(32)).reverse().toString('hex'))
    if (s >= L) return { index: i, why: 'S >= L' }
    const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), signer.subarray(6)]), format: 'der', type: 'spki' })
    if (!verify(null, Buffer.concat([RECORD_DOMAIN, b]), key, signature)) return { index: i, why: 'signature' }
    const hash = createHash('sha256').update(Buffer.concat([b, signature])).digest()
    if (hash.toString('hex') !== r.hash) return { index: i, why: 'hash' }
    prev = hash
  }
  return null
}

describe('FORMAT.md ledger spec, verified with node:crypto alone', () => {
  let dir: string
  let records: JsonRecord[]

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hive-ledger-spec-'))
    await run(process.execPath, [join(ROOT, 'test/ledger/make-chain.ts'), dir, '5'], { cwd: ROOT, env: { ...process.env, HIVE_LOG_LEVEL: 'error' } })
    const { stdout } = await run(process.execPath, [join(ROOT, 'node/bin.js'), '--data', dir, 'ledger', '--json'], { cwd: ROOT })
    records = (JSON.parse(stdout) as { records: JsonRecord[] }).records
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('re-derives every body, signature check, hash and link of an exported chain', () => {
    assert.equal(records.length, 5)
    assert.equal(verifyChain(records), null)
  })

  it('the same verifier catches a changed field, signature or link', () => {
    const changed = (i: number, patch: Partial<JsonRecord>): JsonRecord[] => records.map((r, j) => (j === i ? { ...r, ...patch } : r))
    assert.deepEqual(verifyChain(changed(2, { status: 'error' })), { index: 2, why: 'signature' })
    const sig = records[3]!.signature
    assert.deepEqual(verifyChain(changed(3, { signature: (sig[0] === '0' ? '1' : '0') + sig.slice(1) })), { index: 3, why: 'signature' })
    assert.deepEqual(verifyChain(changed(1, { prev: '00'.repeat(32) })), { index: 1, why: 'link' })
  })

  it('covers both format versions: records without LLM usage (1) and with it (2)', () => {
    assert.deepEqual(records.map(r => r.llm != null), [false, true, false, true, false])
    assert.deepEqual(records[3]?.llm, [{ route: 'local', calls: 3, tokensIn: 300, tokensOut: 21 }, { route: 'cloud', calls: 1, tokensIn: 0xffffffff, tokensOut: 3 }])
    const changed = (i: number, patch: Partial<JsonRecord>): JsonRecord[] => records.map((r, j) => (j === i ? { ...r, ...patch } : r))
    // the usage is signed: a changed count, a dropped entry or a dropped list breaks the signature
    const llm = records[1]!.llm!
    assert.deepEqual(verifyChain(changed(1, { llm: [{ ...llm[0]!, tokensOut: llm[0]!.tokensOut + 1 }, llm[1]!] })), { index: 1, why: 'signature' })
    assert.deepEqual(verifyChain(changed(1, { llm: [llm[0]!] })), { index: 1, why: 'signature' })
    assert.deepEqual(verifyChain(changed(1, { llm: undefined })), { index: 1, why: 'signature' })
  })
})

describe('FORMAT.md ledger spec, version 3, verified with node:crypto alone', () => {
  let dir: string
  let records: JsonRecord[]
  let human: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hive-ledger-spec3-'))
    await run(process.execPath, [join(ROOT, 'test/ledger/make-chain.ts'), dir, '8'], { cwd: ROOT, env: { ...process.env, HIVE_LOG_LEVEL: 'error' } })
    const { stdout } = await run(process.execPath, [join(ROOT, 'node/bin.js'), '--data', dir, 'ledger', '--json'], { cwd: ROOT })
    records = (JSON.parse(stdout) as { records: JsonRecord[] }).records
    human = (await run(process.execPath, [join(ROOT, 'node/bin.js'), '--data', dir, 'ledger'], { cwd: ROOT })).stdout
  })

  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('re-derives a chain mixing versions 1, 2 and 3; the requests are signed like every field', () => {
    assert.equal(records.length, 8)
    assert.equal(verifyChain(records), null)
    assert.deepEqual(records.map(r => r.net?.requests), [undefined, undefined, undefined, undefined, undefined, 8, 9, 10])
    // listed in ascending byte order whatever order the run reported them in
    assert.deepEqual(records[6]?.net?.origins, [{ origin: 'http://127.0.0.1:8080', requests: 2 }, { origin: 'https://api.example.org', requests: 6 }])
    const changed = (i: number, patch: Partial<JsonRecord>): JsonRecord[] => records.map((r, j) => (j === i ? { ...r, ...patch } : r))
    const net = records[6]!.net!
    assert.deepEqual(verifyChain(changed(6, { net: { ...net, requests: net.requests + 1 } })), { index: 6, why: 'signature' })
    assert.deepEqual(verifyChain(changed(6, { net: { ...net, origins: [net.origins[0]!] } })), { index: 6, why: 'signature' })
    assert.deepEqual(verifyChain(changed(6, { net: undefined })), { index: 6, why: 'signature' })
  })

  it('hive-node ledger lists each run\'s requests under the table', () => {
    assert.match(human, /^ {2}seq 5: 8 http requests: http:\/\/127\.0\.0\.1:8080 ×2, https:\/\/api\.example\.org ×5, 1 to origins not listed$/m)
    assert.match(human, /^ {2}seq 7: 10 http requests: http:\/\/127\.0\.0\.1:8080 ×2, https:\/\/api\.example\.org ×7, 1 to origins not listed$/m)
  })
})
