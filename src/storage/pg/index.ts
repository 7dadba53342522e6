/**
 * What every PostgreSQL adapter shares (the cluster's state: agents, versions, pins, tool
 * packages, the tool audit, events, messages): transactions and statement batches, schema
 * migrations, batched log writers, and the mapping of connection failures to Caxton's errors.
 * The adapters themselves live beside the port each implements.
 */
export {
  guardConnections,
  inTransaction,
  intArray,
  escapeLiteral,
  literal,
  mergeWrites,
  RolledBack,
  StatementBatch,
  type Literal,
} from './tx.js';
export { isUnreachable, stateUnavailable, guardReads } from './errors.js';
export { migrateSchema, quotedSchema, SCHEMA_NAME, type PgMigration } from './migrate.js';
export { columnsOf, PgLogTable, pruneLogTable, type PgBatchTuning, type PgLogTableOptions } from './batch.js';
