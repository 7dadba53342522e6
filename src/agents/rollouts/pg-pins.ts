/**
 * Conversation pins shared by the nodes (docs/cluster.md "Agent versions"): which version of an
 * agent each conversation runs on once that agent has had a rollout. A single node keeps them in
 * its SQLite (`RolloutStore.pin`); behind a load balancer a conversation's turns reach different
 * nodes, and per-node pins let a turn on a node that never saw the conversation draw its version
 * again (a canary stage that rose since, or a rollout that ended, moved it part-way).
 *
 * - `pin` stays synchronous (the version is chosen while the executor resolves the agent): it
 *   answers from this node's cache, which `load` fills from PostgreSQL before the execution (one
 *   indexed read per execution of a conversation this node has not seen, for agents that have had
 *   a rollout only).
 * - A conversation without a pin gets it in `load`, before its first turn runs: drawn as `pin`
 *   would draw it (`draw`, by `canaryBucket`, the same on every node) and inserted, first row
 *   winning (`ON CONFLICT DO NOTHING`; a node that lost reads the winner). So two nodes taking its
 *   first turns at once, even as a canary's stage changes, run it on one version, and a later turn
 *   on another node finds the pin however soon it comes. One more round trip on a conversation's
 *   first turn. A pin made without `load` (its insert failed) is written in the background.
 * - A pin that could not be written (PostgreSQL unreachable) holds on this node only, with a
 *   warning; a read that fails draws the version as a new conversation would (never blocks the
 *   execution on the pin).
 * - Rows older than PIN_MAX_AGE_MS are deleted now and then, as in SQLite.
 */
import type pg from 'pg';
import { migrateSchema, quotedSchema, type PgMigration } from '../../storage/pg/index.js';
import { agentKey } from '../definition.js';
import { PIN_MAX_AGE_MS, type ConversationPinsPort, type StoredPin } from './rollouts.js';

const MIGRATIONS: readonly PgMigration[] = [
  {
    id: 'cluster-conversation-pins-001',
    sql: (s) => `
      CREATE TABLE ${s}.conversation_pins (
        conversation_id text NOT NULL,
        key             text NOT NULL,
        version         integer NOT NULL,
        created_at      timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (conversation_id, key)
      );
      CREATE INDEX conversation_pins_key ON ${s}.conversation_pins (key);
      CREATE INDEX conversation_pins_age ON ${s}.conversation_pins (created_at);
    `,
  },
];

/** Pins kept in memory (the most recently used); older ones are read again when needed. */
const CACHE_ENTRIES = 50_000;

export interface PgConversationPinsOptions {
  pool: pg.Pool;
  /** The cluster's schema (created if missing). */
  schema: string;
  /** A pin that could not be read or written (it then holds on this node only). */
  onError?: (e: unknown, what: 'read' | 'write') => void;
}

export class PgConversationPins implements ConversationPinsPort {
  readonly #pool: pg.Pool;
  readonly #s: string;
  readonly #onError: PgConversationPinsOptions['onError'];
  /** Agent keys whose conversations may be pinned (any node's rollout). */
  readonly #keys = new Set<string>();
  /** `key \0 conversation` → version, in order of use. */
  readonly #cache = new Map<string, number>();
  /** Reads under way, so that concurrent executions of one conversation read once. */
  readonly #loading = new Map<string, Promise<void>>();
  /** Writes under way (`settled` waits for them). */
  readonly #writing = new Set<Promise<void>>();
  #sincePrune = 0;

  private constructor(pool: pg.Pool, s: string, onError: PgConversationPinsOptions['onError']) {
    this.#pool = pool;
    this.#s = s;
    this.#onError = onError;
  }

  static migrate(pool: pg.Pool, schema: string): Promise<void> {
    return migrateSchema(pool, schema, MIGRATIONS);
  }

  /** Creates the table if missing and reads which agents have pinned conversations. */
  static async open(opts: PgConversationPinsOptions): Promise<PgConversationPins> {
    await PgConversationPins.migrate(opts.pool, opts.schema);
    const pins = new PgConversationPins(opts.pool, quotedSchema(opts.schema), opts.onError);
    // One index probe per agent (a loose index scan), not a pass over every pin as DISTINCT would make.
    const r = await opts.pool.query<{ key: string }>(
      `WITH RECURSIVE k AS (
         SELECT min(key) AS key FROM ${pins.#s}.conversation_pins
         UNION ALL
         SELECT (SELECT min(key) FROM ${pins.#s}.conversation_pins WHERE key > k.key) FROM k WHERE k.key IS NOT NULL
       ) SELECT key FROM k WHERE key IS NOT NULL`,
    );
    for (const row of r.rows) pins.#keys.add(row.key);
    return pins;
  }

  hasHistory(name: string): boolean {
    return this.#keys.has(agentKey(name));
  }

  remember(name: string): void {
    this.#keys.add(agentKey(name));
  }

