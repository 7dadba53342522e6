export { createLogger, SECRET_FIELDS, type Logger } from './logger.js';
export { clientRequestId, MAX_CLIENT_REQUEST_ID, newRequestId } from './request-id.js';
export { Metrics, type ClusterStepStats, type MetricSources } from './metrics.js';
export {
  activeTraceparent,
  childTraceparent,
  contextOf,
  endWithError,
  giveAttributes,
  spanName,
  SpanKind,
  SpanStatusCode,
  startSpan,
  traceLogFields,
  traceparentOf,
  withSpan,
  type Span,
  type SpanAttributes,
  type Tracer,
} from './trace-context.js';
export { setupTracing, type Tracing } from './tracing.js';
export {
  ExportFailureLog,
  exportFailureReporter,
  ReportingExporter,
  type ExportFailure,
  type ExportFailureReason,
} from './export-failures.js';
export {
  fullGc,
  startMemoryReducer,
  type MemoryReducer,
  type MemoryReducerOptions,
  type MemoryReducerStats,
} from './memory-reducer.js';
export { PgEventStore, relayEvents, type PgEventStoreOptions, type RelayEventsOptions } from './pg-agent-events.js';
export { SpanStore, type StoredSpan, type SpanStoreOptions } from './span-store.js';
export {
  HISTORY_RANGES,
  IncrementalHistory,
  windowOf,
  type History,
  type HistoryBucket,
  type HistoryRange,
  type StatsHistory,
} from './history.js';
export { SqliteStatsHistory, HISTORY_MIGRATIONS } from './sqlite-stats-history.js';
export { PgStatsHistory } from './pg-stats-history.js';
