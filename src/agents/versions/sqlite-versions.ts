/**
 * A single node's agent versions in its SQLite, behind `AgentVersionsPort` (versions.ts, through
 * `AgentVersionStore.port()`); a cluster keeps API agents' versions in its PostgreSQL
 * (pg-versions.ts). File agents' versions stay here on every node.
 */
import type { Db, Migration } from '../../storage/index.js';
import { agentKey } from '../definition.js';
import {
  versionDetail,
  versionSummary,
  versionValues,
  VERSION_SUMMARY_COLUMNS,
  type AgentVersion,
  type AgentVersionDetail,
  type AgentVersionsPort,
  type NewVersion,
  type StoredVersionRow,
  type VersionRow,
} from './versions.js';

export const AGENT_VERSION_MIGRATION: Migration = {
  id: 'agents-002-versions',
  sql: `CREATE TABLE agent_versions (
      key          TEXT NOT NULL,
      version      INTEGER NOT NULL,
      name         TEXT NOT NULL,
      semver       TEXT,
      hash         TEXT NOT NULL,
      format       TEXT NOT NULL,
      source       TEXT NOT NULL,
      definition   TEXT NOT NULL,
      how          TEXT NOT NULL,
      origin       TEXT NOT NULL,
      path         TEXT,
      deployed_by  TEXT,
      deployed_at  TEXT NOT NULL,
      restored_from INTEGER,
      PRIMARY KEY (key, version)
    ) WITHOUT ROWID`,
};

/** Removed agents whose history is still kept, in the order they were removed (`seq`). */
export const AGENT_VERSION_REMOVALS_MIGRATION: Migration = {
  id: 'agents-006-version-removals',
  sql: 'CREATE TABLE agent_version_removals (key TEXT PRIMARY KEY, seq INTEGER NOT NULL)',
};

type Row = VersionRow;

const SUMMARY = VERSION_SUMMARY_COLUMNS;

/** Parsed versions kept in memory (the running rollouts' candidates and pinned versions, mostly). */
const VERSION_CACHE_SIZE = 64;
/** Agents whose newest version is kept in memory (the ones executed most recently, roughly). */
const NEWEST_CACHE_SIZE = 1024;

export class AgentVersionStore {
  readonly #db: Db;
  readonly #insert;
  readonly #latest;
  readonly #get;
  readonly #list;
  readonly #count;
  readonly #prune;
  readonly #stored;
  readonly #seed;
  readonly #unmark;
  readonly #mark;
  readonly #dropRemoved;
  readonly #forgetRemoved;
  /** Versions kept per agent. */
  readonly keep: number;
  /** Removed agents whose history is kept (the most recently removed). */
  readonly keepRemoved: number;
  /**
   * Parsed versions by key and number. A version never changes once written, and during a rollout
   * its candidate (or a conversation's pinned version) is read on every execution that reaches it:
   * without this each would be a row read, a JSON parse and a shape check. An agent's entries go
   * when it gets a new version (which may prune old ones).
   */
  readonly #cache = new Map<string, AgentVersionDetail>();
  /**
   * Each agent's newest version (null: none), as `latest` last read it. The execution records ask
   * for it on every execution of an agent whose definition has no number yet; every write of this
   * table goes through this store, and each one, or any transaction of it, forgets what it may
   * have changed.
   */
  readonly #newest = new Map<string, AgentVersion | null>();

