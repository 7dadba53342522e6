/**
 * Memory: a knowledge graph per scope (agent / workspace / global) in the data dir's SQLite, with
 * local embeddings for semantic search (see docs/adr/0010-memory-store.md).
 */
export { MEMORY_MIGRATIONS } from './migrations.js';
export { MemoryStore, type MemoryStoreOptions, type AnnStatus } from './sqlite-store.js';
export type { MemoryBackend, MemoryBackendKind } from './backend.js';
export { entityText, matchedObservation, words } from './text.js';
export { VectorIndex, ANN_MIN_VECTORS, type AnnRepair } from './vector-index.js';
export { ANN_FILE_NAME, checkAnnFile, saveAnnFile, type AnnSidecar } from './ann-file.js';
export {
  agentScope,
  checkMemoryScope,
  parseScope,
  permittedScopes,
  toolScope,
  visibleScopes,
  SCOPE_KINDS,
  type MemoryCaller,
  type ScopeKind,
} from './scope.js';
export { DEFAULT_LIMITS, type MemoryLimits } from './memory-validate.js';
export type * from './types.js';
export { memoryTools, MEMORY_TOOL_NAMES, type AgentMemorySettings, type MemoryToolsOptions } from './tools.js';
export { executionMemory, renderMemories, type AgentMemoryOptions } from './agent.js';
export { parseMemoryConfig, embedderConfig, postgresConfig, type MemoryConfig } from './memory-config.js';
export { createMemory, type MemoryComponent, type CreateMemoryOptions } from './memory-service.js';
export {
  exportJson,
  exportJsonl,
  importMemory,
  prepareImport,
  runImport,
  type PreparedImport,
  parseJsonl,
  parseJsonExport,
  detectFormat,
  EXPORT_FORMAT,
  EXPORT_VERSION,
  type MemoryExport,
  type ImportOptions,
  type ImportResult,
  type ImportFormat,
} from './transfer.js';
