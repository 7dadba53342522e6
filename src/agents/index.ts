export * from './definition.js';
export { parseAgent, detectFormat, type ParseOptions, type ParseResult } from './parse.js';
export { agentDocumentSchema, agentNameSchema } from './schema.js';
export { AgentRegistry, type DeployedAgent, type AgentOrigin, type RegistryEvent, type ListOptions } from './registry.js';
export { AgentStore, AGENT_MIGRATIONS } from './store.js';
export { AgentService, DEPLOY_CHECK_CODES, type AgentCheck, type DeployInput, type DeployOutcome, type FileStatus } from './service.js';
export { AgentDirectoryWatcher, isAgentFile } from './watcher.js';
export { CLAUDE_TOOL_MAP, CLAUDE_MODEL_ALIASES, mapClaudeTool } from './claude.js';