  constructor(db: Db, opts: { keep?: number; keepRemoved?: number } = {}) {
    this.#db = db;
    this.keep = opts.keep ?? 100;
    this.keepRemoved = opts.keepRemoved ?? 20;
    this.#insert = db.prepare(
      `INSERT INTO agent_versions (key, version, name, semver, hash, format, source, definition, how, origin, path, deployed_by, deployed_at, restored_from)
       VALUES (@key, (SELECT COALESCE(MAX(version), 0) + 1 FROM agent_versions WHERE key = @key), @name, @semver, @hash, @format, @source, @definition, @how, @origin, @path, @deployed_by, @deployed_at, @restored_from)
       RETURNING ${SUMMARY}`,
    );
    this.#latest = db.prepare(`SELECT ${SUMMARY} FROM agent_versions WHERE key = ? ORDER BY version DESC LIMIT 1`);
    this.#get = db.prepare(`SELECT ${SUMMARY}, definition, source FROM agent_versions WHERE key = ? AND version = ?`);
    this.#list = db.prepare(
      `SELECT ${SUMMARY} FROM agent_versions WHERE key = ? ORDER BY version DESC LIMIT ? OFFSET ?`,
    );
    this.#count = db.prepare('SELECT COUNT(*) FROM agent_versions WHERE key = ?').pluck();
    this.#prune = db.prepare(
      'DELETE FROM agent_versions WHERE key = ? AND version <= (SELECT MAX(version) FROM agent_versions WHERE key = ?) - ?',
    );
    this.#stored = db.prepare(
      `SELECT ${SUMMARY}, definition, source FROM agent_versions WHERE key = ? ORDER BY version`,
    );
    this.#seed = db.prepare(
      `INSERT INTO agent_versions (key, version, name, semver, hash, format, source, definition, how, origin, path, deployed_by, deployed_at, restored_from)
       VALUES (@key, @version, @name, @semver, @hash, @format, @source, @definition, @how, @origin, @path, @deployed_by, @deployed_at, @restored_from)`,
    );
    this.#unmark = db.prepare('DELETE FROM agent_version_removals WHERE key = ?');
    this.#mark = db.prepare(
      'INSERT OR REPLACE INTO agent_version_removals (key, seq) VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM agent_version_removals))',
    );
    const beyond = 'SELECT key FROM agent_version_removals ORDER BY seq DESC LIMIT -1 OFFSET ?';
    this.#dropRemoved = db.prepare(`DELETE FROM agent_versions WHERE key IN (${beyond})`);
    this.#forgetRemoved = db.prepare(`DELETE FROM agent_version_removals WHERE key IN (${beyond})`);
  }

  /** This store behind the asynchronous port (the API's routes; `alongside` runs in the version's SQLite transaction). */
  port(): AgentVersionsPort {
    return {
      keep: this.keep,
      append: (v, alongside) =>
        Promise.resolve().then(() =>
          this.transaction(() => {
            const written = this.append(v);
            // Only synchronous writes join a SQLite transaction (this node's rollout store's are).
            if (alongside?.(written) instanceof Promise)
              throw new Error("this node's SQLite version store cannot wait for a write inside its transaction");
            return written;
          }),
        ),
      latest: (name) => Promise.resolve().then(() => this.latest(name)),
      get: (name, version) => Promise.resolve().then(() => this.get(name, version)),
      list: (name, opts) => Promise.resolve().then(() => this.list(name, opts)),
      seed: (name, rows) => Promise.resolve().then(() => this.seed(name, rows)),
      removed: (name) => Promise.resolve().then(() => this.removed(name)),
    };
  }

  /** Every version of `name` kept here as stored, oldest first (what a node joining a cluster copies into its history). */
  stored(name: string): StoredVersionRow[] {
    return this.#stored.all(agentKey(name)) as StoredVersionRow[];
  }

  /** `AgentVersionsPort.seed` on this node's SQLite, in one transaction. */
  seed(name: string, rows: readonly StoredVersionRow[]): boolean {
    const key = agentKey(name);
    const kept = rows.slice(-this.keep);
    if (kept.length === 0) return false;
    return this.transaction(() => {
      if ((this.#count.get(key) as number) > 0) return false;
      for (const r of kept) this.#seed.run({ ...r, key });
      return true;
    });
  }

  /** Runs `fn` in one transaction (the agent row and its version are written together). */
  transaction<T>(fn: () => T): T {
    try {
      return this.#db.transaction(fn)();
    } finally {
      // Read inside it, the newest may be a version the transaction then rolled back.
      this.#newest.clear();
    }
  }

  /** Records a new version (numbered after the agent's last one) and drops those beyond `keep`. */
  append(v: NewVersion): AgentVersion {
    const values = versionValues(v);
    const key = values.key;
    const row = this.#insert.get(values) as Row;
    this.#prune.run(key, key, this.keep);
    this.#unmark.run(key);
    this.#forget(key);
    this.#newest.delete(key);
    return versionSummary(row);
  }

  /** `AgentVersionsPort.removed` on this node's SQLite, in one transaction. */
  removed(name: string): void {
    this.transaction(() => {
      this.#mark.run(agentKey(name));
      this.#dropRemoved.run(this.keepRemoved);
      this.#forgetRemoved.run(this.keepRemoved);
    });
    this.#cache.clear();
    this.#newest.clear();
  }

  #forget(key: string): void {
    for (const k of this.#cache.keys()) if (k.startsWith(`${key}\0`)) this.#cache.delete(k);
  }

  /**
   * The newest version, without its definition and text: callers compare hashes and numbers, and
   * some do it on every execution (the live version of an agent with rollouts).
   */
  latest(name: string): AgentVersion | undefined {
    const key = agentKey(name);
    const known = this.#newest.get(key);
    if (known !== undefined) return known ?? undefined;
    const r = this.#latest.get(key) as Row | undefined;
    // Frozen: every later caller gets this same object.
    const v = r && Object.freeze(versionSummary(r));
    if (this.#newest.size >= NEWEST_CACHE_SIZE) this.#newest.delete(this.#newest.keys().next().value!);
    this.#newest.set(key, v ?? null);
    return v;
  }

  get(name: string, version: number): AgentVersionDetail | undefined {
    const key = agentKey(name);
    const at = `${key}\0${version}`;
    const cached = this.#cache.get(at);
    if (cached) return cached;
    const found = versionDetail(
      this.#get.get(key, version) as (Row & { definition: string; source: string }) | undefined,
    );
    if (found) {
      if (this.#cache.size >= VERSION_CACHE_SIZE) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(at, found);
    }
    return found;
  }

  /** Newest first. */
  list(name: string, opts: { limit?: number; offset?: number } = {}): { items: AgentVersion[]; total: number } {
    const key = agentKey(name);
    const rows = this.#list.all(key, opts.limit ?? 50, opts.offset ?? 0) as Row[];
    return { items: rows.map(versionSummary), total: this.#count.get(key) as number };
  }
}
