/**
 * The WebAssembly sandbox of tool servers: a module, instrumented for fuel and a stack bound
 * (instrument.ts), run in the calling thread speaking Extism's kernel ABI (sandbox.ts; ADR 0009),
 * and the typed slice of the WebAssembly API both sandboxes use (webassembly.ts).
 */
export {
  WasmSandbox,
  prepareModule,
  clearPreparedModules,
  HOST_IMPORTS,
  type SandboxLimits,
  type SandboxGrants,
  type SandboxHooks,
  type CallResult,
  type LogLevel,
  type PreparedModule,
} from './sandbox.js';
export {
  instrument,
  WasmFormatError,
  FUEL_EXPORT,
  START_EXPORT,
  MAX_FUEL,
  type InstrumentOptions,
  type InstrumentResult,
} from './instrument.js';
export { WA, PAGE, type WasmInstance, type WasmMemory, type WasmModule } from './webassembly.js';
