// The WebAssembly JS API, typed locally. The project's TypeScript libs (ES2024 + node) do not
// declare the `WebAssembly` global, and declaring it ambiently would collide with a DOM lib if
// one is ever added; this handle types just what the sandbox uses.

/** A compiled core module; structured-cloneable to worker threads. */
export interface WasmModule { readonly __wasmModule?: never }

export interface WasmMemory {
  readonly buffer: ArrayBuffer
  grow: (pages: number) => number
}

export interface WasmInstance {
  readonly exports: Record<string, unknown>
}

export type WasmImports = Record<string, Record<string, unknown>>

interface WasmApi {
  compile: (bytes: Uint8Array) => Promise<WasmModule>
  instantiate: (module: WasmModule, imports?: WasmImports) => Promise<WasmInstance>
  Module: new (bytes: Uint8Array) => WasmModule
  Instance: new (module: WasmModule, imports?: WasmImports) => WasmInstance
  Memory: abstract new (...args: never[]) => WasmMemory
  RuntimeError: abstract new (...args: never[]) => Error
}

export const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly
