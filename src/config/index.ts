export { loadServerConfig, ConfigError, type ConfigFlags, type LoadOptions } from './load.js';
export { redactSecrets, REDACTED } from './redact.js';
export { serverConfigSchema, providerSchema, type ServerConfig, type ServerConfigInput } from './schema.js';
