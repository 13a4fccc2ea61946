// Bounds of the model backends, stated once: every reader of a model server, a model file or a
// model name imports them from here.

/** A model's name: the GGUF file name without `.gguf`, or an Ollama tag such as `llama3.2:1b`. */
export const MODEL_NAME_MAX = 128
/** Characters a GGUF model's name may use (it is a file name in the models folder). */
export const MODEL_FILE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*$/
/** One NDJSON line or one SSE event from a model server. */
export const STREAM_LINE_MAX_BYTES = 256 * 1024
/** A whole response body from a model server (a model list, an answer, embeddings). */
export const RESPONSE_MAX_BYTES = 32 * 1024 * 1024
/** How long a model list may take before the server counts as unavailable. */
export const LIST_TIMEOUT_MS = 5_000
/** Embedded engine: tokens of one context (prompt plus answer), when the model allows as many. */
export const EMBEDDED_CONTEXT_TOKENS = 4096
/** Embedded engine: a loaded model idle this long is unloaded to give its memory back. */
export const EMBEDDED_IDLE_UNLOAD_MS = 5 * 60_000
