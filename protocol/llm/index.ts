// LLM calls of the hive: the shared vocabulary (types, errors); the model backends of one
// device — the embedded engine (llama.cpp on GGUF files in `<data dir>/models/`), an Ollama
// server, and an OpenAI-compatible cloud client; the waterfall that picks a route for each call
// (this device, a member over `/hive/llm/1.0.0`, a cloud within budget); the budget that
// reserves before and settles after; and the signed, replicated budget setting.
// May use Node's own modules, zod, node-llama-cpp (imported only on the embedded engine's first
// call) and protocol/'s wire kit; never `node/`.

export type * from './types.ts'
export * from './errors.ts'
export { createEmbeddedBackend } from './engines/embedded.ts'
export type { EmbeddedBackend, EmbeddedBackendInit, EmbeddedStatus } from './engines/embedded.ts'
export { createOllamaBackend, OLLAMA_DEFAULT_URL } from './engines/ollama.ts'
export type { OllamaBackend, OllamaBackendInit } from './engines/ollama.ts'
export { createCloudClient, estimateTokens } from './engines/openai.ts'
export type { CloudClient, CloudClientInit } from './engines/openai.ts'
export { addModelFile, listModelFiles, readGgufHeader, checkModelName, GGUF_EXTENSION } from './engines/models-dir.ts'
export type { GgufHeader } from './engines/models-dir.ts'
export { ModelExistsError, ModelFileInvalidError, ModelFileMissingError, ModelNameInvalidError, RequestInvalidError } from './engines/errors.ts'
export * as llmLimits from './engines/limits.ts'
export * from './budget.ts'
export * from './settings.ts'
export * from './protocol.ts'
export * from './router.ts'
