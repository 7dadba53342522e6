/**
 * Every deploy of an agent, kept as an immutable version: the definition, the text it
 * came from, its content hash, the semver the file declares, who deployed it, when, and how (API,
 * a file change in agents_dir, a rollback, a promotion). Versions are numbered 1, 2, 3... per
 * agent name (case-insensitive, as agent names are) and survive the agent's removal, so a
 * redeploy continues the numbering. `keep` bounds how many are kept per agent (oldest go first),
 * removed agents included; `keepRemoved` bounds how many removed agents keep a history at all
 * (the most recently removed), so deploying and removing new names never grows the table: an
 * older removed agent's history is deleted whole, and a redeploy of its name starts at 1 again.
 */
import { createHash } from 'node:crypto';
import type { Db, Migration } from '../../storage/index.js';
import { agentKey, type AgentDefinition, type AgentFormat } from '../definition.js';
import { checkStoredDefinition } from '../stored-shape.js';
import type { StoredAgent } from '../sqlite-agents.js';

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

/** How a version came to be. */
export type VersionHow = 'api' | 'file' | 'rollback' | 'promotion';

export interface AgentVersion {
  agent: string;
  version: number;
  /** The `version` field of the definition, when it has one (informational). */
  semver: string | null;
  /** sha256 of the definition (canonical JSON): equal hashes, equal behaviour. */
  hash: string;
  format: AgentFormat;
  how: VersionHow;
  /** Where the agent lives: deployed through the API, or a file in agents_dir. */
  origin: 'api' | 'file';
  path: string | null;
  /** The authenticated principal (API deploys and rollbacks); null for file changes and unauthenticated servers. */
  deployed_by: string | null;
  deployed_at: string;
  /** A rollback: the version whose definition it restored. */
  restored_from: number | null;
}

export interface AgentVersionDetail extends AgentVersion {
  definition: AgentDefinition;
  source: string;
}

export interface NewVersion {
  definition: AgentDefinition;
  format: AgentFormat;
  source: string;
  how: VersionHow;
  origin: 'api' | 'file';
  path?: string | undefined;
  deployed_by?: string | undefined;
  restored_from?: number | undefined;
}

/**
 * What the service and the routes need of a version history, asynchronous so that it can live in
 * the cluster's PostgreSQL (src/agents/versions/pg-versions.ts: one numbering per agent across the
 * nodes) as well as in this node's SQLite (`AgentVersionStore.port()`). One shared test suite
 * (test/agents/version-store-suite.ts) runs on both.
 */
export interface AgentVersionsPort {
  /** Versions kept per agent. */
  readonly keep: number;
  /**
   * Records a new version (numbered after the agent's last one, whichever node wrote it) and drops
   * those beyond `keep`. `alongside` (this node's writes that go with it: the agent row, a rollout
   * of the new version) runs with the version written but not yet committed: a throw from it
   * records nothing. `live`: the API agent this version puts live (a deploy, promotion or
   * rollback). A store the nodes of a cluster share writes it to the cluster's agents in the same
   * transaction (pg-versions.ts); this node's SQLite port leaves it to `alongside`, which
   * saves the node's own copy. `tx` is the shared store's transaction (its connection), for writes
   * of the same store that go with the version (a rollout's row); this node's SQLite port runs
   * `alongside` synchronously, without one.
   */
  append(
    v: NewVersion,
    alongside?: (written: AgentVersion, tx?: unknown) => void | Promise<void>,
    live?: StoredAgent,
  ): Promise<AgentVersion>;
  /** The newest version, without its definition and text. */
  latest(name: string): Promise<AgentVersion | undefined>;
  get(name: string, version: number): Promise<AgentVersionDetail | undefined>;
  /** Newest first. */
  list(name: string, opts?: { limit?: number; offset?: number }): Promise<{ items: AgentVersion[]; total: number }>;
  /**
   * Records an agent's versions as another store kept them (their numbers, authors and times
   * unchanged; the newest `keep`), when this store has none of that agent: how a node's history
   * from before it joined a cluster becomes the cluster's. False, and nothing written, when the
   * agent has versions here already (another node's, or this one's).
   */
  seed(name: string, rows: readonly StoredVersionRow[]): Promise<boolean>;
  /**
   * `name` was removed: its history joins the removed agents', of which only the `keepRemoved`
   * most recently removed keep theirs (the others' are deleted whole). A new version of a name
   * takes it out of them again.
   */
  removed(name: string): Promise<void>;
}

/** A version row as both stores read it (`definition` and `source` for one version's detail). */
export interface VersionRow {
  name: string;
  version: number;
  semver: string | null;
  hash: string;
  format: string;
  how: string;
  origin: string;
  path: string | null;
  deployed_by: string | null;
  deployed_at: string;
  restored_from: number | null;
}

/** A version as a store holds it, its definition still the stored JSON text (what `seed` copies). */
export interface StoredVersionRow extends VersionRow {
  definition: string;
  source: string;
}

/** JSON with object keys sorted, so the hash does not depend on the order fields were written in. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

export function definitionHash(def: AgentDefinition): string {
  return createHash('sha256').update(canonical(def)).digest('hex');
}

type Row = VersionRow;

/** The columns of a version's summary (both stores). */
export const VERSION_SUMMARY_COLUMNS =
  'name, version, semver, hash, format, how, origin, path, deployed_by, deployed_at, restored_from';

/** The row values a new version is stored with (both stores; the number is the store's). */
export function versionValues(v: NewVersion) {
  return {
    key: agentKey(v.definition.name),
    name: v.definition.name,
    semver: v.definition.version || null,
    hash: definitionHash(v.definition),
    format: v.format,
    source: v.source,
    definition: JSON.stringify(v.definition),
    how: v.how,
    origin: v.origin,
    path: v.path ?? null,
    deployed_by: v.deployed_by ?? null,
    deployed_at: new Date().toISOString(),
    restored_from: v.restored_from ?? null,
  };
}

/** A stored row's detail: a damaged row (not JSON, or not a definition) reads as missing, so a rollback to it is refused with "not found". */
export function versionDetail(
  r: (VersionRow & { definition: string; source: string }) | undefined,
): AgentVersionDetail | undefined {
  if (!r) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(r.definition);
  } catch {
    return undefined;
  }
  const checked = checkStoredDefinition(parsed);
  if (!checked.ok) return undefined;
  return { ...versionSummary(r), definition: checked.definition, source: r.source };
}

export function versionSummary(r: VersionRow): AgentVersion {
  return {
    agent: r.name,
    version: r.version,
    semver: r.semver,
    hash: r.hash,
    format: r.format as AgentFormat,
    how: r.how as VersionHow,
    origin: r.origin === 'file' ? 'file' : 'api',
    path: r.path,
    deployed_by: r.deployed_by,
    deployed_at: r.deployed_at,
    restored_from: r.restored_from,
  };
}

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
