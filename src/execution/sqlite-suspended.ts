import { scrubSecretsIn } from '../shared/secrets.js';
import { migrate, Pruner, type Db, type Migration, type RetentionRule } from '../storage/index.js';
import type { ChatMessage } from '../llm/types.js';
import type { SuspendedExecution, SuspendedExecutionStore } from './suspended.js';

/**
 * Suspended executions in the data dir's SQLite database: one row per execution, one per pending
 * tool call (the follow-up finds its execution by a call id). Expired rows are deleted by the
 * storage Pruner (ADR 0019), in small batches; until then, reads ignore them.
 */
export const SUSPENDED_MIGRATIONS: readonly Migration[] = [
  {
    id: 'execution-001-suspended',
    sql: `
      CREATE TABLE suspended_executions (
        id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        principal TEXT,
        transcript TEXT NOT NULL,
        pending_call_ids TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      );
      CREATE INDEX suspended_executions_expires ON suspended_executions (expires_at);
      CREATE TABLE suspended_tool_calls (
        call_id TEXT PRIMARY KEY,
        execution_id TEXT NOT NULL REFERENCES suspended_executions (id) ON DELETE CASCADE
      );
      CREATE INDEX suspended_tool_calls_execution ON suspended_tool_calls (execution_id);
    `,
  },
];

interface Row {
  id: string;
  agent: string;
  principal: string | null;
  transcript: string;
  pending_call_ids: string;
  expires_at: number;
}

function fromRow(r: Row | undefined, now: number): SuspendedExecution | undefined {
  if (r === undefined || r.expires_at <= now) return undefined;
  return {
    id: r.id,
    agent: r.agent,
    ...(r.principal !== null && { principal: r.principal }),
    transcript: JSON.parse(r.transcript) as ChatMessage[],
    pending_call_ids: JSON.parse(r.pending_call_ids) as string[],
    expires_at: r.expires_at,
  };
}

/** The retention rule: rows past their expiry go, oldest first (their calls with them: ON DELETE CASCADE). */
export function suspendedRule(db: Db): RetentionRule {
  const del = db.prepare(
    'DELETE FROM suspended_executions WHERE id IN (SELECT id FROM suspended_executions WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)',
  );
  return {
    name: 'suspended_executions',
    prune(limit) {
      const n = del.run(Date.now(), limit).changes;
      return { deleted: n, more: n >= limit };
    },
  };
}

export class SqliteSuspendedStore implements SuspendedExecutionStore {
  readonly ttlMs: number;
  readonly #db: Db;
  readonly #pruner: Pruner;
  readonly #insert;
  readonly #insertCall;
  readonly #deleteCalls;
  readonly #get;
  readonly #byCall;
  readonly #delete;

  constructor(db: Db, opts: { ttlMs: number; pruneIntervalMs?: number; onError?: (e: unknown) => void }) {
    this.#db = db;
    this.ttlMs = opts.ttlMs;
    migrate(db, SUSPENDED_MIGRATIONS);
    this.#insert = db.prepare(
      'INSERT OR REPLACE INTO suspended_executions (id, agent, principal, transcript, pending_call_ids, expires_at) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.#insertCall = db.prepare('INSERT OR REPLACE INTO suspended_tool_calls (call_id, execution_id) VALUES (?, ?)');
    this.#deleteCalls = db.prepare('DELETE FROM suspended_tool_calls WHERE execution_id = ?');
    this.#get = db.prepare('SELECT * FROM suspended_executions WHERE id = ?');
    this.#byCall = db.prepare(
      'SELECT e.* FROM suspended_tool_calls c JOIN suspended_executions e ON e.id = c.execution_id WHERE c.call_id = ?',
    );
    this.#delete = db.prepare('DELETE FROM suspended_executions WHERE id = ?');
    this.#pruner = new Pruner(db, {
      intervalMs: opts.pruneIntervalMs ?? 60_000,
      ...(opts.onError && { onError: opts.onError }),
    })
      .add(suspendedRule(db))
      .start();
  }

  save(s: SuspendedExecution): Promise<void> {
    // Provider and tool text: scrubbed of the configured secrets before it is stored (ADR 0017).
    const clean = scrubSecretsIn(s);
    this.#db.transaction(() => {
      // INSERT OR REPLACE of the parent would cascade-delete its calls anyway; explicit is clearer.
      this.#deleteCalls.run(clean.id);
      this.#insert.run(
        clean.id,
        clean.agent,
        clean.principal ?? null,
        JSON.stringify(clean.transcript),
        JSON.stringify(clean.pending_call_ids),
        clean.expires_at,
      );
      for (const c of clean.pending_call_ids) this.#insertCall.run(c, clean.id);
    })();
    return Promise.resolve();
  }

  get(id: string): Promise<SuspendedExecution | undefined> {
    return Promise.resolve(fromRow(this.#get.get(id) as Row | undefined, Date.now()));
  }

  findByCallId(callId: string): Promise<SuspendedExecution | undefined> {
    return Promise.resolve(fromRow(this.#byCall.get(callId) as Row | undefined, Date.now()));
  }

  delete(id: string): Promise<void> {
    this.#delete.run(id);
    return Promise.resolve();
  }

  /** Deletes the expired rows now (tests). */
  prune(): Record<string, number> {
    return this.#pruner.runSync();
  }

  close(): void {
    this.#pruner.close();
  }
}
