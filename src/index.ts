/**
 * The library entry of the `caxton-server` package: `import { startServer, loadConfig } from 'caxton-server'`.
 *
 * Why a curated list instead of `export *` from every folder: this is the package's public API
 * (documented in docs/install.md, "Use Caxton as a library"); everything else under dist/ is internal and
 * may change between versions. Types come from the same modules the server uses (one source of
 * truth), so an embedding program and `caxton serve` cannot disagree.
 */

// The server: everything `caxton serve` runs, started in-process.
export { startServer, type CaxtonServer, type StartOptions } from './server/index.js';

// Configuration: caxton.toml + CAXTON_* environment + overrides, validated by one zod schema.
export {
  loadServerConfig,
  loadServerConfig as loadConfig,
  ConfigError,
  redactSecrets,
  serverConfigSchema,
  type ConfigFlags,
  type LoadOptions,
  type ServerConfig,
  type ServerConfigInput,
} from './config/index.js';

// Agent files: the parser for TOML, Markdown (Claude Code subagents) and JSON, and its result.
export { parseAgent, detectFormat, type ParseOptions, type ParseResult } from './agents/index.js';
export type {
  AgentDefinition,
  AgentFormat,
  AgentName,
  Capability,
  ToolName,
  LlmSettings,
  MemorySettings,
  Limits,
  ExecutionSettings,
  MessagingSettings,
  IsolationMode,
  MemoryScope,
} from './agents/index.js';

// Errors: one code table (code → HTTP status) shared by the API, the CLI and this library.
export {
  CaxtonError,
  ERROR_CODES,
  httpStatusFor,
  isCaxtonError,
  describeError,
  type ErrorCode,
  type SourceIssue,
} from './shared/index.js';
export { VERSION } from './shared/index.js';
