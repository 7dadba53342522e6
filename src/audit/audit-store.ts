/**
 * The audit trail: one row per state-changing operation (who, from where, what, on which target,
 * with what outcome), kept in the data dir's SQLite database (`audit_log`) and optionally appended
 * to a JSON-lines file. Rows are queued and written at the end of the event-loop turn, in the
 * database's one transaction of that turn (src/storage/turn-writer.ts, shared with the tool audit
 * and the agent events), so recording stays off the request's latency; retention by age and
 * count is the storage Pruner's, in small batches off the request path.
 *
 * Rows never hold request or response bodies: only the fields below, every text scrubbed of the
 * configured secrets (ADR 0017), `details` a small JSON object (at most MAX_DETAILS_BYTES).
 */
import { agentScopeSql, readScopeOf, type Principal } from '../auth/index.js';
import type { Db, Migration } from '../storage/index.js';
import { scrubSecrets } from '../shared/secrets.js';
import { AGENT_TARGETS } from './actions.js';
import { JsonlAppender } from './jsonl.js';
import { SqliteLogTable } from './log-table.js';

export const AUDIT_OUTCOMES = ['ok', 'denied', 'error'] as const;
/** `denied`: 401 or 403; `error`: any other status from 400 up; `ok`: the rest. */
export type AuditOutcome = (typeof AUDIT_OUTCOMES)[number];

/** What a caller records (an HTTP request through the recorder, or a non-HTTP event through `record`). */
export interface AuditEntry {
  /** ms since the epoch; now when absent. */
  time?: number;
  /** The authenticated caller (`req.principal`); null before authentication, or for a 401. */
  principal?: { id: string; kind: string } | null;
  /** The client's address (the socket's, or the proxy's client address when trusted). */
  source?: string | null;
  /** The server's id of the request. */
  request_id?: string | null;
  /** The client's own id of the request (its `X-Request-Id`), when it sent one. */
  client_request_id?: string | null;
  /** What was done: `agent.deploy`, `memory.import`, `key.create`... (src/audit/actions.ts). */
  action: string;
  method?: string | null;
  /** The route as registered (`/api/v1/agents/:name`), not the raw URL. */
  route?: string | null;
  /** What it was done to: an agent name, a tool server, a memory scope, a dead-letter id... */
  target?: string | null;
  outcome: AuditOutcome;
  status?: number | null;
  /** Small, never a body and never a secret: an error code, a scope, an API flavour. */
  details?: Record<string, unknown> | null;
}

/** A stored row, as GET /api/v1/audit and the JSON-lines file show it. */
export interface AuditRecord {
  id: number;
  /** ISO 8601. */
  time: string;
  principal: string | null;
  principal_kind: string | null;
  source: string | null;
  request_id: string | null;
  client_request_id: string | null;
  action: string;
  method: string | null;
  route: string | null;
  target: string | null;
  outcome: AuditOutcome;
  status: number | null;
  details: Record<string, unknown> | null;
}

/** Where records go: the store, or a test's array. */
export interface AuditSink {
  record(e: AuditEntry): void;
}

export interface AuditQuery {
  /** Principal id (`key:ci`); `-` (or "none") for requests without one. */
  principal?: string;
  /** Exact action, or a prefix ending in `.*` (`memory.*`). */
  action?: string;
  outcome?: AuditOutcome;
  target?: string;
  /** ms since the epoch; `until` is exclusive. */
  since?: number;
  until?: number;
  /** Default 100, at most 1,000. */
  limit?: number;
  offset?: number;
}

export const AUDIT_MIGRATIONS: readonly Migration[] = [
  {
    id: 'audit-001-log',
    sql: `
      CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        principal TEXT,
        principal_kind TEXT,
        source TEXT,
        request_id TEXT,
        action TEXT NOT NULL,
        method TEXT,
        route TEXT,
        target TEXT,
        outcome TEXT NOT NULL,
        status INTEGER,
        details TEXT
      );
      CREATE INDEX audit_log_time ON audit_log (time);
      CREATE INDEX audit_log_principal ON audit_log (principal, id);
      CREATE INDEX audit_log_action ON audit_log (action, id);
      CREATE INDEX audit_log_target ON audit_log (target, id) WHERE target IS NOT NULL;
    `,
  },
  { id: 'audit-002-client-request-id', sql: 'ALTER TABLE audit_log ADD COLUMN client_request_id TEXT' },
];

