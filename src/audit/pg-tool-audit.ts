/**
 * The tool audit of a cluster, in PostgreSQL (ADR 0043): the single node's
 * `tool_audit` (src/audit/sqlite-tool-audit.ts) in the cluster schema, shared by every node: each call is
 * recorded once, by the node that ran it (`node` column), and GET /api/v1/tools/audit answers the
 * same on every node. Same columns as SQLite's plus `node`; the filters are written once
 * (`auditWhere`, `auditOrder`), and one suite runs against both stores
 * (test/observability/pg-events.test.ts). Writes are batched off the call path (TurnBatcher: bounded,
 * oldest dropped and counted while PostgreSQL is unreachable); retention (`[tool_audit]`) is
 * applied by one node at a time.
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
} from '../storage/pg/index.js';
import {
  AUDIT_COLUMNS,
  auditOfRow,
  auditOrder,
  auditValues,
  auditWhere,
  type ToolAuditQuery,
  type StoredAuditRecord,
  type ToolAuditLog,
  type ToolAuditRecord,
} from './tool-audit.js';

/** SQLite's tools-001 and tools-002 in one step (the table and its principal column), plus `node`. */
const createToolAudit = (s: string) => `
      CREATE TABLE ${s}.tool_audit (
        id              bigserial PRIMARY KEY,
        time            bigint NOT NULL,
        agent           text NOT NULL,
        execution_id    text,
        conversation_id text,
        server          text NOT NULL,
        tool            text NOT NULL,
        args_digest     text NOT NULL,
        outcome         text NOT NULL,
        error           text,
        duration_us     bigint NOT NULL,
        fuel_used       bigint NOT NULL,
        memory_bytes    bigint NOT NULL,
        input_bytes     bigint NOT NULL,
        output_bytes    bigint NOT NULL,
        principal       text,
        node            text NOT NULL
      );
      CREATE INDEX tool_audit_time ON ${s}.tool_audit (time);
      CREATE INDEX tool_audit_agent ON ${s}.tool_audit (agent, id);
      CREATE INDEX tool_audit_tool ON ${s}.tool_audit (tool, id);
      CREATE INDEX tool_audit_conversation ON ${s}.tool_audit (conversation_id, id) WHERE conversation_id IS NOT NULL;
      CREATE INDEX tool_audit_principal ON ${s}.tool_audit (principal, id) WHERE principal IS NOT NULL;
    `;

const MIGRATIONS: readonly PgMigration[] = [{ id: 'cluster-tool-audit-001', sql: createToolAudit }];

/** The PostgreSQL array type of each of AUDIT_COLUMNS (for the unnest of a batch). */
const ARRAY_TYPE: Record<(typeof AUDIT_COLUMNS)[number], string> = {
  time: 'bigint[]',
  agent: 'text[]',
  execution_id: 'text[]',
  conversation_id: 'text[]',
  server: 'text[]',
  tool: 'text[]',
  args_digest: 'text[]',
  outcome: 'text[]',
  error: 'text[]',
  duration_us: 'bigint[]',
  fuel_used: 'bigint[]',
  memory_bytes: 'bigint[]',
  input_bytes: 'bigint[]',
  output_bytes: 'bigint[]',
  principal: 'text[]',
};

export interface PgToolAuditOptions extends PgBatchTuning {
  pool: pg.Pool;
  /** The cluster schema (`[cluster.state] schema`); migrated by `PgToolAudit.migrate`. */
  schema: string;
  /** This node's name: the `node` column of the calls it ran. */
  node: string;
  /** Records older than this are deleted (default 30 days). */
  retentionMs?: number;
  /** At most this many records are kept, cluster-wide (default 1,000,000). */
  maxRows?: number;
  /** How often retention runs (default 60 s; also after every max_rows / 10 records written here). */
  sweepIntervalMs?: number;
}

export class PgToolAudit implements ToolAuditLog {
  readonly #o: PgToolAuditOptions;
  readonly #s: string;
  readonly #log: PgLogTable<ToolAuditRecord>;
  readonly #insert: string;

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  constructor(opts: PgToolAuditOptions) {
    this.#o = opts;
    this.#s = quotedSchema(opts.schema);
    const n = AUDIT_COLUMNS.length;
    this.#insert = `INSERT INTO ${this.#s}.tool_audit (${AUDIT_COLUMNS.join(', ')}, node)
      SELECT ${AUDIT_COLUMNS.join(', ')}, $${n + 1} FROM unnest(${AUDIT_COLUMNS.map((c, i) => `$${i + 1}::${ARRAY_TYPE[c]}`).join(', ')}) WITH ORDINALITY AS u(${AUDIT_COLUMNS.join(', ')}, ord) ORDER BY ord`;
    this.#log = new PgLogTable<ToolAuditRecord>({
      ...opts,
      schema: this.#s,
      table: 'tool_audit',
      timeColumn: 'time',
      retentionMs: opts.retentionMs ?? 30 * 24 * 3_600_000,
      maxRows: opts.maxRows ?? 1_000_000,
      write: (batch) => this.#write(batch),
    });
  }

  /** Records dropped since start (the buffer bound, or a batch PostgreSQL refused). */
  get dropped(): number {
    return this.#log.dropped;
  }

  /** Queues a record; never blocks, never throws. */
  record(r: ToolAuditRecord): void {
    this.#log.push(r);
  }

  flush(): Promise<void> {
    return this.#log.flush();
  }

  async #write(batch: ToolAuditRecord[]): Promise<void> {
    const cols = columnsOf(batch, AUDIT_COLUMNS.length, auditValues);
    await this.#o.pool.query(this.#insert, [...cols, this.#o.node]);
  }

  async find(q: ToolAuditQuery = {}): Promise<StoredAuditRecord[]> {
    await this.#log.flush();
    const args: unknown[] = [];
    const param = (v: unknown) => `$${args.push(v)}`;
    const sql = `SELECT id, ${AUDIT_COLUMNS.join(', ')} FROM ${this.#s}.tool_audit${auditWhere(q, param, 'pg')}${auditOrder(q, param)}`;
    try {
      return (await this.#o.pool.query(sql, args)).rows.map((r) => auditOfRow(r as Record<string, unknown>));
    } catch (e) {
      throw stateUnavailable(e);
    }
  }

  /** Applies retention now, to completion unless another node is at it; resolves with the records deleted. */
  prune(): Promise<{ deleted: number; skipped: boolean }> {
    return this.#log.prune();
  }

  /** Writes what is queued (one attempt) and stops. Does not end the pool (its owner does). */
  close(): Promise<void> {
    return this.#log.close();
  }
}
