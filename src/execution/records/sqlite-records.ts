/**
 * Execution records in the node's SQLite (caxton.db): written through the database's one turn
 * writer (src/storage/turn-writer.ts) with the audit trail and the agent events, so recording
 * costs the execution an array push; retention by the storage Pruner, like the events.
 */
import { Pruner, tableRule, writeLane, type Db, type Migration, type WriteLane } from '../../storage/index.js';
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

export const EXECUTIONS_MIGRATIONS: readonly Migration[] = [
  {
    id: 'executions-001-create',
    sql: `
      CREATE TABLE executions (
        id              INTEGER PRIMARY KEY AUTOINCREMENT,
        execution_id    TEXT NOT NULL UNIQUE,
        ts              INTEGER NOT NULL,
        ended           INTEGER NOT NULL,
        agent           TEXT NOT NULL,
        version         TEXT NOT NULL,
        principal       TEXT,
        conversation_id TEXT,
        message_id      TEXT,
        status          TEXT NOT NULL,
        error_code      TEXT,
        duration_ms     REAL NOT NULL,
        input_tokens    INTEGER NOT NULL,
        output_tokens   INTEGER NOT NULL,
        trace_id        TEXT,
        detail          TEXT NOT NULL
      );
      CREATE INDEX executions_ts ON executions (ts);
      CREATE INDEX executions_agent ON executions (agent, id);
      CREATE INDEX executions_conversation ON executions (conversation_id, id);
      CREATE INDEX executions_trace ON executions (trace_id);
    `,
  },
  {
    // ADR 0082: a trace id this node starts begins with its second (ADR 0077), so keyed by that
    // prefix and then the row id every new row goes to the end of the index, where one commit
    // writes one page for all its rows; keyed by the whole id, each row landed on a random page
    // of the current second's range. The whole id is in the entry too, so a trace read filters
    // its second's entries in the index without reading the table.
    id: 'executions-002-trace-by-second',
    sql: `
      DROP INDEX executions_trace;
      CREATE INDEX executions_trace_second ON executions (substr(trace_id, 1, 8), id, trace_id);
    `,
  },
  {
    // ADR 0092: every read of these two indexes names a conversation or a trace (`= ?`, `IN (…)`,
    // `IS NOT NULL`), so an execution without one (an invoke that names no conversation, a node
    // that traces nothing) has no entry to keep in them, and its insert writes two B-trees fewer.
    // SQLite uses a partial index whenever the query's terms imply its WHERE: the same plans.
    id: 'executions-003-keys-only-where-set',
    sql: `
      DROP INDEX executions_conversation;
      CREATE INDEX executions_in_conversation ON executions (conversation_id, id) WHERE conversation_id IS NOT NULL;
      DROP INDEX executions_trace_second;
      CREATE INDEX executions_traced ON executions (substr(trace_id, 1, 8), id, trace_id) WHERE trace_id IS NOT NULL;
    `,
  },
];

export interface SqliteExecutionStoreOptions {
  db: Db;
  retentionMs: number;
  maxRows: number;
  sweepIntervalMs?: number;
  onError?: (e: unknown) => void;
  /** A record found the write queue full (back-pressure: the queue was written on the caller's turn). */
  onFull?: () => void;
}

export class SqliteExecutionStore extends ExecutionReads implements ExecutionLog {
  readonly #db: Db;
  readonly #lane: WriteLane<ExecutionEntry>;
  readonly #pruner: Pruner;
  readonly #maxRows: number;
  #sinceSweep = 0;
  #closed = false;

  /** Opens the store on a migrated `db` (EXECUTIONS_MIGRATIONS). */
  constructor(o: SqliteExecutionStoreOptions) {
    super(`SELECT id, ${ENTRY_COLUMNS.join(', ')} FROM executions`, 'sqlite', 'executions');
    this.#db = o.db;
    this.#maxRows = o.maxRows;
    const insert = o.db.prepare(
      // A durable run that resumed (a retried or redelivered message, a decision on an approval)
      // is recorded again under the same id when it ends: its latest outcome replaces the earlier.
      `INSERT OR REPLACE INTO executions (${ENTRY_COLUMNS.join(', ')}) VALUES (${ENTRY_COLUMNS.map(() => '?').join(', ')})`,
    );
    this.#lane = writeLane(o.db, {
      write: (batch: ExecutionEntry[]) => {
        for (const e of batch) insert.run(entryValues(e));
        return batch.length;
      },
      committed: (n) => this.#written(n),
      ...(o.onError && { onError: o.onError }),
      ...(o.onFull && { onFull: o.onFull }),
    });
    this.#pruner = new Pruner(o.db, {
      intervalMs: o.sweepIntervalMs ?? 60_000,
      ...(o.onError && { onError: o.onError }),
    }).add(
      tableRule(o.db, {
        name: 'executions',
        table: 'executions',
        timeColumn: 'ts',
        time: 'ms',
        retentionMs: o.retentionMs,
        maxRows: o.maxRows,
      }),
    );
    this.#pruner.runSync();
    this.#pruner.start();
  }

  get dropped(): number {
    return this.#lane.dropped;
  }

  record(e: ExecutionEntry): void {
    if (!this.#closed) this.#lane.push(e);
  }

  #written(n: number): void {
    this.#sinceSweep += n;
    if (this.#sinceSweep >= Math.max(100, Math.floor(this.#maxRows / 10))) {
      this.#sinceSweep = 0;
      if (this.#pruner.step('executions').more) this.#pruner.poke();
    }
  }

  /** Writes what is queued, synchronously. */
  flush(): void {
    this.#lane.flush();
  }

  /** Applies retention to completion (tests); returns the rows deleted. */
  sweep(): number {
    this.#lane.flush();
    return this.#pruner.runSync().executions ?? 0;
  }

  protected rows({ sql, args }: ExecutionStatement): ExecutionRow[] {
    this.#lane.flush();
    return this.#db.prepare(sql).all(...args) as ExecutionRow[];
  }

  threads(q: ThreadQuery): Promise<ThreadPage> {
    return listThreads(this.#run, 'executions', q);
  }

  thread(agent: string, conversation: string, limit?: number): Promise<ExecutionView[]> {
    return readThread(this.#run, 'executions', agent, conversation, limit);
  }

  firstOfThread(agent: string, conversation: string): Promise<ExecutionView | undefined> {
    return readFirst(this.#run, 'executions', agent, conversation);
  }

  /** The thread reads (thread-reads.ts): this dialect's placeholders, run as every read is. */
  readonly #run: RowRunner = async <R>(build: (param: (v: string | number) => string) => string): Promise<R[]> => {
    const args: (string | number)[] = [];
    const sql = build((v) => (args.push(v), '?'));
    return (await this.rows({ sql, args })) as unknown as R[];
  };

  close(): void {
    if (this.#closed) return;
    this.#lane.close();
    this.#closed = true;
    this.#pruner.close();
  }
}
