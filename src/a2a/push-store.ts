/**
 * The push notification configs clients set on tasks (docs/a2a.md), in the node's SQLite beside
 * the runs: one row per config, owned by the principal that set it (another principal neither
 * reads nor replaces it). They outlive a restart, so a task's webhook still hears how it ends.
 */
import { migrate, type Db, type Migration } from '../storage/index.js';

export const PUSH_MIGRATIONS: readonly Migration[] = [
  {
    id: 'a2a-push-001-create',
    sql: `
      CREATE TABLE a2a_push_configs (
        task_id          TEXT NOT NULL,
        principal        TEXT NOT NULL,
        id               TEXT NOT NULL,
        url              TEXT NOT NULL,
        token            TEXT NOT NULL,
        auth_scheme      TEXT NOT NULL,
        auth_credentials TEXT NOT NULL,
        created_at       INTEGER NOT NULL,
        PRIMARY KEY (task_id, principal, id)
      ) WITHOUT ROWID;
    `,
  },
];

/** One config as stored; `principal` is '' when authentication is off. */
export interface PushConfig {
  taskId: string;
  principal: string;
  id: string;
  url: string;
  token: string;
  authScheme: string;
  authCredentials: string;
}

interface Row {
  task_id: string;
  principal: string;
  id: string;
  url: string;
  token: string;
  auth_scheme: string;
  auth_credentials: string;
}

const configOf = (r: Row): PushConfig => ({
  taskId: r.task_id,
  principal: r.principal,
  id: r.id,
  url: r.url,
  token: r.token,
  authScheme: r.auth_scheme,
  authCredentials: r.auth_credentials,
});

const COLUMNS = 'task_id, principal, id, url, token, auth_scheme, auth_credentials';

export class PushConfigStore {
  constructor(private readonly db: Db) {
    migrate(db, PUSH_MIGRATIONS);
  }

  /** Sets (or replaces) the principal's config `id` of the task. */
  put(c: PushConfig): void {
    this.db
      .prepare(
        `INSERT INTO a2a_push_configs (${COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (task_id, principal, id) DO UPDATE SET url = excluded.url, token = excluded.token,
           auth_scheme = excluded.auth_scheme, auth_credentials = excluded.auth_credentials`,
      )
      .run(c.taskId, c.principal, c.id, c.url, c.token, c.authScheme, c.authCredentials, Date.now());
  }

  get(taskId: string, principal: string, id: string): PushConfig | undefined {
    const r = this.db
      .prepare(`SELECT ${COLUMNS} FROM a2a_push_configs WHERE task_id = ? AND principal = ? AND id = ?`)
      .get(taskId, principal, id) as Row | undefined;
    return r && configOf(r);
  }

  /** The principal's configs of the task, oldest first. */
  list(taskId: string, principal: string): PushConfig[] {
    return (
      this.db
        .prepare(`SELECT ${COLUMNS} FROM a2a_push_configs WHERE task_id = ? AND principal = ? ORDER BY created_at, id`)
        .all(taskId, principal) as Row[]
    ).map(configOf);
  }

  /** Whether there was such a config to delete. */
  delete(taskId: string, principal: string, id: string): boolean {
    return (
      this.db
        .prepare('DELETE FROM a2a_push_configs WHERE task_id = ? AND principal = ? AND id = ?')
        .run(taskId, principal, id).changes > 0
    );
  }

  /** Every config of the task, whoever set it: where its changes are sent. */
  forTask(taskId: string): PushConfig[] {
    return (
      this.db
        .prepare(`SELECT ${COLUMNS} FROM a2a_push_configs WHERE task_id = ? ORDER BY created_at, id`)
        .all(taskId) as Row[]
    ).map(configOf);
  }

  /** The tasks that have configs (followed again at start). */
  tasks(): string[] {
    return (this.db.prepare('SELECT DISTINCT task_id FROM a2a_push_configs').all() as { task_id: string }[]).map(
      (r) => r.task_id,
    );
  }

  /** Forgets every config of a task (one whose run is gone). */
  dropTask(taskId: string): void {
    this.db.prepare('DELETE FROM a2a_push_configs WHERE task_id = ?').run(taskId);
  }
}