  load(conversation: string, name: string, draw?: () => number | undefined): Promise<void> | undefined {
    const key = agentKey(name);
    if (!this.#keys.has(key)) return undefined;
    const k = `${key}\0${conversation}`;
    if (this.#cache.has(k)) return undefined;
    const under = this.#loading.get(k);
    if (under) return under;
    const p = this.#read(conversation, key)
      .then(async (held) => {
        if (held !== undefined) return held;
        // None yet: this turn's version is claimed before it runs (first row wins), so a node
        // taking a later turn, or the same first turn at once, reads it rather than drawing again.
        const drawn = draw?.();
        return drawn === undefined ? undefined : this.#claim(conversation, key, drawn);
      })
      .then(
        (version) => {
          if (version !== undefined && !this.#cache.has(k)) this.#remember(k, version);
        },
        (e: unknown) => {
          this.#onError?.(e, 'read');
        },
      )
      .finally(() => this.#loading.delete(k));
    this.#loading.set(k, p);
    return p;
  }

  /** Pins `version` unless the conversation has a pin already; resolves with the pin that holds (the first row). */
  async #claim(conversation: string, key: string, version: number): Promise<number | undefined> {
    const r = await this.#pool.query<{ version: number }>(
      `INSERT INTO ${this.#s}.conversation_pins (conversation_id, key, version) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING version`,
      [conversation, key, version],
    );
    this.#pruneNow();
    return r.rows[0]?.version ?? (await this.#read(conversation, key));
  }

  async #read(conversation: string, key: string): Promise<number | undefined> {
    const r = await this.#pool.query<{ version: number }>(
      `SELECT version FROM ${this.#s}.conversation_pins WHERE conversation_id = $1 AND key = $2`,
      [conversation, key],
    );
    return r.rows[0]?.version;
  }

  pin(conversation: string, name: string, choose: number | (() => number)): number {
    const key = agentKey(name);
    const k = `${key}\0${conversation}`;
    const had = this.#cache.get(k);
    if (had !== undefined) {
      // Most recently used last: the oldest are the ones dropped.
      this.#cache.delete(k);
      this.#cache.set(k, had);
      return had;
    }
    const version = typeof choose === 'number' ? choose : choose();
    this.#keys.add(key);
    this.#remember(k, version);
    this.#write(conversation, key, version);
    return version;
  }

  /**
   * Moves the pins a node kept in its SQLite before it joined the cluster (or before pins were
   * shared) into the cluster's, `batch` at a time, oldest first, then drops them there: a
   * conversation open across that upgrade keeps its version on every node. A pin the cluster
   * holds already wins (first row). Resolves with how many were moved; a failure leaves the rest
   * for the next start.
   */
  async carryOver(
    from: { oldestPins(limit: number): StoredPin[]; dropPins(pins: readonly StoredPin[]): void },
    batch = 1000,
  ): Promise<number> {
    let moved = 0;
    for (;;) {
      const pins = from.oldestPins(batch);
      if (pins.length === 0) return moved;
      await this.#pool.query(
        `INSERT INTO ${this.#s}.conversation_pins (conversation_id, key, version, created_at)
         SELECT c, k, v, to_timestamp(t / 1000.0) FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[]) AS p(c, k, v, t)
         ON CONFLICT DO NOTHING`,
        [
          pins.map((p) => p.conversation_id),
          pins.map((p) => p.key),
          pins.map((p) => p.version),
          pins.map((p) => p.created_at),
        ],
      );
      for (const p of pins) this.#keys.add(p.key);
      from.dropPins(pins);
      moved += pins.length;
    }
  }

  /** Resolves once the pins written so far are in PostgreSQL (or failed). */
  async settled(): Promise<void> {
    await Promise.all([...this.#writing]);
  }

  #remember(k: string, version: number): void {
    this.#cache.set(k, version);
    if (this.#cache.size > CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
  }

  #write(conversation: string, key: string, version: number): void {
    this.#track(
      this.#claim(conversation, key, version).then((held) => {
        // Another node pinned it first: its version holds here too from the next turn on.
        if (held !== undefined && held !== version) this.#remember(`${key}\0${conversation}`, held);
      }),
    );
  }

  /** Every 1,000 pins made here, rows older than PIN_MAX_AGE_MS are deleted (in the background). */
  #pruneNow(): void {
    if (++this.#sincePrune < 1000) return;
    this.#sincePrune = 0;
    this.#track(
      this.#pool.query(
        `DELETE FROM ${this.#s}.conversation_pins WHERE created_at < now() - make_interval(secs => $1)`,
        [PIN_MAX_AGE_MS / 1000],
      ),
    );
  }

  /** A write under way: `settled` waits for it; its failure is reported. */
  #track(q: Promise<unknown>): void {
    const w: Promise<void> = q
      .then(
        () => undefined,
        (e: unknown) => {
          this.#onError?.(e, 'write');
        },
      )
      .finally(() => this.#writing.delete(w));
    this.#writing.add(w);
  }
}
