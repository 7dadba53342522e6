/**
 * Execution records in the node's SQLite (caxton.db): written through the database's one turn
 * writer (src/storage/turn-writer.ts) with the audit trail and the agent events, so recording
 * costs the execution an array push; retention by the storage Pruner, like the events.
 */
import { Pruner, tableRule, writeLane, type Db, type Migration, type WriteLane } from '../../storage/index.js';
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
import { agentScopeSql } from '../../auth/scope-read.js';
import { listThreads, readFirst, readThread, type RowRunner, type ThreadPage, type ThreadQuery } from './threads.js';

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

const SELECT = `SELECT id, ${ENTRY_COLUMNS.join(', ')} FROM executions`;

export class SqliteExecutionStore implements ExecutionLog {
  readonly #db: Db;
  readonly #lane: WriteLane<ExecutionEntry>;
  readonly #pruner: Pruner;
  readonly #maxRows: number;
  #sinceSweep = 0;
  #closed = false;

  /** Opens the store on a migrated `db` (EXECUTIONS_MIGRATIONS). */
  constructor(o: SqliteExecutionStoreOptions) {
    this.#db = o.db;
    this.#maxRows = o.maxRows;
    const insert = o.db.prepare(
      `INSERT OR IGNORE INTO executions (${ENTRY_COLUMNS.join(', ')}) VALUES (${ENTRY_COLUMNS.map(() => '?').join(', ')})`,
    );
    this.#lane = writeLane(o.db, {
      write: (batch: ExecutionEntry[]) => {
        for (const e of batch) insert.run(...entryValues(e));
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

  #all(sql: string, args: (string | number)[]): ExecutionRow[] {
    this.#lane.flush();
    return this.#db.prepare(sql).all(...args) as ExecutionRow[];
  }

  list(q: ExecutionQuery): Promise<ExecutionPage> {
    try {
      const args: (string | number)[] = [];
      const param = (v: string | number) => (args.push(v), '?');
      const limit = q.limit ?? 50;
      return Promise.resolve(
        pageOf(this.#all(`${SELECT}${executionSql({ ...q, limit }, param, 'sqlite')}`, args), limit),
      );
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  get(id: string, agents?: readonly string[]): Promise<ExecutionView | undefined> {
    try {
      const args: (string | number)[] = [id];
      const param = (v: string | number) => (args.push(v), '?');
      const scope = agents === undefined ? '' : ` AND ${agentScopeSql('sqlite', 'agent', agents, param)}`;
      const row = this.#all(`${SELECT} WHERE execution_id = ?${scope}`, args)[0];
      return Promise.resolve(row && viewOfRow(row));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  byTrace(traceId: string, agents?: readonly string[]): Promise<ExecutionSummary[]> {
    try {
      const args: (string | number)[] = [traceId];
      const param = (v: string | number) => (args.push(v), '?');
      const scope = agents === undefined ? '' : ` AND ${agentScopeSql('sqlite', 'agent', agents, param)}`;
      const rows = this.#all(`${SELECT} WHERE trace_id = ?${scope} ORDER BY id LIMIT 1000`, args);
      return Promise.resolve(rows.map((r) => summaryOf(viewOfRow(r))));
    } catch (e) {
      return Promise.reject(e as Error);
    }
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

  readonly #run: RowRunner = <R>(build: (param: (v: string | number) => string) => string): Promise<R[]> => {
    try {
      const args: (string | number)[] = [];
      const sql = build((v) => (args.push(v), '?'));
      this.#lane.flush();
      return Promise.resolve(this.#db.prepare(sql).all(...args) as R[]);
    } catch (e) {
      return Promise.reject(e as Error);
    }
  };

  close(): void {
    if (this.#closed) return;
    this.#lane.close();
    this.#closed = true;
    this.#pruner.close();
  }
}
