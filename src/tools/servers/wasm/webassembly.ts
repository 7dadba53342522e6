/**
 * The slice of the WebAssembly JS API the sandbox uses, typed here because the project compiles
 * against the ES library only (no DOM types, where TypeScript declares `WebAssembly`).
 */

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

export interface WasmGlobal {
  value: number | bigint;
}

export type WasmExports = Record<string, unknown>;

export interface WasmInstance {
  readonly exports: WasmExports;
}

/** A compiled module: opaque. */
export type WasmModule = object;

export interface WasmImportDescriptor {
  module: string;
  name: string;
  kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
}

export interface WasmExportDescriptor {
  name: string;
  kind: 'function' | 'table' | 'memory' | 'global' | 'tag';
}

export type WasmImports = Record<string, Record<string, unknown>>;

interface WebAssemblyApi {
  Module: {
    new (bytes: Uint8Array): WasmModule;
    imports(m: WasmModule): WasmImportDescriptor[];
    exports(m: WasmModule): WasmExportDescriptor[];
  };
  Instance: new (m: WasmModule, imports: WasmImports) => WasmInstance;
  Memory: new (d: { initial: number; maximum?: number }) => WasmMemory;
  validate(bytes: Uint8Array): boolean;
  compile(bytes: Uint8Array): Promise<WasmModule>;
  CompileError: new (...a: unknown[]) => Error;
  LinkError: new (...a: unknown[]) => Error;
  RuntimeError: new (...a: unknown[]) => Error;
}

export const WA = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

export const PAGE = 65536;
