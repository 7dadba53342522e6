/**
 * Execution records of a cluster, in PostgreSQL: the single node's `executions` table in the
 * cluster schema, shared by every node (plus `node`, the node that ran it), so an execution is
 * found from any node. Writes never wait: what a turn queued goes in one multi-row INSERT
 * (PgLogTable's TurnBatcher, bounded; while PostgreSQL is unreachable the records wait, the oldest
 * dropped and counted beyond the bound). Retention is applied by one node at a time.
 */
import type pg from 'pg';
import {
  columnsOf,
  migrateSchema,
  PgLogTable,
  quotedSchema,
  stateUnavailable,
  type PgBatchTuning,
  type PgMigration,
} from '../../storage/pg/index.js';
import { agentScopeSql } from '../../auth/scope-read.js';
import { listThreads, readFirst, readThread, type RowRunner, type ThreadPage, type ThreadQuery } from './threads.js';
import {
  ENTRY_COLUMNS,
  entryValues,
  executionSql,
  pageOf,
  summaryOf,
  viewOfRow,
  type ExecutionEntry,
  type ExecutionLog,
  type ExecutionPage,
  type ExecutionQuery,
  type ExecutionRow,
  type ExecutionSummary,
  type ExecutionView,
} from './model.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-executions-001',
    sql: (s) => `
      CREATE TABLE ${s}.executions (
        id              bigserial PRIMARY KEY,
        execution_id    text NOT NULL UNIQUE,
        ts              bigint NOT NULL,
        ended           bigint NOT NULL,
        agent           text NOT NULL,
        version         text NOT NULL,
        principal       text,
        conversation_id text,
        message_id      text,
        status          text NOT NULL,
        error_code      text,
        duration_ms     double precision NOT NULL,
        input_tokens    bigint NOT NULL,
        output_tokens   bigint NOT NULL,
        trace_id        text,
        detail          text NOT NULL,
        node            text NOT NULL
      );
      CREATE INDEX executions_ts ON ${s}.executions (ts);
      CREATE INDEX executions_agent ON ${s}.executions (agent, id);
      CREATE INDEX executions_conversation ON ${s}.executions (conversation_id, id);
      CREATE INDEX executions_trace ON ${s}.executions (trace_id);
    `,
  },
];

/** The PostgreSQL type of each of ENTRY_COLUMNS, for the unnest of a batch. */
const TYPES = [
  'text',
  'bigint',
  'bigint',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'text',
  'double precision',
  'bigint',
  'bigint',
  'text',
  'text',
] as const;

export interface PgExecutionStoreOptions extends PgBatchTuning {
  pool: pg.Pool;
  /** The cluster schema (`[cluster.state] schema`); migrated by `PgExecutionStore.migrate`. */
  schema: string;
  /** This node's name: the `node` column of what it records. */
  node: string;
  retentionMs: number;
  maxRows: number;
  sweepIntervalMs?: number;
}

export class PgExecutionStore implements ExecutionLog {
  readonly #o: PgExecutionStoreOptions;
  readonly #s: string;
  readonly #log: PgLogTable<ExecutionEntry>;
  readonly #select: string;

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  constructor(o: PgExecutionStoreOptions) {
    this.#o = o;
    this.#s = quotedSchema(o.schema);
    this.#select = `SELECT id, ${ENTRY_COLUMNS.join(', ')}, node FROM ${this.#s}.executions`;
    this.#log = new PgLogTable<ExecutionEntry>({
      ...o,
      schema: this.#s,
      table: 'executions',
      timeColumn: 'ts',
      write: (batch) => this.#write(batch),
    });
  }

  get dropped(): number {
    return this.#log.dropped;
  }

  record(e: ExecutionEntry): void {
    this.#log.push(e);
  }

  /** Writes what is queued (never rejects). */
  flush(): Promise<void> {
    return this.#log.flush();
  }

  async #write(batch: ExecutionEntry[]): Promise<void> {
    const cols = columnsOf(batch, ENTRY_COLUMNS.length, entryValues);
    const n = ENTRY_COLUMNS.length;
    await this.#o.pool.query(
      `INSERT INTO ${this.#s}.executions (${ENTRY_COLUMNS.join(', ')}, node)
       SELECT *, $${n + 1} FROM unnest(${TYPES.map((t, i) => `$${i + 1}::${t}[]`).join(', ')})
       ON CONFLICT (execution_id) DO NOTHING`,
      [...cols, this.#o.node],
    );
  }

  async #rows(sql: string, args: unknown[]): Promise<ExecutionRow[]> {
    await this.#log.flush();
    try {
      return (await this.#o.pool.query<ExecutionRow>(sql, args)).rows;
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  async list(q: ExecutionQuery): Promise<ExecutionPage> {
    const args: unknown[] = [];
    const param = (v: unknown) => `$${args.push(v)}`;
    const limit = q.limit ?? 50;
    return pageOf(await this.#rows(`${this.#select}${executionSql({ ...q, limit }, param, 'pg')}`, args), limit);
  }

  async get(id: string, agents?: readonly string[]): Promise<ExecutionView | undefined> {
    const args: unknown[] = [id];
    const param = (v: unknown) => `$${args.push(v)}`;
    const scope = agents === undefined ? '' : ` AND ${agentScopeSql('pg', 'agent', agents, param)}`;
    const row = (await this.#rows(`${this.#select} WHERE execution_id = $1${scope}`, args))[0];
    return row && viewOfRow(row);
  }

  async byTrace(traceId: string, agents?: readonly string[]): Promise<ExecutionSummary[]> {
    const args: unknown[] = [traceId];
    const param = (v: unknown) => `$${args.push(v)}`;
    const scope = agents === undefined ? '' : ` AND ${agentScopeSql('pg', 'agent', agents, param)}`;
    const rows = await this.#rows(`${this.#select} WHERE trace_id = $1${scope} ORDER BY id LIMIT 1000`, args);
    return rows.map((r) => summaryOf(viewOfRow(r)));
  }

  threads(q: ThreadQuery): Promise<ThreadPage> {
    return listThreads(this.#run, `${this.#s}.executions`, q);
  }

  thread(agent: string, conversation: string, limit?: number): Promise<ExecutionView[]> {
    return readThread(this.#run, `${this.#s}.executions`, agent, conversation, limit);
  }

  firstOfThread(agent: string, conversation: string): Promise<ExecutionView | undefined> {
    return readFirst(this.#run, `${this.#s}.executions`, agent, conversation);
  }

  readonly #run: RowRunner = async <R>(build: (param: (v: string | number) => string) => string): Promise<R[]> => {
    const args: (string | number)[] = [];
    const sql = build((v) => `$${args.push(v)}`);
    await this.#log.flush();
    try {
      return (await this.#o.pool.query(sql, args)).rows as R[];
    } catch (e) {
      throw stateUnavailable(e);
    }
  };

  /** Applies retention now (tests); resolves with the rows deleted. */
  prune(): Promise<{ deleted: number; skipped: boolean }> {
    return this.#log.prune();
  }

  /** Writes what is queued (one attempt) and stops. Does not end the pool (its owner does). */
  close(): Promise<void> {
    return this.#log.close();
  }
}
