/**
 * A single node's tool audit in its SQLite (`tool_audit`), behind `ToolAuditLog` (tool-audit.ts); a
 * cluster keeps it in its PostgreSQL (pg-tool-audit.ts). The rows are written on the audit's one
 * log-table base (log-table.ts), so auditing stays off the call's latency; `flush()` writes what is
 * queued, `close()` flushes and stops. Retention (`[tool_audit]` retention and max_rows) is applied
 * by the storage Pruner, off the call path.
 */
import type { Db, Migration } from '../storage/index.js';
import { SqliteLogTable } from './log-table.js';
import {
  AUDIT_COLUMNS,
  auditOfRow,
  auditOrder,
  auditValues,
  auditWhere,
  type StoredAuditRecord,
  type ToolAuditLog,
  type ToolAuditQuery,
  type ToolAuditRecord,
} from './tool-audit.js';

export const TOOLS_MIGRATIONS: readonly Migration[] = [
  {
    id: 'tools-001-audit',
    sql: `
      CREATE TABLE tool_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        agent TEXT NOT NULL,
        execution_id TEXT,
        conversation_id TEXT,
        server TEXT NOT NULL,
        tool TEXT NOT NULL,
        args_digest TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT,
        duration_us INTEGER NOT NULL,
        fuel_used INTEGER NOT NULL,
        memory_bytes INTEGER NOT NULL,
        input_bytes INTEGER NOT NULL,
        output_bytes INTEGER NOT NULL
      );
      CREATE INDEX tool_audit_time ON tool_audit (time);
      CREATE INDEX tool_audit_agent ON tool_audit (agent, id);
      CREATE INDEX tool_audit_tool ON tool_audit (tool, id);
      CREATE INDEX tool_audit_conversation ON tool_audit (conversation_id, id) WHERE conversation_id IS NOT NULL;
    `,
  },
  {
    // Who asked: null for rows older than this column, and for calls with no authenticated caller.
    id: 'tools-002-principal',
    sql: `
      ALTER TABLE tool_audit ADD COLUMN principal TEXT;
      CREATE INDEX tool_audit_principal ON tool_audit (principal, id) WHERE principal IS NOT NULL;
    `,
  },
];

export class ToolAuditStore implements ToolAuditLog {
  readonly #db: Db;
  readonly #log: SqliteLogTable<ToolAuditRecord>;

  /** Records older than `retentionMs` (default 30 days) and beyond `maxRows` (default 1,000,000) are deleted. */
  constructor(
    db: Db,
    opts: { onError?: (e: unknown) => void; retentionMs?: number; maxRows?: number; onFull?: () => void } = {},
  ) {
    this.#db = db;
    this.#log = new SqliteLogTable<ToolAuditRecord>(db, {
      table: 'tool_audit',
      migrations: TOOLS_MIGRATIONS,
      retentionMs: opts.retentionMs ?? 30 * 24 * 3_600_000,
      maxRows: opts.maxRows ?? 1_000_000,
      writer: () => {
        const insert = db.prepare(
          `INSERT INTO tool_audit (${AUDIT_COLUMNS.join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`,
        );
        // Positional parameters: about twice as fast to bind as named ones.
        return (batch) => {
          for (const r of batch) insert.run(...auditValues(r));
        };
      },
      ...(opts.onError && { onError: opts.onError }),
      ...(opts.onFull && { onFull: opts.onFull }),
    });
  }

  /** Records dropped because writing failed (the error goes to the caller's onError). */
  get dropped(): number {
    return this.#log.dropped;
  }

  record(r: ToolAuditRecord): void {
    this.#log.push(r);
  }

  /** Writes what is queued (this store's records and the database's other queued records), synchronously. */
  flush(): void {
    this.#log.flush();
  }

  /** Applies retention now; resolves with the records deleted. */
  prune(): Promise<number> {
    return this.#log.prune();
  }

  /** Records matching every given filter, newest first. Pending records are flushed first. */
  query(q: ToolAuditQuery = {}): StoredAuditRecord[] {
    this.flush();
    const args: (string | number)[] = [];
    const param = (v: string | number) => (args.push(v), '?');
    const sql = `SELECT * FROM tool_audit${auditWhere(q, param, 'sqlite')}${auditOrder(q, param)}`;
    return (this.#db.prepare(sql).all(...args) as Record<string, unknown>[]).map(auditOfRow);
  }

  /** ToolAuditReads: `query`, as a promise. */
  find(q: ToolAuditQuery = {}): Promise<StoredAuditRecord[]> {
    try {
      return Promise.resolve(this.query(q));
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  /** Flushes and stops accepting records. Does not close the database (its owner does). */
  close(): void {
    this.#log.close();
  }
}
