import { join, resolve } from 'node:path';
import { AGENT_MIGRATIONS } from '../../agents/index.js';
import { MESSAGING_MIGRATIONS } from '../../messaging/index.js';
import type { Logger } from '../../observability/index.js';
import { checkpointInBackground, migrate, openDatabase, storeStartError, type Db } from '../../storage/index.js';
import type { Component } from './component.js';

export interface StorageComponent extends Component {
  /** caxton.db in the data dir: every SQLite table of the server. */
  readonly db: Db;
}

/** Opens caxton.db and brings the agent and messaging tables up to date. */
export function openStorage(opts: { dataDir: string; logger: Logger }): StorageComponent {
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
  return {
    name: 'storage',
    db,
    close: () => {
      checkpoints.close();
      db.close();
    },
  };
}
