import { join, resolve } from 'node:path';
import { AGENT_MIGRATIONS } from '../../agents/index.js';
import { MESSAGING_MIGRATIONS } from '../../messaging/sqlite/index.js';
import type { Logger } from '../../observability/index.js';
import {
  checkpointInBackground,
  lockDataDir,
  migrate,
  openDatabase,
  storeStartError,
  watchDataDir,
  WriteFence,
  type DataLock,
  type Db,
} from '../../storage/index.js';
import type { Component } from './component.js';

export interface StorageComponent extends Component {
  /** caxton.db in the data dir: every SQLite table of the server. */
  readonly db: Db;
  /** The data dir's lock (ADR 0127): one server per data dir; the address is added once it listens. */
  readonly lock: DataLock;
  /** Stops every write into the data dir once it is found deleted or replaced: attach each SQLite connection opened in it. */
  readonly fence: WriteFence;
}

/**
 * How often the data dir is looked at while the server runs (a stat of the dir and of its lock
 * file), besides the moment its parent reports it gone.
 */
const DATA_DIR_CHECK_MS = 1_000;

/** Opens caxton.db and brings the agent and messaging tables up to date. */
export function openStorage(opts: { dataDir: string; logger: Logger }): StorageComponent {
  // Before any file in it is opened: a second server on the same data dir stops here, naming the first.
  const lock = lockDataDir(opts.dataDir);
  try {
    return openLocked(opts, lock);
  } catch (e) {
    lock.release();
    throw e;
  }
}

function openLocked(opts: { dataDir: string; logger: Logger }, lock: DataLock): StorageComponent {
  // A bad data file (damaged, truncated, another application's, not writable, disk full) stops
  // the start here with an error naming the file and what to do (src/storage/database.ts).
  const db = openDatabase(opts.dataDir, 'caxton.db', { log: opts.logger });
  try {
    migrate(db, AGENT_MIGRATIONS);
    migrate(db, MESSAGING_MIGRATIONS);
  } catch (e) {
    db.close();
    throw storeStartError(e, join(resolve(opts.dataDir), 'caxton.db'));
  }
  // Checkpoints on a worker thread, so that no request waits for one (ADR 0076); started once the
  // server has had a moment to start.
  const checkpoints = checkpointInBackground(db, {
    startAfterMs: 1000,
    onError: (e) =>
      opts.logger.warn(
        { err: e },
        'WAL checkpoint worker: a checkpoint failed, or the worker is gone and the server thread checkpoints again',
      ),
  });
  // A data dir deleted or replaced under the server would leave it writing into files no one will
  // read again (SQLite keeps the deleted ones open): every write is refused from then on, /ready
  // answers 503, and the log says it once.
  const fence = new WriteFence();
  fence.attach(db);
  const watch = watchDataDir(lock, fence, {
    dataDir: opts.dataDir,
    intervalMs: DATA_DIR_CHECK_MS,
    onStop: (why) =>
      opts.logger.error(
        { data_dir: opts.dataDir, reason: why },
        `${why}: this server is not ready (/ready answers 503) and refuses every write (503), since what it wrote now would be lost. Stop it, restore the data directory from a backup (or let it start empty), and start it again`,
      ),
  });
  return {
    name: 'storage',
    db,
    lock,
    fence,
    readiness: [
      {
        name: 'data-dir',
        quiet: true,
        check: () => {
          const why = watch.check();
          return why === undefined ? Promise.resolve() : Promise.reject(new Error(why));
        },
      },
    ],
    close: () => {
      watch.close();
      checkpoints.close();
      fence.close();
      db.close();
      lock.release();
    },
  };
}
