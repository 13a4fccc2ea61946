// The workflow file's checks, with no node: every refusal happens before anything runs and names
// the step at fault; every bound of FLOW_LIMITS is enforced; the published schema is the one the
// code checks with.

import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { FLOW_LIMITS, InvalidWorkflowError, classifyAgent, parseTemplate, parseWorkflowText, planWorkflow, renderTemplate, workflowJsonSchema } from '../../node/flows/index.ts'

const D = 'a'.repeat(64)

function wf (steps: unknown[], extra: Record<string, unknown> = {}): unknown {
  return { version: 1, steps, ...extra }
}

function refused (value: unknown, pattern: RegExp, step?: string): InvalidWorkflowError {
  let caught: unknown
  try {
    planWorkflow(value)
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof InvalidWorkflowError, `refused with InvalidWorkflow, got ${String(caught)}`)
  assert.equal(caught.name, 'InvalidWorkflow')
  assert.match(caught.message, pattern)
  if (step !== undefined) assert.equal(caught.step, step)
  return caught
}

describe('workflow definition', () => {
  it('plans a fetch → fork → join workflow: dependencies from needs and templates, the last step as output', () => {
    const plan = planWorkflow(wf([
      { name: 'fetch', agent: D, input: '${{ input }}' },
      { name: 'summarise', agent: D, fork: { over: '${{ steps.fetch.output }}', concurrency: 3 }, input: 'summary of ${{item}} (#${{ index }})', retries: 2, timeoutMs: 5000 },
      { name: 'report', agent: D, needs: ['fetch'], input: '${{ steps.summarise.output }}' }
    ]))
    assert.deepEqual(plan.steps.map(s => [s.name, s.after]), [['fetch', []], ['summarise', ['fetch']], ['report', ['fetch', 'summarise']]])
    assert.equal(plan.output, 'report')
    const fork = plan.steps[1]!
    assert.equal(fork.concurrency, 3)
    assert.equal(fork.retries, 2)
    assert.equal(renderTemplate(fork.input, { input: '', outputs: new Map(), item: 'x', index: 4 }), 'summary of x (#4)')
    assert.equal(renderTemplate(fork.input, { input: '', outputs: new Map(), item: { a: 1 }, index: 0 }), 'summary of {"a":1} (#0)')
  })

  it('refuses a cycle, naming the steps in it', () => {
    const err = refused(wf([
      { name: 'a', agent: D, input: '${{ steps.c.output }}' },
      { name: 'b', agent: D, needs: ['a'] },
      { name: 'c', agent: D, needs: ['b'] }
    ]), /cycle/)
    assert.match(err.message, /"a"/)
    assert.match(err.message, /"b"/)
    assert.match(err.message, /"c"/)
    refused(wf([{ name: 'self', agent: D, needs: ['self'] }]), /step "self" depends on itself/, 'self')
  })

  it('refuses unknown step references, in needs and in templates, naming the step', () => {
    refused(wf([{ name: 'a', agent: D }, { name: 'b', agent: D, needs: ['nope'] }]), /step "b" refers to step "nope"/, 'b')
    refused(wf([{ name: 'a', agent: D, input: 'x ${{ steps.ghost.output }}' }]), /step "a" refers to step "ghost"/, 'a')
    refused(wf([{ name: 'a', agent: D }], { output: 'z' }), /"output" names step "z"/)
  })

  it('refuses bad templates, naming the step and the field', () => {
    refused(wf([{ name: 'a', agent: D, input: '${{ input' }]), /step "a", input: bad template: .*never closed/, 'a')
    refused(wf([{ name: 'a', agent: D, input: '${{ env.HOME }}' }]), /step "a", input: bad template: .*not an expression/, 'a')
    refused(wf([{ name: 'a', agent: D, input: '${{ steps.a }}' }]), /step "a", input: bad template/, 'a')
    refused(wf([{ name: 'a', agent: D, input: '${{ item }}' }]), /step "a", input: .*only defined in a fork step/, 'a')
    refused(wf([{ name: 'a', agent: D, fork: { over: '${{ item }}' } }]), /step "a", fork.over/, 'a')
    refused(wf([{ name: 'a', agent: D, fork: { over: '{"not":"an array"}' } }]), /step "a", fork.over: gave JSON that is not an array/, 'a')
    refused(wf([{ name: 'a', agent: D, fork: { over: 'nope' } }]), /step "a", fork.over: .*not JSON/, 'a')
  })

  it('refuses a wrong shape, naming the step and the field', () => {
    refused(wf([{ name: 'a', agent: D, retries: 'twice' }]), /step "a", retries/, 'a')
    refused(wf([{ name: 'a', agent: D, bogus: 1 }]), /step "a"/, 'a')
    refused(wf([{ name: 'a', agent: D }, { name: 'a', agent: D }]), /step "a" is defined twice/, 'a')
    refused(wf([{ name: '1st', agent: D }]), /steps\[0\]|step "1st"/)
    refused({ version: 2, steps: [{ name: 'a', agent: D }] }, /version/)
    refused(wf([]), /steps/)
    refused(wf([{ name: 'a', agent: D, requirements: { minCores: 0 } }]), /step "a", requirements.minCores/, 'a')
    assert.throws(() => parseWorkflowText('{ not json', 'flow.json'), /flow.json is not JSON/)
  })

  it('holds every bound of FLOW_LIMITS', () => {
    const step = (i: number): unknown => ({ name: `s${i}`, agent: D })
    planWorkflow(wf(Array.from({ length: FLOW_LIMITS.maxSteps }, (_, i) => step(i))))
    refused(wf(Array.from({ length: FLOW_LIMITS.maxSteps + 1 }, (_, i) => step(i))), /steps/)
    planWorkflow(wf([{ name: 'f', agent: D, fork: { over: JSON.stringify(Array(FLOW_LIMITS.maxForkWidth).fill(1)) } }]))
    refused(wf([{ name: 'f', agent: D, fork: { over: JSON.stringify(Array(FLOW_LIMITS.maxForkWidth + 1).fill(1)) } }]), new RegExp(`at most ${FLOW_LIMITS.maxForkWidth}`), 'f')
    planWorkflow(wf([{ name: 'f', agent: D, fork: { over: '[]', concurrency: FLOW_LIMITS.maxConcurrency } }]))
    refused(wf([{ name: 'f', agent: D, fork: { over: '[]', concurrency: FLOW_LIMITS.maxConcurrency + 1 } }]), /step "f", fork.concurrency/, 'f')
    planWorkflow(wf([{ name: 't', agent: D, input: 'x'.repeat(FLOW_LIMITS.maxTemplateChars) }]))
    refused(wf([{ name: 't', agent: D, input: 'x'.repeat(FLOW_LIMITS.maxTemplateChars + 1) }]), /step "t", input/, 't')
    planWorkflow(wf([{ name: 't', agent: D, input: '${{ input }}'.repeat(FLOW_LIMITS.maxTemplateExpressions) }]))
    refused(wf([{ name: 't', agent: D, input: '${{ input }}'.repeat(FLOW_LIMITS.maxTemplateExpressions + 1) }]), /more than/, 't')
    refused(wf([{ name: 'r', agent: D, retries: FLOW_LIMITS.maxRetries + 1 }]), /step "r", retries/, 'r')
    refused(wf([{ name: 'r', agent: D, timeoutMs: FLOW_LIMITS.maxTimeoutMs + 1 }]), /step "r", timeoutMs/, 'r')
    refused(wf([{ name: 'r', agent: D, timeoutMs: FLOW_LIMITS.minTimeoutMs - 1 }]), /step "r", timeoutMs/, 'r')
    refused(wf([{ name: 'n'.repeat(FLOW_LIMITS.maxStepNameChars + 1), agent: D }]), /name/)
    const big = JSON.stringify(wf([{ name: 'a', agent: D, description: 'x'.repeat(FLOW_LIMITS.maxFileBytes) }]))
    assert.throws(() => parseWorkflowText(big, 'big.json'), new RegExp(`big.json is ${Buffer.byteLength(big)} bytes; a workflow file holds at most ${FLOW_LIMITS.maxFileBytes}`))
  })

  it('tells digests, registry names and file paths apart', () => {
    assert.deepEqual(classifyAgent(D), { kind: 'digest', digest: D })
    assert.deepEqual(classifyAgent(`sha256:${D}`), { kind: 'digest', digest: D })
    assert.deepEqual(classifyAgent('summarise@1.2.0'), { kind: 'registry', name: 'summarise', version: '1.2.0' })
    assert.deepEqual(classifyAgent('./agents/summarise.wasm'), { kind: 'file', path: './agents/summarise.wasm' })
    assert.deepEqual(classifyAgent('agent@1.wasm'), { kind: 'file', path: 'agent@1.wasm' })
  })

  it('cuts templates into text and expressions', () => {
    assert.deepEqual(parseTemplate('a ${{input}} b ${{ steps.x-1.output }}'), ['a ', { kind: 'input' }, ' b ', { kind: 'step', step: 'x-1' }])
    assert.deepEqual(parseTemplate('no expressions'), ['no expressions'])
  })

  it('publishes the schema it checks with (docs/workflow.schema.json)', async () => {
    const published = JSON.parse(await readFile(new URL('../../docs/workflow.schema.json', import.meta.url), 'utf8')) as unknown
    assert.deepEqual(published, workflowJsonSchema(), 'docs/workflow.schema.json is out of date: regenerate it from workflowJsonSchema()')
  })
})
