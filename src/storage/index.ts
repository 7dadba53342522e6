export {
  openDatabase,
  migrate,
  storeStartError,
  isDiskFull,
  diskFullError,
  CAXTON_APPLICATION_ID,
  type Db,
  type Migration,
  type OpenOptions,
} from './database.js';
export {
  checkpointInBackground,
  CHECKPOINT_INTERVAL_MS,
  type Checkpointer,
  type CheckpointerOptions,
} from './checkpointer.js';
export { globSql, type SqlDialect } from './glob-sql.js';
export { Pruner, tableRule, PRUNE_BATCH, type RetentionRule, type PrunerOptions } from './retention.js';
export {
  writeLane,
  TURN_WRITER_MAX_QUEUE,
  TURN_WRITER_WINDOW_MS,
  type WriteLane,
  type WriteLaneOptions,
} from './turn-writer.js';
export { GroupCommit, type JoinedWrite, type JoinFailures } from './group-commit.js';
export {
  lockDataDir,
  readDataLock,
  DATA_LOCK_FILE,
  DATA_LOCK_HOLD_FILE,
  type DataLock,
  type DataLockRecord,
} from './data-lock.js';
export { WriteFence, storeWriteError, watchDataDir, type DataDirWatch } from './write-fence.js';
