// What `GET /runtimes` lists beside the WebAssembly runtime: the code tasks' interpreter, the
// LLM routes of the waterfall, and the cloud runtimes this node knows of but has no setup for,
// each with its status and, when it is not ready, what it would need.

import type { CapabilityReport } from '../protocol/index.ts'
import type { CodeRuntime } from '../sandbox/index.ts'
import type { RuntimeInfo } from './api/types.ts'

export interface RuntimeSources {
  readonly codeRuntime: Pick<CodeRuntime, 'state' | 'digest' | 'error'>
  readonly peerId: { toString: () => string }
  readonly capabilities: { view: () => Array<{ peerId: string, caps: Pick<CapabilityReport, 'models' | 'name'> }> }
  readonly llm: { cloudList: () => Array<{ provider: string }> }
}

export function runtimeProbes (node: RuntimeSources): Array<[string, () => RuntimeInfo]> {
  const self = (): string => node.peerId.toString()
  return [
    ['js-code', () => {
      const state = node.codeRuntime.state()
      const digest = node.codeRuntime.digest()
      return {
        name: 'js-code',
        kind: 'agent',
        status: state === 'ready' ? 'ready' : state === 'building' ? 'starting' : state === 'failed' ? 'unavailable' : 'not built',
        detail: 'JavaScript code tasks ({"type":"code-execution"}), run by one interpreter component in the WebAssembly sandbox',
        ...(digest !== undefined ? { digest } : {}),
        ...(state === 'not built' ? { needs: 'nothing: the interpreter is built on the first code task (once, ~15 s) and cached' } : {}),
        ...(state === 'failed' ? { needs: `a build that works: ${node.codeRuntime.error() ?? 'the last one failed'}` } : {})
      }
    }],
    ['llm-local', () => {
      const models = node.capabilities.view().find(e => e.peerId === self())?.caps.models ?? []
      return models.length > 0
        ? { name: 'llm-local', kind: 'llm', status: 'ready', detail: `models on this device: ${models.join(', ')}`, models }
        : { name: 'llm-local', kind: 'llm', status: 'unavailable', detail: 'no model on this device', needs: 'a GGUF model (hive-node models add FILE) or a running Ollama with a model' }
    }],
    ['llm-peer', () => {
      const devices = node.capabilities.view().filter(e => e.peerId !== self() && e.caps.models.length > 0)
      return devices.length > 0
        ? { name: 'llm-peer', kind: 'llm', status: 'ready', detail: `members with models: ${devices.map(d => d.caps.name).join(', ')}` }
        : { name: 'llm-peer', kind: 'llm', status: 'unavailable', detail: 'no other member reports a model', needs: 'another device of the hive with a model' }
    }],
    ['llm-cloud', () => {
      const providers = node.llm.cloudList().map(p => p.provider)
      return providers.length > 0
        ? { name: 'llm-cloud', kind: 'llm', status: 'ready', detail: `cloud providers with a key here: ${providers.join(', ')} (within the hive's budget)` }
        : { name: 'llm-cloud', kind: 'llm', status: 'not configured', needs: 'a provider key on this device: hive-node cloud set PROVIDER' }
    }],
    ['cloud-code', () => ({
      name: 'cloud-code',
      kind: 'cloud',
      status: 'not configured',
      detail: 'code tasks in a cloud sandbox; "runtime": "auto" runs them in the hive',
      needs: 'a cloud sandbox provider and its API key; this node has no such integration yet'
    })]
  ]
}
