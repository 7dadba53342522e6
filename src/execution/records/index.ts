export {
  bounded,
  entryOf,
  MAX_STEPS,
  MAX_TEXT,
  MAX_TOOL_TEXT,
  type ExecutionEntry,
  type ExecutionLog,
  type ExecutionPage,
  type ExecutionQuery,
  type ExecutionReader,
  type ExecutionSummary,
  type ExecutionView,
  type FinishedExecution,
  type StoredToolCall,
} from './record-model.js';
export { SqliteExecutionStore, EXECUTIONS_MIGRATIONS, type SqliteExecutionStoreOptions } from './sqlite-records.js';
export { PgExecutionStore, type PgExecutionStoreOptions } from './pg-records.js';
export {
  listThreads,
  readFirst,
  readThread,
  targetOf,
  titleOf,
  THREAD_TURNS,
  type ThreadPage,
  type ThreadQuery,
  type ThreadSummary,
} from './thread-reads.js';
