export { loadServerConfig, ConfigError, type ConfigFlags, type LoadOptions } from './load.js';
export { redactSecrets, REDACTED, secretValues } from './redact.js';
export {
  serverConfigSchema,
  providerSchema,
  toolGrantSchema,
  type ServerConfig,
  type ServerConfigInput,
  type ToolGrantConfig,
  toolCapsSchema,
  type ToolCapsConfig,
  type WorkspaceConfig,
  type WebConfig,
} from './config-schema.js';
export { clusterConfigSchema, clusterStateConfig, NODE_NAME, type ClusterConfig } from './cluster-schema.js';
export { a2aConfigSchema, a2aAgentSchema, type A2aConfig, type A2aAgentConfig } from './a2a-schema.js';
export { postgresConnectionFields } from './postgres-schema.js';
