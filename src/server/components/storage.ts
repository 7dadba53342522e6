import { join, resolve } from 'node:path';
import { AGENT_MIGRATIONS } from '../../agents/index.js';
import { MESSAGING_MIGRATIONS } from '../../messaging/index.js';
import type { Logger } from '../../observability/index.js';
import {
  checkpointInBackground,
  lockDataDir,
  migrate,
  openDatabase,
  storeStartError,
  type DataLock,
  type Db,
} from '../../storage/index.js';
import type { Component } from './component.js';

export interface StorageComponent extends Component {
  /** caxton.db in the data dir: every SQLite table of the server. */
  readonly db: Db;
  /** The data dir's lock (ADR 0127): one server per data dir; the address is added once it listens. */
  readonly lock: DataLock;
}

/** How often the data dir is looked at while the server runs (a stat of the dir and of its lock file). */
const DATA_DIR_CHECK_MS = 5_000;

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
  // A data dir deleted or replaced under the server leaves it writing into files no one will read
  // again (SQLite keeps the deleted ones open): said once in the log, and /ready answers 503.
  let reported: string | undefined;
  const watch = setInterval(() => {
    const why = lock.lost();
    if (why !== undefined && reported === undefined)
      opts.logger.error(
        { data_dir: opts.dataDir, reason: why },
        `${why}: this server is not ready (/ready answers 503) and what it writes now is lost when it stops. Stop it, restore the data directory from a backup (or let it start empty), and start it again`,
      );
    if (why === undefined && reported !== undefined)
      opts.logger.info({ data_dir: opts.dataDir }, 'the data directory is back');
    reported = why;
  }, DATA_DIR_CHECK_MS);
  watch.unref();
  return {
    name: 'storage',
    db,
    lock,
    readiness: [
      {
        name: 'data-dir',
        quiet: true,
        check: () => {
          const why = lock.lost();
          return why === undefined ? Promise.resolve() : Promise.reject(new Error(why));
        },
      },
    ],
    close: () => {
      clearInterval(watch);
      checkpoints.close();
      db.close();
      lock.release();
    },
  };
}
