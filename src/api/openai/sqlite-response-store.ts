import { scrubSecretsIn } from '../../shared/secrets.js';
import { migrate, Pruner, tableRule, type Db, type Migration } from '../../storage/index.js';
import type { ResponseStore, StoredResponse, TranscriptMessage } from './response-store.js';

/**
 * Stored responses (POST /v1/responses, `store`) in the data dir's SQLite database, so that
 * `previous_response_id` survives a restart. Rows expire after `[execution] responses_ttl` and
 * are deleted by the storage Pruner (ADR 0019), the oldest beyond `maxRows` too; until then, reads
 * ignore expired rows. Text is scrubbed of the configured secrets before it is stored (ADR 0017).
 */
export const RESPONSE_MIGRATIONS: readonly Migration[] = [
  {
    id: 'openai-001-responses',
    sql: `
      CREATE TABLE openai_responses (
        id INTEGER PRIMARY KEY,
        response_id TEXT NOT NULL UNIQUE,
        agent TEXT NOT NULL,
        principal TEXT,
        messages TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE INDEX openai_responses_created ON openai_responses (created_at);
    `,
  },
  {
    // A background response's request, kept until its run has ended and its outcome is stored.
    id: 'openai-002-background',
    sql: 'ALTER TABLE openai_responses ADD COLUMN pending TEXT',
  },
];

/** The most rows kept whatever their age: a bound on the table when clients store every response. */
export const MAX_STORED_RESPONSES = 10_000;

interface Row {
  response_id: string;
  agent: string;
  principal: string | null;
  messages: string;
  response: string;
  created_at: number;
  pending: string | null;
}

export class SqliteResponseStore implements ResponseStore {
  readonly #ttlMs: number;
  readonly #pruner: Pruner;
  readonly #insert;
  readonly #get;
  readonly #delete;

  constructor(
    db: Db,
    opts: { ttlMs: number; maxRows?: number; pruneIntervalMs?: number; onError?: (e: unknown) => void },
  ) {
    this.#ttlMs = opts.ttlMs;
    migrate(db, RESPONSE_MIGRATIONS);
    this.#insert = db.prepare(
      'INSERT OR REPLACE INTO openai_responses (response_id, agent, principal, messages, response, created_at, pending) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.#get = db.prepare('SELECT * FROM openai_responses WHERE response_id = ?');
    this.#delete = db.prepare('DELETE FROM openai_responses WHERE response_id = ? AND principal IS ?');
    const rule = tableRule(db, {
      name: 'openai_responses',
      table: 'openai_responses',
      timeColumn: 'created_at',
      time: 'ms',
      retentionMs: opts.ttlMs,
      maxRows: opts.maxRows ?? MAX_STORED_RESPONSES,
    });
    this.#pruner = new Pruner(db, {
      intervalMs: opts.pruneIntervalMs ?? 60_000,
      ...(opts.onError && { onError: opts.onError }),
    })
      .add(rule)
      .start();
  }

  save(r: StoredResponse): void {
    const clean = scrubSecretsIn(r);
    this.#insert.run(
      clean.id,
      clean.agent,
      clean.principal,
      JSON.stringify(clean.messages),
      JSON.stringify(clean.response),
      Date.now(),
      clean.request === undefined ? null : JSON.stringify(clean.request),
    );
  }

  get(id: string, principal: string | null): StoredResponse | undefined {
    const row = this.#get.get(id) as Row | undefined;
    if (row === undefined || row.principal !== principal || row.created_at <= Date.now() - this.#ttlMs)
      return undefined;
    return {
      id: row.response_id,
      agent: row.agent,
      principal: row.principal,
      messages: JSON.parse(row.messages) as TranscriptMessage[],
      response: JSON.parse(row.response) as Record<string, unknown>,
      ...(row.pending !== null && { request: JSON.parse(row.pending) as unknown }),
    };
  }

  delete(id: string, principal: string | null): boolean {
    if (this.get(id, principal) === undefined) return false;
    this.#delete.run(id, principal);
    return true;
  }

  /** Deletes the expired rows now (tests). */
  prune(): Record<string, number> {
    return this.#pruner.runSync();
  }

  close(): void {
    this.#pruner.close();
  }
}
