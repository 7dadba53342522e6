/**
 * The push notification configs of a cluster, in its PostgreSQL: the single node's table
 * (push-store.ts) in the cluster schema, read and changed by every node, so a config set through
 * one node is sent by whichever node follows the task's run, and outlives the node that took it.
 */
import type pg from 'pg';
import { migrateSchema, quotedSchema, stateUnavailable, type PgMigration } from '../storage/pg/index.js';
import { COLUMNS, configOf, type PushConfig, type PushConfigRow, type PushConfigs } from './push-store.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    // SQLite's a2a-push-001.
    id: 'cluster-a2a-push-001',
    sql: (s) => `
      CREATE TABLE ${s}.a2a_push_configs (
        task_id          text NOT NULL,
        principal        text NOT NULL,
        id               text NOT NULL,
        url              text NOT NULL,
        token            text NOT NULL,
        auth_scheme      text NOT NULL,
        auth_credentials text NOT NULL,
        created_at       bigint NOT NULL,
        PRIMARY KEY (task_id, principal, id)
      );
    `,
  },
];

export interface PgPushConfigStoreOptions {
  pool: pg.Pool;
  /** The cluster schema (`[cluster.state] schema`); migrated by `PgPushConfigStore.open`. */
  schema: string;
}

export class PgPushConfigStore implements PushConfigs {
  readonly #pool: pg.Pool;
  readonly #table: string;

  /** Migrates the schema and opens the store on it. */
  static async open(opts: PgPushConfigStoreOptions): Promise<PgPushConfigStore> {
    await migrateSchema(opts.pool, opts.schema, MIGRATIONS);
    return new PgPushConfigStore(opts);
  }

  constructor(opts: PgPushConfigStoreOptions) {
    this.#pool = opts.pool;
    this.#table = `${quotedSchema(opts.schema)}.a2a_push_configs`;
  }

  async put(c: PushConfig): Promise<void> {
    await this.#query(
      `INSERT INTO ${this.#table} (${COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (task_id, principal, id) DO UPDATE SET url = excluded.url, token = excluded.token,
         auth_scheme = excluded.auth_scheme, auth_credentials = excluded.auth_credentials`,
      [c.taskId, c.principal, c.id, c.url, c.token, c.authScheme, c.authCredentials, Date.now()],
    );
  }

  async get(taskId: string, principal: string, id: string): Promise<PushConfig | undefined> {
    const { rows } = await this.#query(
      `SELECT ${COLUMNS} FROM ${this.#table} WHERE task_id = $1 AND principal = $2 AND id = $3`,
      [taskId, principal, id],
    );
    const r = rows[0] as PushConfigRow | undefined;
    return r && configOf(r);
  }

  async list(taskId: string, principal: string): Promise<PushConfig[]> {
    const { rows } = await this.#query(
      `SELECT ${COLUMNS} FROM ${this.#table} WHERE task_id = $1 AND principal = $2 ORDER BY created_at, id`,
      [taskId, principal],
    );
    return (rows as PushConfigRow[]).map(configOf);
  }

  async delete(taskId: string, principal: string, id: string): Promise<boolean> {
    const r = await this.#query(`DELETE FROM ${this.#table} WHERE task_id = $1 AND principal = $2 AND id = $3`, [
      taskId,
      principal,
      id,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  async forTask(taskId: string): Promise<PushConfig[]> {
    const { rows } = await this.#query(
      `SELECT ${COLUMNS} FROM ${this.#table} WHERE task_id = $1 ORDER BY created_at, id`,
      [taskId],
    );
    return (rows as PushConfigRow[]).map(configOf);
  }

  async tasks(): Promise<string[]> {
    const { rows } = await this.#query(`SELECT DISTINCT task_id FROM ${this.#table}`, []);
    return (rows as { task_id: string }[]).map((r) => r.task_id);
  }

  async dropTask(taskId: string): Promise<void> {
    await this.#query(`DELETE FROM ${this.#table} WHERE task_id = $1`, [taskId]);
  }

  async #query(sql: string, params: unknown[]): Promise<pg.QueryResult> {
    try {
      return await this.#pool.query(sql, params);
    } catch (e) {
      throw stateUnavailable(e);
    }
  }
}
