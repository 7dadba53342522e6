export { createLogger, REDACT_PATHS, type Logger } from './logger.js';
export { Metrics } from './metrics.js';
export { setupTracing, type Tracing } from './tracing.js';
