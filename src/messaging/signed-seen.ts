/**
 * The seen-set of signed deliveries (ADR 0114): which receiver has had which signed message, kept
 * for as long as the message's rows can exist (`conversation_ttl` + `retention`). A delivery whose
 * message and receiver are in it is refused before the receiver runs, so a delivered row reset to
 * pending by whoever writes the store is not delivered again. It lives in a SQLite file of its own
 * in the signing key directory (0700), not in the message store a database writer can change.
 */
import { migrate, openDatabase, type Db, type WriteFence } from '../storage/index.js';

/** Where a signed message's deliveries are remembered once delivered. */
export interface SignedSeen {
  /** Whether `receiver` has had message `id`. */
  delivered(id: string, receiver: string): boolean | Promise<boolean>;
  /** Remembers that `receiver` has had message `id`. */
  mark(id: string, receiver: string): void | Promise<void>;
  /**
   * Remembers `id` for `receiver` unless it is remembered already, in one step: true when this
   * call took it (a signed submission is accepted once, however many copies arrive at once).
   */
  claim(id: string, receiver: string): boolean | Promise<boolean>;
  /** Forgets `id` for `receiver` (a claimed submission that was then refused may be sent again). */
  release(id: string, receiver: string): void | Promise<void>;
  close?(): void;
}

const MIGRATIONS = [
  {
    id: 'signed-seen-001',
    sql: `CREATE TABLE signed_seen (
            message_id TEXT NOT NULL,
            receiver TEXT NOT NULL,
            expires_at INTEGER NOT NULL,
            PRIMARY KEY (message_id, receiver)
          ) WITHOUT ROWID;
          CREATE INDEX signed_seen_expiry ON signed_seen (expires_at);`,
  },
];

/** How many expired entries one mark deletes, so a mark stays one small write. */
const SWEEP = 64;

export class SqliteSignedSeen implements SignedSeen {
  readonly #db: Db;
  readonly #ttlMs: number;
  readonly #now: () => number;
  readonly #s;
  readonly #fence: WriteFence | undefined;

  /**
   * `dir`: the signing key directory; `ttlMs`: how long an entry is kept; `fence`: the data
   * dir's, which stops this file's writes with the store's.
   */
  constructor(dir: string, opts: { ttlMs: number; now?: () => number; fence?: WriteFence }) {
    this.#db = openDatabase(dir, 'seen.db');
    this.#fence = opts.fence;
    this.#fence?.attach(this.#db);
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now ?? Date.now;
    migrate(this.#db, MIGRATIONS);
    this.#s = {
      has: this.#db.prepare<[string, string, number], { one: number }>(
        'SELECT 1 AS one FROM signed_seen WHERE message_id = ? AND receiver = ? AND expires_at > ?',
      ),
      mark: this.#db.prepare(
        'INSERT INTO signed_seen (message_id, receiver, expires_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at',
      ),
      claim: this.#db.prepare(
        `INSERT INTO signed_seen (message_id, receiver, expires_at) VALUES (?, ?, ?)
           ON CONFLICT DO UPDATE SET expires_at = excluded.expires_at WHERE signed_seen.expires_at <= ?`,
      ),
      release: this.#db.prepare('DELETE FROM signed_seen WHERE message_id = ? AND receiver = ?'),
      sweep: this.#db.prepare(
        `DELETE FROM signed_seen WHERE (message_id, receiver) IN
           (SELECT message_id, receiver FROM signed_seen WHERE expires_at <= ? LIMIT ${SWEEP})`,
      ),
    };
  }

  delivered(id: string, receiver: string): boolean {
    return this.#s.has.get(id, receiver.toLowerCase(), this.#now()) !== undefined;
  }

  mark(id: string, receiver: string): void {
    const now = this.#now();
    this.#s.mark.run(id, receiver.toLowerCase(), now + this.#ttlMs);
    this.#s.sweep.run(now);
  }

  claim(id: string, receiver: string): boolean {
    const now = this.#now();
    return this.#s.claim.run(id, receiver.toLowerCase(), now + this.#ttlMs, now).changes === 1;
  }

  release(id: string, receiver: string): void {
    this.#s.release.run(id, receiver.toLowerCase());
  }

  close(): void {
    this.#fence?.detach(this.#db);
    this.#db.close();
  }
}
