/**
 * Tool servers: packages (`caxton-tool.toml` + a module) run in a sandbox, WebAssembly (wasm/,
 * Extism's kernel ABI, docs/adr/0009-wasm-tool-abi.md) or JavaScript (js/, QuickJS, ADR 0011),
 * under Caxton's fuel, memory, size and permission limits, in the server thread or on a worker
 * thread (off-thread.ts); the host functions they share (files, HTTP, SQLite, metering) are here,
 * as are the manager, the manifest and the package stores. Every call is recorded in the tool
 * audit (src/audit, ADR 0144).
 */
export {
  WasmToolServer,
  type ToolServerGrants,
  type WasmToolServerOptions,
  type ToolServerStats,
} from './tool-server.js';
export {
  parseToolManifest,
  parseToolManifestOrThrow,
  MANIFEST_FILE,
  DEFAULT_TOOL_LIMITS,
  TOOL_SERVER_NAME_RE,
  type ToolManifest,
  type ToolDeclaration,
  type ToolLimits,
  type ToolRuntime,
  type ConfigDeclaration,
  type ManifestResult,
} from './manifest.js';
export { JsSandbox, isJsModule, JS_FUEL_PER_POLL, JS_MAX_STACK_BYTES, loadQuickJS } from './js/index.js';
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
} from './wasm/index.js';
export { HostTrap, CALL_OUTCOMES, type CallOutcome } from './errors.js';
export { OffThreadSandbox } from './off-thread.js';
export { FileAccess, type PathRoot, type PathAccess } from './fs-access.js';
export {
  SqliteAccess,
  resolveDatabaseRoot,
  SQLITE_MAX_ROWS,
  SQLITE_DEFAULT_ROWS,
  type DatabaseRoot,
  type SqliteQueryOptions,
} from './sqlite-access.js';
export { SyncHttpClient, sharedHttpClient, type HttpRequest, type HttpResponse } from './host-http.js';
export {
  instrument,
  WasmFormatError,
  FUEL_EXPORT,
  START_EXPORT,
  MAX_FUEL,
  type InstrumentOptions,
  type InstrumentResult,
} from './wasm/index.js';
export {
  ToolServerManager,
  toServerGrants,
  toLimitCaps,
  DEFAULT_BUILTIN_DIR,
  API_CALLER,
  type ToolServerManagerOptions,
  type ToolServerSummary,
  type ToolServerView,
  type ToolServerOrigin,
  type ToolCallOptions,
  type ToolCallResult,
  type DeployResult,
  type ToolPackageChange,
  type RefreshOutcome,
} from './manager.js';
export {
  capLimits,
  formatLimit,
  DEFAULT_TOOL_CAPS,
  type ToolLimitCaps,
  type LimitViolation,
} from './manifest-limits.js';
export { HOST_ACCESS_FUEL, HOST_CALL_FUEL, HOST_IO_FUEL, LOG_BYTES_PER_CALL, LOG_LINES_PER_CALL } from './meter.js';
export { ToolPackageStore, TOOL_PACKAGE_MIGRATIONS } from './sqlite-package-store.js';
export {
  moduleDigest,
  type StoredToolPackage,
  type ToolPackageInput,
  type ToolPackageStorePort,
  type ToolPackageVersion,
} from './package-store.js';
export { PgToolPackageStore, type PgToolPackageStoreOptions } from './pg-package-store.js';
