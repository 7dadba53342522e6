/** The LLM layer's one entry point: provider-neutral types, the provider clients and the registry. */
export * from './types.js';
export {
  createProvider,
  ProviderRegistry,
  chatWithFallbacks,
  type ModelAttempt,
  type AgentLlmChoice,
  type ResolveDefaults,
} from './provider-registry.js';
export { OpenAiProvider, OPENAI_DEFAULT_BASE_URL } from './openai-client.js';
export {
  AnthropicProvider,
  ANTHROPIC_DEFAULT_BASE_URL,
  anthropicBaseUrl,
  ANTHROPIC_VERSION,
  ANTHROPIC_DEFAULT_MAX_TOKENS,
} from './anthropic.js';
export { ScriptedProvider, type CheckedScript } from './scripted.js';
// The script reader (TOML parser, schema) is imported by the provider only when it reads a file, so this entry point stays light for worker threads and child processes: createScriptedProvider (a script given in memory) is in scripted-file.ts.
export type { Script } from './scripted-file.js';
export { parseRetryAfter, backoffDelay } from './retry.js';
export {
  DEFAULT_MODEL_ALIASES,
  isClaudeModelId,
  resolveModelName,
  type ModelAlias,
  type ModelResolution,
  type ProviderFacts,
} from './aliases.js';
