// Tools with parameters in the manifest: a tool's parameter schema must be a JSON schema of named
// parameters that can be checked; `--param k=v` values are read as the schema's types; parameters
// are checked with every problem named; and the agent gets {"tool","params","input"} as its input.

import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { MAX_TOOL_SCHEMA_BYTES, findTool, paramsFromPairs, parseManifest, toolInput, validateToolParams } from '../../sandbox/index.ts'

const BASE = { name: 'notes', version: '0.1.0' }
const SEARCH = {
  name: 'search',
  parameters: { type: 'object', properties: { q: { type: 'string' }, limit: { type: 'integer', maximum: 10 }, tags: { type: 'array', items: { type: 'string' } } }, required: ['q'], additionalProperties: false }
}

describe('tools with parameters', () => {
  it('accepts named tools with checkable schemas and refuses the rest when the manifest is read', () => {
    const m = parseManifest({ ...BASE, tools: [SEARCH, { name: 'list' }] })
    assert.deepEqual(m.tools?.map(t => t.name), ['search', 'list'])
    assert.deepEqual(m.tools?.[1]?.parameters, { type: 'object', properties: {} })
    for (const [tools, problem] of [
      [[{ name: 'Search', parameters: SEARCH.parameters }], /tools\.0\.name: a tool name/],
      [[SEARCH, SEARCH], /each tool name at most once/],
      [[{ name: 'x', parameters: { type: 'string' } }], /"type": "object"/],
      [[{ name: 'x', parameters: { type: 'object', properties: { a: { $ref: 'https://elsewhere/schema' } } } }], /not a usable JSON schema/],
      [[{ name: 'x', parameters: { type: 'object', description: 'd'.repeat(MAX_TOOL_SCHEMA_BYTES) } }], new RegExp(`at most ${MAX_TOOL_SCHEMA_BYTES}`)]
    ] as const) {
      assert.throws(() => parseManifest({ ...BASE, tools }), { name: 'ManifestInvalid', message: problem })
    }
  })

  it('reads --param values as the schema types them, checks them naming every problem, and builds the agent input', () => {
    const tool = findTool('notes', parseManifest({ ...BASE, tools: [SEARCH] }).tools, 'search')
    const params = paramsFromPairs(tool, ['q=a=b', 'limit=3', 'tags=["x","y"]'])
    assert.deepEqual(params, { q: 'a=b', limit: 3, tags: ['x', 'y'] })
    assert.deepEqual(validateToolParams('notes', tool, params), params)
    assert.throws(() => validateToolParams('notes', tool, paramsFromPairs(tool, ['limit=eleven', 'extra=1'])), {
      name: 'ToolParamsInvalid', message: /q: .*; limit: .*; .*extra/
    })
    assert.throws(() => validateToolParams('notes', tool, { q: 'x', limit: 11 }), { name: 'ToolParamsInvalid', message: /limit: .*<=10/ })
    assert.throws(() => paramsFromPairs(tool, ['novalue']), { name: 'ToolParamsInvalid', message: /write KEY=VALUE/ })
    assert.throws(() => findTool('notes', [tool], 'drop'), { name: 'ToolNotFound', message: /its tools are search/ })
    assert.equal(toolInput('search', { q: 'x' }), '{"tool":"search","params":{"q":"x"}}')
    assert.equal(toolInput('search', { q: 'x' }, 'more'), '{"tool":"search","params":{"q":"x"},"input":"more"}')
  })
})
