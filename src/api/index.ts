export { createApi, type ApiDeps } from './app.js';
export { envelope, type ErrorEnvelope } from './envelope.js';
export type { Lifecycle } from './routes/system.js';
export { toolRoutes, TOOL_DEPLOY_BODY_LIMIT } from './routes/tools.js';
export { SqliteResponseStore, RESPONSE_MIGRATIONS } from './response-store-sqlite.js';
