// The WebAssembly agent runtime: the hive:agent WIT world, agent manifests, the transpile cache,
// running agents in worker threads under deadlines, memory caps and permission-gated host
// imports, and building JS/TS agents. May use jco/componentize-js, zod and node built-ins;
// never imports node/ or protocol/. The node hands it a cache directory, a context store and a
// model port (`AgentLlm`, which the hive's LLM router satisfies as it is).

export * from './errors.ts'
export { createSandbox } from './sandbox.ts'
export type { Sandbox, SandboxInit, SandboxComponents, SandboxStats, SandboxRunEvent, LoadedAgent, RunOptions, RunResult, AgentLogEntry, RuntimeInfo } from './sandbox.ts'
export { createMemoryContext, createMemoryContexts } from './context.ts'
export type { AgentContext, AgentContexts, AgentConversationEntry, MemoryContext } from './context.ts'
export { LLM_LIMITS } from './llm.ts'
export { NET_LIMITS, NET_PREFIX, addressKind, canonicalIp, netOrigins, netRefusal, originMatches, parseOrigin, parseRefusals, systemResolver } from './net.ts'
export type { NetRefusals, NetResolver, NetRunReport, Origin } from './net.ts'
export { KV_LIMITS, createMemoryKv } from './kv.ts'
export type { AgentKv, AgentKvStore } from './kv.ts'
export type {
  AgentLlm, AgentLlmCaller, AgentChatRequest, AgentChatResult, AgentEmbedResult, AgentLlmRoute, AgentLlmMessage,
  AgentLlmCall, AgentLlmUsage, RunLlmReport
} from './llm.ts'
export { agentDigest, isAgentDigest, inspectAgentBytes, checkImports, checkWorld } from './agent.ts'
export type { AgentDigest, AgentInfo, AgentImport } from './agent.ts'
export { MANIFEST_SECTION, ManifestSchema, embedManifest, parseManifest, parseManifestJson, readManifest } from './manifest.ts'
export type { Manifest, ManifestInput } from './manifest.ts'
export { MAX_TOOLS, MAX_TOOL_SCHEMA_BYTES, TOOL_NAME_PATTERN, ToolSchema, findTool, paramsFromPairs, toolInput, validateToolParams } from './tools.ts'
export type { Tool } from './tools.ts'
export { PERMISSIONS, WIT_PACKAGE, WIT_SOURCE, WIT_VERSION, WORLD_NAME, heldPermissions } from './wit.ts'
export type { Permission, PermissionEntry } from './wit.ts'
export { createTranspileCache } from './cache.ts'
export type { TranspileCache, CacheEvent, CacheOutcome } from './cache.ts'
export { CODE_LIMITS, TASK_RUNTIMES, TASK_TYPES, codeRuntimeKey, createCodeRuntime } from './code-runtime.ts'
export type { CodeRuntime, CodeRuntimeState, TaskType } from './code-runtime.ts'
