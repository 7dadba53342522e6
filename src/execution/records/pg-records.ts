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
import { ENTRY_COLUMNS, entryValues, ExecutionReads } from './record-model.js';
import type { ExecutionEntry, ExecutionLog, ExecutionRow, ExecutionStatement, ExecutionView } from './record-model.js';
import {
  listThreads,
  readFirst,
  readThread,
  type RowRunner,
  type ThreadPage,
  type ThreadQuery,
} from './thread-reads.js';

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

export class PgExecutionStore extends ExecutionReads implements ExecutionLog {
  readonly #o: PgExecutionStoreOptions;
  readonly #s: string;
  readonly #log: PgLogTable<ExecutionEntry>;

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  constructor(o: PgExecutionStoreOptions) {
    const s = quotedSchema(o.schema);
    super(`SELECT id, ${ENTRY_COLUMNS.join(', ')}, node FROM ${s}.executions`, 'pg', `${s}.executions`);
    this.#o = o;
    this.#s = s;
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
       ON CONFLICT (execution_id) DO UPDATE SET ${ENTRY_COLUMNS.filter((c) => c !== 'execution_id')
         .map((c) => `${c} = excluded.${c}`)
         .join(', ')}, node = excluded.node`,
      [...cols, this.#o.node],
    );
  }

  protected async rows({ sql, args }: ExecutionStatement): Promise<ExecutionRow[]> {
    await this.#log.flush();
    try {
      return (await this.#o.pool.query<ExecutionRow>(sql, args)).rows;
    } catch (e) {
      throw stateUnavailable(e);
    }
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

  /** The thread reads (thread-reads.ts): this dialect's placeholders, run as every read is. */
  readonly #run: RowRunner = async <R>(build: (param: (v: string | number) => string) => string): Promise<R[]> => {
    const args: (string | number)[] = [];
    const sql = build((v) => `$${args.push(v)}`);
    return (await this.rows({ sql, args })) as unknown as R[];
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