/** Serialized `details` above this size are replaced by `{"truncated": true}`: a row stays small. */
export const MAX_DETAILS_BYTES = 2048;
/** Longest text kept in a column (target, request id, source...): longer is cut. */
const MAX_TEXT = 512;

interface Row {
  id: number;
  time: number;
  principal: string | null;
  principal_kind: string | null;
  source: string | null;
  request_id: string | null;
  client_request_id: string | null;
  action: string;
  method: string | null;
  route: string | null;
  target: string | null;
  outcome: AuditOutcome;
  status: number | null;
  details: string | null;
}

type Pending = Omit<Row, 'id'>;

function text(v: string | null | undefined): string | null {
  if (v === undefined || v === null) return null;
  // Every text may come from the caller (a path parameter, an x-request-id header): scrubbed.
  const s = scrubSecrets(v);
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT)}…` : s;
}

function detailsText(d: Record<string, unknown> | null | undefined): string | null {
  if (d === undefined || d === null) return null;
  let s: string;
  try {
    s = JSON.stringify(d);
  } catch {
    return '{"unserializable":true}';
  }
  if (s === '{}') return null;
  s = scrubSecrets(s);
  return Buffer.byteLength(s) > MAX_DETAILS_BYTES ? '{"truncated":true}' : s;
}

function toRecord(r: Row): AuditRecord {
  return {
    id: r.id,
    time: new Date(r.time).toISOString(),
    principal: r.principal,
    principal_kind: r.principal_kind,
    source: r.source,
    request_id: r.request_id,
    client_request_id: r.client_request_id,
    action: r.action,
    method: r.method,
    route: r.route,
    target: r.target,
    outcome: r.outcome,
    status: r.status,
    details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>),
  };
}

export interface AuditStoreOptions {
  onError?: (e: unknown) => void;
  /** Rows older than this go (default 90 days). */
  retentionMs?: number;
  /** At most this many rows are kept (default 1,000,000): the oldest refusals go first, then the oldest rows. */
  maxRows?: number;
  /** Every row is also appended to this file as one JSON line (created 0600). */
  jsonl?: string;
  /** A row found the write queue full (back-pressure: the queue was written on the caller's turn). */
  onFull?: () => void;
}

export class AuditStore implements AuditSink {
  readonly #db: Db;
  readonly #log: SqliteLogTable<Pending, number[]>;
  readonly #jsonl: JsonlAppender | undefined;

  constructor(db: Db, opts: AuditStoreOptions = {}) {
    this.#db = db;
    const onError = opts.onError ?? (() => {});
    this.#log = new SqliteLogTable<Pending, number[]>(db, {
      table: 'audit_log',
      migrations: AUDIT_MIGRATIONS,
      retentionMs: opts.retentionMs ?? 90 * 24 * 3_600_000,
      maxRows: opts.maxRows ?? 1_000_000,
      // Refusals go first: a caller refused again and again cannot push the rows of what was
      // done out of a trail kept to max_rows, only older refusals.
      evictFirst: "outcome = 'denied'",
      writer: () => {
        const insert = db.prepare(
          `INSERT INTO audit_log (time, principal, principal_kind, source, request_id, client_request_id, action, method, route, target, outcome, status, details)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        );
        // Positional parameters: about twice as fast to bind as named ones.
        return (batch) => {
          const ids: number[] = [];
          for (const r of batch)
            ids.push(
              Number(
                insert.run(
                  r.time,
                  r.principal,
                  r.principal_kind,
                  r.source,
                  r.request_id,
                  r.client_request_id,
                  r.action,
                  r.method,
                  r.route,
                  r.target,
                  r.outcome,
                  r.status,
                  r.details,
                ).lastInsertRowid,
              ),
            );
          return ids;
        };
      },
      committed: (ids, batch) => this.#written(batch, ids),
      onError,
      ...(opts.onFull && { onFull: opts.onFull }),
    });
    // Opened now, so a path that cannot be written stops the start with an error naming it.
    this.#jsonl = opts.jsonl === undefined ? undefined : new JsonlAppender(opts.jsonl, onError);
  }

  record(e: AuditEntry): void {
    if (this.#log.closed) return;
    // Scrubbed and serialized now: the caller's objects may change after this returns.
    this.#log.push({
      time: e.time ?? Date.now(),
      principal: text(e.principal?.id),
      principal_kind: e.principal ? text(e.principal.kind) : null,
      source: text(e.source),
      request_id: text(e.request_id),
      client_request_id: text(e.client_request_id),
      action: text(e.action) ?? 'unknown',
      method: e.method ?? null,
      route: text(e.route),
      target: text(e.target),
      outcome: e.outcome,
      status: e.status ?? null,
      details: detailsText(e.details),
    });
  }

  /** Rows dropped because writing failed (the error goes to onError). */
  get dropped(): number {
    return this.#log.dropped;
  }

  /** Writes what is queued (this store's rows and the database's other queued records), synchronously. */
  flush(): void {
    this.#log.flush();
  }

  /** A batch committed: its JSON lines. */
  #written(batch: Pending[], ids: number[]): void {
    if (this.#jsonl)
      this.#jsonl.write(batch.map((r, i) => `${JSON.stringify(toRecord({ ...r, id: ids[i]! }))}\n`).join(''));
  }

  /** Applies retention now; resolves with the rows deleted. */
  prune(): Promise<number> {
    return this.#log.prune();
  }

  /**
   * Rows matching every given filter, newest first. Pending rows are flushed first. With a
   * `reader` limited to some agents, rows whose target is an agent outside them are left out in
   * the query (src/auth/scope-read.ts), so pages stay full.
   */
  query(q: AuditQuery = {}, reader?: Pick<Principal, 'scope'>): AuditRecord[] {
    this.flush();
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    const globs = readScopeOf(reader);
    if (globs !== undefined) {
      let n = 0;
      const param = (v: string): string => {
        params[`scope_${n}`] = v;
        return `@scope_${n++}`;
      };
      for (const { action, prefix } of AGENT_TARGETS) {
        const name = prefix === '' ? 'target' : `substr(target, ${prefix.length + 1})`;
        const about =
          prefix === ''
            ? `action = ${param(action)}`
            : `action = ${param(action)} AND substr(target, 1, ${prefix.length}) = ${param(prefix)}`;
        where.push(`NOT (${about} AND target IS NOT NULL AND NOT ${agentScopeSql('sqlite', name, globs, param)})`);
      }
    }
    if (q.principal !== undefined) {
      if (q.principal === '-' || q.principal === 'none') where.push('principal IS NULL');
      else {
        where.push('principal = @principal');
        params.principal = q.principal;
      }
    }
    if (q.action !== undefined) {
      if (q.action.endsWith('.*')) {
        where.push("action LIKE @action_prefix ESCAPE '\\'");
        params.action_prefix = `${q.action.slice(0, -1).replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      } else {
        where.push('action = @action');
        params.action = q.action;
      }
    }
    if (q.outcome !== undefined) {
      where.push('outcome = @outcome');
      params.outcome = q.outcome;
    }
    if (q.target !== undefined) {
      where.push('target = @target');
      params.target = q.target;
    }
    if (q.since !== undefined) {
      where.push('time >= @since');
      params.since = q.since;
    }
    if (q.until !== undefined) {
      where.push('time < @until');
      params.until = q.until;
    }
    params.limit = Math.min(1000, Math.max(1, Math.floor(q.limit ?? 100)));
    params.offset = Math.max(0, Math.floor(q.offset ?? 0));
    const sql = `SELECT * FROM audit_log ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit OFFSET @offset`;
    return (this.#db.prepare(sql).all(params) as Row[]).map(toRecord);
  }

  /** Flushes, stops accepting rows and closes the JSON-lines file. Does not close the database (its owner does). */
  async close(): Promise<void> {
    if (this.#log.closed) return;
    this.#log.close();
    await this.#jsonl?.close();
  }
}

/** Keeps entries in memory: for tests and for callers without a database. */
export class MemoryAuditSink implements AuditSink {
  readonly entries: AuditEntry[] = [];
  constructor(readonly max = 10_000) {}
  record(e: AuditEntry): void {
    this.entries.push(e);
    if (this.entries.length > this.max) this.entries.splice(0, this.entries.length - this.max);
  }
}
