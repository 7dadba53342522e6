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

/** A row of either store (the same columns in SQLite and PostgreSQL). */
export interface PushConfigRow {
  task_id: string;
  principal: string;
  id: string;
  url: string;
  token: string;
  auth_scheme: string;
  auth_credentials: string;
}

export const configOf = (r: PushConfigRow): PushConfig => ({
  taskId: r.task_id,
  principal: r.principal,
  id: r.id,
  url: r.url,
  token: r.token,
  authScheme: r.auth_scheme,
  authCredentials: r.auth_credentials,
});

export const COLUMNS = 'task_id, principal, id, url, token, auth_scheme, auth_credentials';

/**
 * Where the configs are kept: the node's SQLite (PushConfigStore), or on a cluster the shared
 * PostgreSQL (pg-push-store.ts), so that whichever node follows a run reads every config set on it.
 */
export interface PushConfigs {
  /** Sets (or replaces) the principal's config `id` of the task. */
  put(c: PushConfig): Promise<void>;
  get(taskId: string, principal: string, id: string): Promise<PushConfig | undefined>;
  /** The principal's configs of the task, oldest first. */
  list(taskId: string, principal: string): Promise<PushConfig[]>;
  /** Whether there was such a config to delete. */
  delete(taskId: string, principal: string, id: string): Promise<boolean>;
  /** Every config of the task, whoever set it: where its changes are sent. */
  forTask(taskId: string): Promise<PushConfig[]>;
  /** The tasks that have configs (followed again at start). */
  tasks(): Promise<string[]>;
  /** Forgets every config of a task (one whose run is gone). */
  dropTask(taskId: string): Promise<void>;
}

export class PushConfigStore implements PushConfigs {
  constructor(private readonly db: Db) {
    migrate(db, PUSH_MIGRATIONS);
  }

  /** Sets (or replaces) the principal's config `id` of the task. */
  async put(c: PushConfig): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO a2a_push_configs (${COLUMNS}, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (task_id, principal, id) DO UPDATE SET url = excluded.url, token = excluded.token,
           auth_scheme = excluded.auth_scheme, auth_credentials = excluded.auth_credentials`,
      )
      .run(c.taskId, c.principal, c.id, c.url, c.token, c.authScheme, c.authCredentials, Date.now());
  }

  async get(taskId: string, principal: string, id: string): Promise<PushConfig | undefined> {
    const r = this.db
      .prepare(`SELECT ${COLUMNS} FROM a2a_push_configs WHERE task_id = ? AND principal = ? AND id = ?`)
      .get(taskId, principal, id) as PushConfigRow | undefined;
    return r && configOf(r);
  }

  /** The principal's configs of the task, oldest first. */
  async list(taskId: string, principal: string): Promise<PushConfig[]> {
    return (
      this.db
        .prepare(`SELECT ${COLUMNS} FROM a2a_push_configs WHERE task_id = ? AND principal = ? ORDER BY created_at, id`)
        .all(taskId, principal) as PushConfigRow[]
    ).map(configOf);
  }

  /** Whether there was such a config to delete. */
  async delete(taskId: string, principal: string, id: string): Promise<boolean> {
    return (
      this.db
        .prepare('DELETE FROM a2a_push_configs WHERE task_id = ? AND principal = ? AND id = ?')
        .run(taskId, principal, id).changes > 0
    );
  }

  /** Every config of the task, whoever set it: where its changes are sent. */
  async forTask(taskId: string): Promise<PushConfig[]> {
    return (
      this.db
        .prepare(`SELECT ${COLUMNS} FROM a2a_push_configs WHERE task_id = ? ORDER BY created_at, id`)
        .all(taskId) as PushConfigRow[]
    ).map(configOf);
  }

  /** The tasks that have configs (followed again at start). */
  async tasks(): Promise<string[]> {
    return (this.db.prepare('SELECT DISTINCT task_id FROM a2a_push_configs').all() as { task_id: string }[]).map(
      (r) => r.task_id,
    );
  }

  /** Forgets every config of a task (one whose run is gone). */
  async dropTask(taskId: string): Promise<void> {
    this.db.prepare('DELETE FROM a2a_push_configs WHERE task_id = ?').run(taskId);
  }
}
